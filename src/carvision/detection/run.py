"""Detect the car in many photos: decode reduced, detect in batches, decide with the crop policy.

    finder = CarFinder(DetectorRun.from_settings(s.crop.detector), policy)
    finder.decide([photo_bytes, ...])           # one Decision (or ImageRejected) per photo, in order

The crop stage (crop.method: detector), `carvision predict` and the service all find the car here, so the box a model
was trained on and the box it is served with come from the same code and settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvision.detection.policy import CropPolicy, Decision, decide
from carvision.images import Decoded, ImageRejected, read_image_bytes


@dataclass(frozen=True)
class DetectorRun:
    """How to run the detector (the `crop.detector` settings that are not policy)."""

    name: str
    weights_file: str | None
    detect_side: int  # px; photos decode (reduced) to at least this shorter side for the detector
    min_size: int  # px; the detector's own resize of the shorter side
    max_size: int  # px; ... capped by the longer side
    score_thresh: float  # boxes below this are not returned at all; the policy's min_score decides
    batch_size: int
    half: bool  # fp16 autocast on CUDA
    num_workers: int = 0  # DataLoader processes decoding photos while the model runs; 0: in this process

    @classmethod
    def from_settings(cls, d) -> DetectorRun:
        """From `carvision.settings.DetectorSettings`, or the dict of it that a checkpoint records (older ones lack
        the later fields, which keep their defaults)."""
        d = d if isinstance(d, dict) else dataclasses.asdict(d)
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def policy_from_settings(d, margin: float = 0.0) -> CropPolicy:
    """The box policy of `crop.detector` settings (a dataclass or its dict). margin 0: the crop adds crop.margin
    itself (`carvision.cropping.margin_box`), as it does to annotation boxes."""
    d = d if isinstance(d, dict) else dataclasses.asdict(d)
    keys = ("include_bus", "min_score", "rank", "min_box_fraction", "without_car")
    return CropPolicy(**{k: d[k] for k in keys}, margin=margin)


@dataclass
class Chunk:
    """One detector batch: the photos that decoded (reduced, upright) and those that did not.

    The batches are cut from consecutive photos, `batch_size` at a time, before anything is known of them, so
    that one process or many (`carvision.detection.distributed`) put the same photos in the same batch: the
    detector pads a batch to its largest image, and a different batch could move a box by a fraction of a pixel.
    """

    indices: list[int]  # the photos in `decoded`, by their index in the whole list
    decoded: list[Decoded]
    rejected: list[tuple[int, str, str]]  # (index, reason, detail) of the photos that could not be used


def decode_chunk(
    indices: Sequence[int],
    photos: Sequence[bytes | str],
    full_sizes: Sequence[tuple[int, int] | None],
    max_pixels: Sequence[int],
    detect_side: int,
) -> Chunk:
    """Reads (paths) and decodes the photos for the detector; runs in DataLoader workers.

    Args:
        photos: bytes, or file paths to read.
        full_sizes: the upright full-resolution (width, height) each photo is expected to have (what clean
            recorded), or None: a photo that decodes to another size has changed since, and its box would not fit.
        max_pixels: per photo; refuse larger ones unread (decompression bombs).
    """
    from carvision.detection.detector import decode_for_detection

    chunk = Chunk([], [], [])
    for i, photo, size, limit in zip(indices, photos, full_sizes, max_pixels, strict=True):
        try:
            data = read_image_bytes(photo) if isinstance(photo, str) else photo
            decoded = decode_for_detection(data, max_pixels=limit, detect_side=detect_side)
            if size is not None and decoded.size != tuple(size):
                w, h = size
                detail = f"{decoded.size[0]}x{decoded.size[1]}, expected {w}x{h}"
                raise ImageRejected("changed_since_clean", detail)
        except ImageRejected as e:
            chunk.rejected.append((i, e.reason, e.detail))
            continue
        chunk.indices.append(i)
        chunk.decoded.append(decoded)
    return chunk


class ChunkDataset(Dataset):
    """Item k: the photo files [k * batch_size, (k + 1) * batch_size) decoded for the detector (`decode_chunk`).

    max_pixels is each photo's own recorded width x height: exactly what clean verified, so a file swapped for a
    larger one since is refused unread."""

    def __init__(self, paths: Sequence[str], full_sizes: Sequence[tuple[int, int]], run: DetectorRun) -> None:
        self.paths, self.sizes, self.run = list(paths), [tuple(s) for s in full_sizes], run

    def __len__(self) -> int:
        return -(-len(self.paths) // self.run.batch_size)

    def __getitem__(self, k: int) -> Chunk:
        b = self.run.batch_size
        idx = range(k * b, min((k + 1) * b, len(self.paths)))
        sizes = [self.sizes[i] for i in idx]
        photos = [self.paths[i] for i in idx]
        return decode_chunk(list(idx), photos, sizes, [w * h for w, h in sizes], self.run.detect_side)


def _as_is(chunk: Chunk) -> Chunk:
    return chunk


def loader(dataset: Dataset, num_workers: int) -> DataLoader:
    """Chunks in order, one per step (batch_size None: a chunk is already a batch), decoded by `num_workers`."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_as_is,
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )


def detections_to_decisions(
    policy: CropPolicy, chunk: Chunk, found: Sequence
) -> list[tuple[int, Decision | ImageRejected]]:
    """(photo index, decision) for every photo of a chunk: the detector's found boxes, mapped to full resolution and
    decided by the policy, and the rejected photos' reasons."""
    from carvision.detection.detector import to_full_resolution

    out: list[tuple[int, Decision | ImageRejected]] = [(i, ImageRejected(r, d)) for i, r, d in chunk.rejected]
    for i, decoded, detections in zip(chunk.indices, chunk.decoded, found, strict=True):
        full = to_full_resolution(detections, decoded)
        out.append((i, decide(full.boxes, full.scores, full.labels, decoded.size, policy)))
    return out


class CarFinder:
    """A loaded detector and its policy: photos in, crop decisions out, in batches of `run.batch_size`."""

    def __init__(self, run: DetectorRun, policy: CropPolicy, device=None) -> None:
        from carvision.detection.detector import load_detector

        self.run, self.policy = run, policy
        self.model = load_detector(
            run.name, run.weights_file, device, min_size=run.min_size, max_size=run.max_size,
            score_thresh=run.score_thresh,
        )  # fmt: skip
        self.device = next(self.model.parameters()).device

    def decide_chunk(self, chunk: Chunk) -> list[tuple[int, Decision | ImageRejected]]:
        """(photo index, decision) for every photo of a decoded chunk, in no particular order."""
        from carvision.detection.detector import detect

        found = detect(self.model, [d.image for d in chunk.decoded], device=self.device, half=self.run.half)
        return detections_to_decisions(self.policy, chunk, found)

    def decide(
        self,
        photos: Sequence[bytes],
        full_sizes: Sequence[tuple[int, int]] | None = None,
        *,
        max_pixels: int | Sequence[int],
    ) -> list[Decision | ImageRejected]:
        """One decision per photo, in order, or the ImageRejected that decoding it raised.

        Args:
            full_sizes: the upright full-resolution (width, height) each photo is expected to have, or None.
            max_pixels: refuse photos with more pixels (decompression bombs); one limit, or one per photo.
        """
        n, b = len(photos), self.run.batch_size
        limits = [max_pixels] * n if isinstance(max_pixels, int) else list(max_pixels)
        sizes = list(full_sizes) if full_sizes is not None else [None] * n
        out: list[Decision | ImageRejected | None] = [None] * n
        for start in range(0, n, b):
            idx = list(range(start, min(start + b, n)))
            chunk = decode_chunk(idx, photos[start : start + b], sizes[start : start + b], limits[start : start + b],
                                 self.run.detect_side)  # fmt: skip
            for i, decision in self.decide_chunk(chunk):
                out[i] = decision
        return out  # type: ignore[return-value]


def detect_decisions(
    paths: Sequence[str],
    full_sizes: Sequence[tuple[int, int]],
    run: DetectorRun,
    policy: CropPolicy,
    *,
    device=None,
    progress: str | None = "detect",
) -> list[Decision | ImageRejected]:
    """One decision per photo file, in order, or the ImageRejected that reading it raised; in this process, with
    `run.num_workers` DataLoader processes decoding ahead of the model.

    Args:
        full_sizes: the upright full-resolution (width, height) that clean recorded (see `decode_chunk`).
    """
    finder = CarFinder(run, policy, device)
    out: list[Decision | ImageRejected | None] = [None] * len(paths)
    bar = tqdm(total=len(paths), desc=progress, unit="img", mininterval=1.0, disable=progress is None)
    for chunk in loader(ChunkDataset(paths, full_sizes, run), run.num_workers):
        for i, decision in finder.decide_chunk(chunk):
            out[i] = decision
        bar.update(len(chunk.indices) + len(chunk.rejected))
    bar.close()
    return out  # type: ignore[return-value]
