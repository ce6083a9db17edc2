"""The detector pass as a Lightning `predict`, on many GPUs or nodes (crop.detector.devices / num_nodes).

    decisions = detect_distributed(paths, sizes, run, policy, Cluster(devices=8), shard_dir)   # None on ranks > 0

Each rank detects its share of the batches (batch k goes to rank k mod world size) and writes its own shard,
`rank-<r>-of-<world>.parquet`, atomically. After a barrier, rank 0 merges the shards in photo order and checks
that every photo was answered exactly once: the merge is deterministic, and batches are cut exactly as a single
process cuts them (`carvision.detection.run.Chunk`), so one process and many give the same decisions.

Launching: with `strategy: ddp`, Lightning re-runs the command that started the stage once per extra local rank
(as `dvc repro` or `python -m carvision.stages.crop` started it); under torchrun or SLURM every process is already
there and Lightning joins them. The stage lets ranks other than 0 exit after the predict: rank 0 alone crops and
writes the stage's outputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import Subset

from carvision.atomic import atomic_path
from carvision.detection.policy import CropPolicy, Decision
from carvision.detection.run import Chunk, ChunkDataset, DetectorRun, detections_to_decisions, loader
from carvision.images import ImageRejected

SHARD_COLUMNS = ["index", "error", "detected_box", "score", "crop_box", "source", "reason", "detail", "size"]


@dataclass(frozen=True)
class Cluster:
    """Where the predict runs: Lightning's accelerator, devices per node, nodes and strategy."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "ddp"

    @property
    def distributed(self) -> bool:
        return self.devices != 1 or self.num_nodes != 1


class DetectorModule(L.LightningModule):
    """The detector and its policy; predict_step turns one decoded chunk into (photo index, decision) pairs."""

    def __init__(self, run: DetectorRun, policy: CropPolicy) -> None:
        super().__init__()
        from carvision.detection.detector import load_detector

        self.run, self.policy = run, policy
        self.detector = load_detector(
            run.name, run.weights_file, "cpu", min_size=run.min_size, max_size=run.max_size,
            score_thresh=run.score_thresh,
        )  # fmt: skip

    def transfer_batch_to_device(self, batch: Chunk, device, dataloader_idx: int) -> Chunk:
        return batch  # PIL images; `detect` moves them to the device as uint8, a quarter of the bytes of float

    def predict_step(self, chunk: Chunk, batch_idx: int) -> list[dict]:
        """The chunk's decisions as shard rows: plain dicts, which Lightning may move between devices."""
        from carvision.detection.detector import detect

        found = detect(self.detector, [d.image for d in chunk.decoded], device=self.device, half=self.run.half)
        return [_row(i, d) for i, d in detections_to_decisions(self.policy, chunk, found)]


class RankChunks(L.LightningDataModule):
    """Rank r of w gets chunks r, r + w, r + 2w, ...: no padding, no duplicates (unlike a DistributedSampler)."""

    def __init__(self, dataset: ChunkDataset, num_workers: int) -> None:
        super().__init__()
        self.dataset, self.num_workers = dataset, num_workers

    def predict_dataloader(self):
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return loader(Subset(self.dataset, range(rank, len(self.dataset), world)), self.num_workers)


class ShardWriter(BasePredictionWriter):
    """Writes each rank's decisions to its own parquet shard when its predict ends, then waits for every rank."""

    def __init__(self, shard_dir: Path) -> None:
        super().__init__(write_interval="epoch")
        self.shard_dir = shard_dir

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        rows = [row for chunk in predictions for row in chunk]
        frame = pd.DataFrame(rows, columns=SHARD_COLUMNS)
        path = self.shard_dir / shard_name(trainer.global_rank, trainer.world_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        trainer.strategy.barrier("carvision-detect-shards")  # rank 0 merges only once every shard is written


def shard_name(rank: int, world: int) -> str:
    return f"rank-{rank:05d}-of-{world:05d}.parquet"


def _row(index: int, d: Decision | ImageRejected) -> dict:
    """A decision as plain columns (boxes as JSON text: parquet lists of None are awkward)."""
    if isinstance(d, ImageRejected):
        return {"index": index, "error": d.reason, "detail": d.detail}
    return {
        "index": index,
        "error": None,
        "detected_box": None if d.detected_box is None else json.dumps(list(d.detected_box)),
        "score": math.nan if d.score is None else d.score,
        "crop_box": None if d.crop_box is None else json.dumps(list(d.crop_box)),
        "source": d.source,
        "reason": d.reason,
        "detail": d.detail,
        "size": None if d.size is None else json.dumps(list(d.size)),
    }


def _decision(r) -> Decision | ImageRejected:
    if isinstance(r.error, str):
        return ImageRejected(r.error, r.detail or "")

    def box(text):
        return None if not isinstance(text, str) else tuple(float(v) for v in json.loads(text))

    size = None if not isinstance(r.size, str) else tuple(int(v) for v in json.loads(r.size))
    score = None if pd.isna(r.score) else float(r.score)
    reason = r.reason if isinstance(r.reason, str) else None
    return Decision(box(r.detected_box), score, box(r.crop_box), r.source, reason, r.detail, size)


def merge_shards(shard_dir: Path, world: int, n: int) -> list[Decision | ImageRejected]:
    """The decisions of all `world` shards, in photo order; every photo 0..n-1 must be answered exactly once."""
    missing = [shard_name(r, world) for r in range(world) if not (shard_dir / shard_name(r, world)).is_file()]
    if missing:
        raise RuntimeError(f"detector shards missing in {shard_dir}: {missing}")
    frame = pd.concat([pd.read_parquet(shard_dir / shard_name(r, world)) for r in range(world)], ignore_index=True)
    frame = frame.sort_values("index", kind="stable").reset_index(drop=True)
    if len(frame) != n or not (frame["index"].to_numpy() == range(n)).all():
        counts = frame["index"].value_counts()
        raise RuntimeError(
            f"detector shards answer {len(frame)} rows for {n} photos: "
            f"{int((counts > 1).sum())} photos twice, {n - frame['index'].nunique()} photos never"
        )
    return [_decision(r) for r in frame.itertuples(index=False)]


def detect_distributed(
    paths: Sequence[str],
    full_sizes: Sequence[tuple[int, int]],
    run: DetectorRun,
    policy: CropPolicy,
    cluster: Cluster,
    shard_dir: Path,
) -> list[Decision | ImageRejected] | None:
    """One decision per photo file, in order, on rank 0; None on every other rank.

    Args:
        shard_dir: a folder all ranks see (on a shared file system across nodes); emptied and removed by rank 0
            after the merge.
    """
    trainer = L.Trainer(
        accelerator=cluster.accelerator,
        devices=cluster.devices,
        num_nodes=cluster.num_nodes,
        strategy=cluster.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,  # RankChunks shards the chunks itself, without padding
        callbacks=[ShardWriter(shard_dir)],
        enable_progress_bar=True,
    )
    torch.manual_seed(0)  # nothing is random in inference; the detector's construction draws initial weights
    module = DetectorModule(run, policy)
    trainer.predict(module, datamodule=RankChunks(ChunkDataset(paths, full_sizes, run), run.num_workers),
                    return_predictions=False)  # fmt: skip
    if trainer.global_rank != 0:
        return None
    decisions = merge_shards(shard_dir, trainer.world_size, len(paths))
    shutil.rmtree(shard_dir, ignore_errors=True)
    return decisions


def cluster_of(d) -> Cluster:
    """The Cluster of `crop.detector` settings (a dataclass or its dict)."""
    d = d if isinstance(d, dict) else dataclasses.asdict(d)
    return Cluster(**{f.name: d[f.name] for f in dataclasses.fields(Cluster) if f.name in d})
