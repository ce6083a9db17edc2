"""kill -9 of the image stages (clean, crop): no worker outlives its stage, the previous output and its report stay
whole and agree, and the next run removes what the killed one left and gives the same output as an unkilled run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carvision import manifest
from carvision.config import to_params_yaml
from conftest import REPO, make_cfg

N_PHOTOS = 200


def _photos(folder: Path, n: int) -> list[Path]:
    """Noisy 480x360 JPEGs: large enough that a 2-worker stage runs for a moment, quick to write."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)
        arr[:, : 20 + i % 400] = (i * 7) % 255  # distinct photos: no near-duplicate drops
        p = folder / f"{i:04d}.jpg"
        Image.fromarray(arr).save(p, "JPEG", quality=80)
        paths.append(p)
    return paths


def _ingest_manifest(paths: list[Path]) -> pd.DataFrame:
    n = len(paths)
    df = pd.DataFrame(
        {
            "image_id": [f"l{i}/{p.name}" for i, p in enumerate(paths)],
            "path": [str(p) for p in paths],
            "listing_id": [f"l{i}" for i in range(n)],
            **{c: [""] * n for c in ("make", "model", "submodel", "year", "viewpoint", "source_split")},
            "label": [f"Make Model{i % 3}" for i in range(n)],
            "bbox": [[10.0, 10.0, 300.0, 200.0] if i % 2 else None for i in range(n)],
        }
    )
    return df.astype({c: "string" for c in df.columns if c != "bbox"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder: params.yaml with 2 workers, an ingest manifest of N_PHOTOS photos."""
    root = tmp_path_factory.mktemp("kill")
    cfg = make_cfg(root, ["clean.workers=2", "crop.workers=2", "crop.max_side=64"])
    (root / "params.yaml").write_text(to_params_yaml(cfg))
    manifest.write(_ingest_manifest(_photos(root / "raw", N_PHOTOS)), root / "data" / "ingest" / "manifest.parquet")
    return root


def _run(stage: str, cwd: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    # A session of its own: afterwards, any process still in it is an orphan of the stage.
    return subprocess.Popen(
        [sys.executable, "-m", f"carvision.stages.{stage}"],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _session_alive(sid: int) -> list[int]:
    """Pids of processes still in session `sid` (zombies excluded)."""
    alive = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            alive.append(int(d.name))
    return alive


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the stage ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "the stage never reached the point to kill it at"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _outputs(root: Path, stage: str) -> tuple[dict, dict, pd.DataFrame]:
    data_report = json.loads((root / "data" / stage / "report.json").read_text())
    published = json.loads((root / "reports" / stage / "report.json").read_text())
    return data_report, published, pd.read_parquet(root / "data" / stage / "manifest.parquet")


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for d in (root / "data", root / "reports") for p in d.iterdir() if p.name.startswith("."))


def _no_orphans(sid: int) -> None:
    deadline = time.monotonic() + 5.0
    while (alive := _session_alive(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive == [], f"processes outlived the killed stage: {alive}"


@pytest.mark.parametrize("stage", ["clean", "crop"])
def test_kill_9_leaves_the_old_output_whole_and_no_workers(workdir: Path, stage: str):
    if stage == "crop":  # crop reads the filter's manifest: every cleaned photo, none scored
        from carvision.stages.clean import clean

        cleaned = clean(
            manifest.read(workdir / "data" / "ingest" / "manifest.parquet"),
            min_side=32,
            max_pixels=10**8,
            near_duplicate_bits=4,
        ).kept
        manifest.write(cleaned.assign(car_prob=float("nan")), workdir / "data" / "filter" / "manifest.parquet")
    first = _run(stage, workdir)
    assert first.wait() == 0, first.stderr.read().decode()[-3000:]
    before = _outputs(workdir, stage)
    assert before[0] == before[1], "the published report differs from the one committed with the data"

    proc = _run(stage, workdir)
    if stage == "clean":  # clean writes nothing until the end: kill it while its workers decode
        _kill_when(proc, lambda: len(_children(proc.pid)) >= 2)
    else:  # crop: kill it while its staging folder fills with crops
        _kill_when(
            proc,
            lambda: (
                any(p.name.endswith(".tmp") for p in (workdir / "data").iterdir() if p.is_dir())
                and len(list((workdir / "data").glob(".crop.*.tmp/images/*/*.jpg"))) > 20
            ),
        )
    _no_orphans(proc.pid)

    after_kill = _outputs(workdir, stage)
    assert after_kill[0] == after_kill[1] == before[0]
    pd.testing.assert_frame_equal(after_kill[2], before[2])

    rerun = _run(stage, workdir)
    assert rerun.wait() == 0, rerun.stderr.read().decode()[-3000:]
    assert _leftovers(workdir) == [], "the next run did not remove the killed run's staging files"
    again = _outputs(workdir, stage)
    assert again[0] == again[1] == before[0]
    pd.testing.assert_frame_equal(again[2], before[2])
    if stage == "crop":
        crops = sorted(p.relative_to(workdir) for p in (workdir / "data" / "crop" / "images").rglob("*.jpg"))
        assert len(crops) == len(again[2]) == N_PHOTOS
