"""The pack stage: a task's split manifest rows as LitData shards and pack.json; bad crop files cost their row, a re-run
gives the same shards, a killed run's staging folder is removed, and training refuses a pack that no longer matches."""

from __future__ import annotations

import hashlib
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
from litdata import StreamingDataset
from omegaconf import OmegaConf
from PIL import Image

from carvision import manifest, settings
from carvision.config import to_params_yaml
from carvision.stages import pack, train
from carvision.tracking import file_sha256
from carvision.training.data import PACK_FILE, StalePack, open_pack, task_rows
from conftest import reuse_prepared

TASK = "make_model"


def _config(prepared, root: Path, split_dir: Path):
    cfg = reuse_prepared(prepared, root, [f"paths.packed={root / 'packed'}", "data.chunk_bytes=100000"])
    cfg.data.pack_workers = 2
    cfg.paths.split = str(split_dir)
    return cfg


@pytest.fixture(scope="module")
def packed(prepared, tmp_path_factory: pytest.TempPathFactory):
    """(config, record, the bad rows' image_ids): the session's split manifest, copied with one val crop replaced by
    a file that is no image and one train crop missing, packed once."""
    root = tmp_path_factory.mktemp("pack")
    df = manifest.read(Path(prepared.paths.split) / "manifest.parquet")
    junk = root / "junk.jpg"
    junk.write_bytes(b"<html>not a photo</html>")
    labelled = df["class_name"].fillna("") != ""
    bad_val = df.index[labelled & (df["split"] == "val")][3]
    bad_train = df.index[labelled & (df["split"] == "train")][10]
    df.loc[bad_val, "crop_path"] = str(junk)
    df.loc[bad_train, "crop_path"] = str(root / "gone.jpg")
    manifest.write(df, root / "split" / "manifest.parquet")
    cfg = _config(prepared, root, root / "split")
    record = pack.main(cfg, TASK)[TASK]
    return cfg, record, {df.loc[bad_val, "image_id"]: "val", df.loc[bad_train, "image_id"]: "train"}


def _task(cfg):
    s = settings.parse(cfg)
    return s, s.tasks[TASK]


def test_pack_writes_shards_and_a_record_that_counts_the_dropped_rows(packed):
    cfg, record, bad = packed
    s, task = _task(cfg)
    rows, class_names, manifest_file = task_rows(s, task)
    folder = Path(s.paths.packed) / TASK
    assert json.loads((folder / PACK_FILE).read_text()) == record
    assert record["manifest_sha256"] == file_sha256(manifest_file) and record["label_map"] == class_names
    assert {(d["image_id"], d["split"], d["drop_reason"]) for d in record["dropped"]} == {
        (next(i for i, sp in bad.items() if sp == "val"), "val", "not_an_image"),
        (next(i for i, sp in bad.items() if sp == "train"), "train", "missing_file"),
    }
    assert record["dropped_by_reason"] == {"not_an_image": 1, "missing_file": 1}
    for split in ("train", "val", "test"):
        n_rows = int((rows["split"] == split).sum())
        assert record["rows"][split] == n_rows - list(bad.values()).count(split)
        index = json.loads((folder / split / "index.json").read_text())
        assert sum(c["chunk_size"] for c in index["chunks"]) == record["rows"][split]  # what LitData will stream
    assert len(list((folder / "train").glob("*.bin"))) > 1  # 100 kB chunks: the stream crosses chunks and workers
    assert not list(folder.parent.glob(".*"))  # no staging folder or scratch left beside or inside
    assert not list(folder.rglob(".scratch"))


def test_samples_are_the_crop_files_bytes_in_manifest_order(packed):
    cfg, record, bad = packed
    s, task = _task(cfg)
    rows, _, _ = task_rows(s, task)
    val = rows[(rows["split"] == "val") & ~rows["image_id"].isin(list(bad))]
    stream = StreamingDataset(str(Path(s.paths.packed) / TASK / "val"))
    samples = [stream[i] for i in range(len(stream))]
    assert [x["image_id"].decode() for x in samples] == val["image_id"].tolist()
    assert [x["target"] for x in samples] == val["target"].tolist()
    assert all(x["image"] == Path(p).read_bytes() for x, p in zip(samples, val["crop_path"], strict=True))


def _shards(folder: Path) -> dict[str, str]:
    """sha256 of every file under a pack, index.json without its write time."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.name == "index.json":
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "updated_at"}).encode()
            out[str(f.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def test_repacking_gives_the_same_pack_and_removes_a_killed_runs_staging_folder(packed):
    cfg, record, _ = packed
    folder = Path(cfg.paths.packed) / TASK
    before = _shards(folder)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no process has now: the writer of this staging folder was killed
    leftover = folder.parent / f".{TASK}.{dead.pid}.k1ll3d.tmp"
    (leftover / "train").mkdir(parents=True)
    (leftover / "train" / "chunk-0-0.bin").write_bytes(b"half a chunk")
    assert pack.main(cfg, TASK)[TASK] == record
    assert not leftover.exists()
    assert _shards(folder) == before


def test_training_refuses_a_pack_of_another_manifest_or_label_map_naming_the_pack_command(packed, tmp_path):
    cfg, record, _ = packed
    df = manifest.read(Path(cfg.paths.split) / "manifest.parquet")
    manifest.write(df.iloc[1:], tmp_path / "split" / "manifest.parquet")  # one row fewer: the pack is stale
    stale = OmegaConf.merge(cfg, {"paths": {"split": str(tmp_path / "split")}, "data": {"format": "litdata"}})
    command = f"python -m carvision.stages.pack --task {TASK}"
    with pytest.raises(StalePack, match=rf"packed from another version of .*manifest\.parquet.*run `{command}`"):
        train.main(stale, TASK)
    assert not (Path(cfg.paths.models) / TASK).exists()  # refused before training
    location = str(Path(cfg.paths.packed) / TASK)
    with pytest.raises(StalePack, match=rf"another label map.*run `{command}`"):
        open_pack(location, TASK, Path(cfg.paths.split) / "manifest.parquet", record["label_map"][::-1])
    with pytest.raises(StalePack, match=rf"no pack\.json at .*run `{command}`"):
        open_pack(str(tmp_path / "nothing" / TASK), TASK, Path(cfg.paths.split) / "manifest.parquet", [])
    assert pd.read_parquet(Path(cfg.paths.split) / "manifest.parquet").shape[0] == len(df)  # the pack's own is intact


@pytest.mark.slow  # a pack of ~1,000 large photos, killed, then run again: ~1 min on 2 cores
def test_a_pack_killed_mid_run_leaves_no_worker_and_the_next_run_completes_it(prepared, tmp_path):
    rng = np.random.default_rng(0)
    photos = []
    for i in range(10):  # noisy 1200x900 JPEGs: slow enough to pack that the kill lands mid-run
        photos.append(tmp_path / f"photo{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(photos[-1], quality=90)
    df = manifest.read(Path(prepared.paths.split) / "manifest.parquet")
    df = pd.concat([df.assign(image_id=df["image_id"] + f"#{k}") for k in range(3)], ignore_index=True)
    df["crop_path"] = [str(photos[i % len(photos)]) for i in range(len(df))]
    manifest.write(df, tmp_path / "split" / "manifest.parquet")
    cfg = _config(prepared, tmp_path, tmp_path / "split")
    cfg.data.chunk_bytes = 5_000_000
    (tmp_path / "params.yaml").write_text(to_params_yaml(cfg))
    command = [sys.executable, "-m", "carvision.stages.pack", "--task", TASK]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    packed_dir, deadline = tmp_path / "packed", time.monotonic() + 300
    while not list(packed_dir.glob(f".{TASK}.*.tmp/train/*.bin")):
        assert proc.poll() is None and time.monotonic() < deadline, "the pack ended before a chunk was written"
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert workers
    time.sleep(1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text()]
    assert [p.name for p in packed_dir.iterdir()][0].startswith(f".{TASK}.")  # only the killed run's staging folder
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=600)
    assert [p.name for p in packed_dir.iterdir()] == [TASK]
    rows = json.loads((packed_dir / TASK / PACK_FILE).read_text())["rows"]
    assert sum(rows.values()) == int((df["class_name"].fillna("") != "").sum())
