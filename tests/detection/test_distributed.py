"""The detector pass as a Lightning predict under DDP (carvision.detection.distributed): 2 CPU processes give the
crop stage the same manifest and crops as 1 process, and the shard merge refuses incomplete or doubled answers."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

from carvision import manifest
from carvision.config import to_params_yaml
from carvision.detection.detector import COCO_CAR
from carvision.detection.distributed import _row, merge_shards, shard_name
from carvision.detection.policy import Decision
from carvision.images import ImageRejected
from carvision.stages import crop
from conftest import make_cfg, sh

PHOTOS = 14  # with batch_size 3: 5 batches, so that the two ranks get unequal shares (3 and 2)


@pytest.fixture(scope="module")
def project(prepared, tmp_path_factory) -> Path:
    """A folder with a filter manifest of 14 sample photos (one of them truncated since clean saw it) and a
    randomly initialised detector saved to a file."""
    root = tmp_path_factory.mktemp("ddp-crop")
    df = manifest.read(Path(prepared.paths.filter) / "manifest.parquet", stage="filter").head(PHOTOS).copy()
    broken = root / "broken.jpg"
    broken.write_bytes(Path(df["path"].iloc[5]).read_bytes()[:2000])
    df.loc[df.index[5], "path"] = str(broken)
    manifest.write(df, root / "filter" / "manifest.parquet")
    torch.manual_seed(0)
    state = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).state_dict()
    # Random class logits are nearly the biases alone: the top 100 detections would be whole other classes. Spread
    # the logits by proposal and raise the car's, so that car boxes of many shapes come back, scoring ~0.3.
    state["roi_heads.box_predictor.cls_score.weight"] *= 60
    bias = state["roi_heads.box_predictor.cls_score.bias"]
    bias[COCO_CAR] = bias.max() + 4
    torch.save(state, root / "det.pt")
    return root


def run_crop(project: Path, name: str, extra: list[str], subprocess: bool = True) -> Path:
    """`python -m carvision.stages.crop` in its own folder, as DVC runs it (or its main in this process, which is
    the same code without ~20 s of imports); returns that folder."""
    out = project / name
    out.mkdir()
    cfg = make_cfg(
        out,
        [
            f"paths.filter={project / 'filter'}",
            "crop.method=detector",
            f"crop.detector.weights_file={project / 'det.pt'}",
            "crop.detector.detect_side=96",
            "crop.detector.min_size=96",
            "crop.detector.max_size=160",
            "crop.detector.min_score=0.3",
            "crop.detector.min_box_fraction=0.62",  # boxes cover 0.6 to 1 of these photos: some are partial cars
            "crop.detector.batch_size=3",
            "crop.detector.num_workers=0",
            "crop.workers=1",
            *extra,
        ],
    )
    if subprocess:
        (out / "params.yaml").write_text(to_params_yaml(cfg))
        sh([sys.executable, "-m", "carvision.stages.crop"], out)
    else:
        crop.main(cfg)
    return out


def outputs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(kept rows, dropped rows, crop file -> sha256) with the folder's own prefix taken off the paths."""
    kept = pd.read_parquet(folder / "data" / "crop" / "manifest.parquet")
    dropped = pd.read_parquet(folder / "data" / "crop" / "dropped.parquet")
    files = {
        str(Path(p).relative_to(folder)): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in kept["crop_path"]
    }
    for frame in (kept, dropped):
        frame["crop_path"] = frame["crop_path"].map(lambda p: str(Path(p).relative_to(folder)))
    return kept, dropped, files


# Slow (~30 s: two crop stages in subprocesses, one of them 2 DDP processes): it kept `make test` over its 10 minutes
# on 2 cores. `make test-slow` runs it; the shard merge it relies on is tested below.
@pytest.mark.slow
def test_two_ddp_processes_give_the_same_manifest_and_crops_as_one(project):
    one = run_crop(project, "one", [], subprocess=False)
    two = run_crop(project, "two", ["crop.detector.accelerator=cpu", "crop.detector.devices=2"])
    kept1, dropped1, files1 = outputs(one)
    kept2, dropped2, files2 = outputs(two)
    # Not a vacuous equality: boxes were chosen, and photos were dropped for more than one reason.
    assert (kept1["crop_source"] == "detector").sum() >= 3
    assert kept1["car_box"].map(tuple).nunique() >= 2
    assert {"truncated_image", "partial_car"} <= set(dropped1["drop_reason"])
    assert len(kept1) + len(dropped1) == PHOTOS
    pd.testing.assert_frame_equal(kept1, kept2)
    pd.testing.assert_frame_equal(dropped1, dropped2)
    assert files1 == files2  # the same crops, byte for byte
    # Rank 0 merged the shards and removed them; nothing is left beside the stage's output.
    assert sorted(p.name for p in (two / "data").iterdir()) == ["crop"]


KEPT = Decision((1.0, 2.0, 30.0, 40.0), 0.8, (0.0, 1.0, 31.0, 42.0), "detector", None, "box 5%", (100, 80))
PARTIAL = Decision((1.0, 2.0, 3.0, 4.0), 0.6, None, "detector", "partial_car", "box 0.1%", (100, 80))
NONE = Decision(None, None, None, "full_image", "no_car_found", "no car", (100, 80))


def write_shard(folder: Path, rank: int, world: int, rows: list) -> None:
    folder.mkdir(exist_ok=True)
    pd.DataFrame([_row(i, d) for i, d in rows]).to_parquet(folder / shard_name(rank, world), index=False)


def test_merge_puts_the_shards_back_in_photo_order(tmp_path):
    write_shard(tmp_path, 0, 2, [(0, KEPT), (2, ImageRejected("truncated_image", "JPEG ends early"))])
    write_shard(tmp_path, 1, 2, [(3, NONE), (1, PARTIAL)])
    merged = merge_shards(tmp_path, 2, 4)
    assert merged[0] == KEPT and merged[1] == PARTIAL and merged[3] == NONE
    assert isinstance(merged[2], ImageRejected) and (merged[2].reason, merged[2].detail) == (
        "truncated_image",
        "JPEG ends early",
    )


def test_merge_refuses_a_missing_shard_or_photo_or_a_photo_answered_twice(tmp_path):
    write_shard(tmp_path, 0, 2, [(0, KEPT), (1, KEPT)])
    with pytest.raises(RuntimeError, match="rank-00001-of-00002"):
        merge_shards(tmp_path, 2, 3)
    write_shard(tmp_path, 1, 2, [(1, NONE)])
    with pytest.raises(RuntimeError, match="1 photos twice, 1 photos never"):
        merge_shards(tmp_path, 2, 3)
