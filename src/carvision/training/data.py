"""Data: a task's rows of a split manifest as datasets, the training augmentation, and a DataModule whose loaders
keep a GPU fed: worker processes that persist across epochs, pinned memory, batches prefetched, and JPEGs decoded
at the smallest DCT scale that still covers the model's input.

Two sources of the same samples (`data.format`): the crop files themselves (`ManifestDataset`), or the LitData shards
that the pack stage wrote from them (`PackedDataset`, streamed from a folder or object storage). A shard holds each
crop file's own bytes, and both decode them with `image_tensor`, so both give identical pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import albumentations as A
import lightning as L
import numpy as np
import pandas as pd
import torch
from litdata import StreamingDataLoader, StreamingDataset
from PIL import Image
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from carvision import manifest, tasks
from carvision.images import decode, read_image_bytes
from carvision.preprocess import LOAD_MAX_PIXELS, Preprocess, letterbox, normalise
from carvision.safe_names import safe_name
from carvision.settings import Settings, TaskSettings
from carvision.tasks import IMAGE_COLUMN
from carvision.tracking import file_sha256

SPLITS = ("train", "val", "test")
PACK_FILE = "pack.json"  # beside a task's shards: what they were packed from (checked before training streams them)


class TrainTransform:
    """The evaluation preprocessing (letterbox, normalise) with augmentation in between.

    Flips and mild geometric and photometric jitter; hue is kept because a photo's white balance varies, not the
    car's paint. `seed` makes the augmentations repeatable: albumentations keeps its own random state and
    ignores torch's and numpy's seeds.
    """

    def __init__(self, preprocess: Preprocess, seed: int | None = None) -> None:
        self.preprocess = preprocess
        self.augment = A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-5, 5), p=0.5),
                A.RandomBrightnessContrast(0.15, 0.15, p=0.5),
            ],
            seed=seed,
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        p = self.preprocess
        return normalise(self.augment(image=letterbox(image, p.size))["image"], p.mean, p.std)


def class_counts(targets: list[int] | np.ndarray, num_classes: int) -> list[int]:
    """Images per class index (0 for classes absent)."""
    return np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).tolist()


def task_rows(s: Settings, task: TaskSettings) -> tuple[pd.DataFrame, list[str], Path]:
    """(the task's rows with a `target` column, the label map, the manifest file) of its split manifest: what the
    train stage trains on and the pack stage packs."""
    manifest_file = tasks.manifest_path(s.paths, task)
    df = manifest.read(manifest_file, stage="split")
    rows = tasks.select_rows(df, task)
    class_names = tasks.label_map(rows, task)
    rows = rows.assign(target=tasks.targets(rows, task, class_names))
    missing = [split for split in ("train", "val") if not (rows["split"] == split).any()]
    present = rows[task.label_column].nunique()
    if missing or present < 2:
        raise ValueError(
            f"task {task.name}: {len(rows)} of {len(df)} rows of {manifest_file} have a '{task.label_column}' label, "
            f"in {present} classes, with no {missing} rows: a task needs 2 classes and train and val rows"
        )
    return rows, class_names, manifest_file


def image_tensor(data: bytes, transform, min_side: int | None = None) -> torch.Tensor:
    """An image file's bytes -> the model input (3, H, W): the one decode of both data formats (and of `load_rgb`).

    Args:
        min_side: px; a JPEG larger than needed decodes reduced (1/2, 1/4 or 1/8, by libjpeg's DCT scaling) as long
            as its shorter side stays at least this: the model's input side, so the letterbox still only shrinks.
            A 1.9 MP photo for a 260 px input decodes at 1/4, about 3x faster, and its letterboxed pixels differ
            from a full decode's by about 1 grey level in 255 on average. Crops already that small decode whole.
    """
    return transform(decode(data, max_pixels=LOAD_MAX_PIXELS, min_side=min_side).image)


class ManifestDataset(Dataset):
    """Image files and class indices; returns (image tensor (3, H, W), class index). `min_side`: see image_tensor."""

    def __init__(self, paths: list[str], targets: list[int], transform, min_side: int | None = None) -> None:
        self.paths, self.targets, self.transform = list(paths), list(targets), transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return image_tensor(read_image_bytes(self.paths[i]), self.transform, self.min_side), self.targets[i]


# --------------------------------------------------------------------------------------------------------------
# LitData: the pack stage's shards of a task, and their record pack.json
# --------------------------------------------------------------------------------------------------------------


def packed_location(s: Settings, task: TaskSettings) -> str:
    """Where the task's shards live: <data.packed_uri or paths.packed>/<task>, with <split>/ folders and pack.json
    inside; a local folder or an object-storage URI (s3://bucket/prefix/<task>)."""
    root = s.data.packed_uri or s.paths.packed
    return f"{root.rstrip('/')}/{safe_name(task.name)}"


def is_uri(location: str) -> bool:
    return "://" in location


def s3_bucket_key(uri: str) -> tuple[str, str]:
    """s3://bucket/some/key -> (bucket, some/key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri}: packed shards live in a local folder or under s3:// (no other scheme is supported)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def s3_client():
    """boto3's S3 client, configured the usual AWS way (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL, ...)."""
    import boto3  # only object-storage packs need it

    return boto3.client("s3")


def read_pack_record(location: str) -> dict | None:
    """The pack.json at `location` (folder or s3:// URI), or None when there is none."""
    if not is_uri(location):
        path = Path(location) / PACK_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    from botocore.exceptions import ClientError

    bucket, key = s3_bucket_key(f"{location}/{PACK_FILE}")
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return json.loads(body)


class StalePack(ValueError):
    """Shards that are missing, or were packed from another manifest or label map than training would use."""


def pack_command(task_name: str) -> str:
    return f"python -m carvision.stages.pack --task {task_name}"


def open_pack(location: str, task_name: str, manifest_file: str | Path, class_names: list[str]) -> dict:
    """The task's pack record, checked against the manifest and label map that training reads: a pack made from an
    older manifest would train on other images than the run logs as its data.

    Raises:
        StalePack: no pack, a changed manifest or label map, or no train or val rows; the message names the command
            that rewrites the pack.
    """
    record = read_pack_record(location)
    fix = f"run `{pack_command(task_name)}`"
    if record is None:
        raise StalePack(f"task {task_name}: no {PACK_FILE} at {location} (not packed, or a pack was cut short): {fix}")
    if record.get("manifest_sha256") != file_sha256(manifest_file):
        raise StalePack(
            f"task {task_name}: the shards at {location} were packed from another version of {manifest_file} "
            f"(sha256 {str(record.get('manifest_sha256'))[:12]}..., now {file_sha256(manifest_file)[:12]}...): {fix}"
        )
    if record.get("label_map") != list(class_names):
        raise StalePack(f"task {task_name}: the shards at {location} have another label map than the task: {fix}")
    empty = [split for split in ("train", "val") if not record.get("rows", {}).get(split)]
    if empty:
        raise StalePack(f"task {task_name}: the pack at {location} has no {empty} rows (see its dropped rows): {fix}")
    return record


class DecodeSample:
    """A packed sample {image: the crop file's bytes, target, image_id} -> (image tensor, class index); picklable."""

    def __init__(self, transform, min_side: int | None) -> None:
        self.transform, self.min_side = transform, min_side

    def __call__(self, sample: dict) -> tuple[torch.Tensor, int]:
        return image_tensor(sample["image"], self.transform, self.min_side), int(sample["target"])


class PackedDataset(StreamingDataset):
    """One split's shards streamed in order (or shuffled, seeded, per epoch) and decoded like ManifestDataset's files.

    LitData assigns the chunks to DDP ranks and loader workers itself; a remote pack's chunks are downloaded
    ahead into a local cache (LitData's default one: ~/.lightning/chunks), a local one is read in place.
    """

    def __init__(
        self, input_dir: str, transform, min_side: int | None = None, shuffle: bool = False, seed: int = 0
    ) -> None:
        super().__init__(input_dir, shuffle=shuffle, seed=seed, transform=DecodeSample(transform, min_side))


# --------------------------------------------------------------------------------------------------------------
# The DataModule
# --------------------------------------------------------------------------------------------------------------


class TaskDataModule(L.LightningDataModule):
    """Train/val/test loaders over a task's rows: `rows` holds `split`, the image column and `target`.

    Args:
        num_workers: loader processes; they persist across epochs (no re-spawn, no re-import per epoch).
        pin_memory: page-locked batches, so the copy to the GPU is asynchronous (DMA) and overlaps the step;
            None: on when CUDA is present.
        prefetch_factor: batches each worker prepares ahead (num_workers > 0): a slow batch (large JPEGs) is
            absorbed instead of stalling the step.
        shuffle: reshuffle the train split every epoch; False: manifest order.
        packed: None: read the crop files; else the task's pack (folder or URI, see `packed_location`) whose
            <split>/ shards are streamed instead (LitData). Check it first with `open_pack`.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        num_classes: int,
        preprocess: Preprocess,
        batch_size: int = 64,
        num_workers: int = 0,
        balanced_sampling: bool = False,
        seed: int = 0,
        pin_memory: bool | None = None,
        prefetch_factor: int = 4,
        shuffle: bool = True,
        packed: str | None = None,
    ) -> None:
        super().__init__()
        if packed is not None and balanced_sampling:
            raise ValueError("weighted_sampler needs random access by index; streamed shards (litdata) have none")
        self.df, self.num_classes, self.preprocess = rows, num_classes, preprocess
        self.batch_size, self.num_workers = batch_size, num_workers
        self.balanced_sampling, self.seed, self.shuffle = balanced_sampling, seed, shuffle
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.prefetch_factor = prefetch_factor
        self.packed = packed

    def rows(self, split: str) -> pd.DataFrame:
        return self.df[self.df["split"] == split]

    def train_class_counts(self) -> list[int]:
        return class_counts(self.rows("train")["target"].to_numpy(), self.num_classes)

    def dataset(self, split: str) -> ManifestDataset | PackedDataset:
        transform = TrainTransform(self.preprocess, self.seed) if split == "train" else self.preprocess
        if self.packed is not None:
            shuffle = self.shuffle and split == "train"
            return PackedDataset(f"{self.packed}/{split}", transform, self.preprocess.size, shuffle, self.seed)
        rows = self.rows(split)
        paths, targets = rows[IMAGE_COLUMN].tolist(), rows["target"].astype(int).tolist()
        return ManifestDataset(paths, targets, transform, min_side=self.preprocess.size)

    def _loader(self, split: str, shuffle: bool, sampler=None) -> DataLoader:
        dataset = self.dataset(split)
        common = dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            # A last training batch of one image breaks BatchNorm ("expected more than 1 value per channel").
            drop_last=split == "train" and len(dataset) > self.batch_size,
        )
        if isinstance(dataset, PackedDataset):
            # The dataset shuffles itself (seeded, per epoch) and splits its chunks across DDP ranks and workers;
            # StreamingDataLoader tells it the epoch, and its state_dict lets a resumed run continue mid-epoch.
            return StreamingDataLoader(dataset, **common)
        return DataLoader(dataset, shuffle=shuffle and sampler is None, sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        if not self.balanced_sampling:
            return self._loader("train", shuffle=self.shuffle)
        counts = np.array(self.train_class_counts(), dtype=float)
        targets = self.rows("train")["target"].to_numpy()
        weights = 1.0 / counts[targets]  # each class drawn equally often in expectation
        generator = torch.Generator().manual_seed(self.seed)
        sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(targets), generator=generator)
        return self._loader("train", shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
