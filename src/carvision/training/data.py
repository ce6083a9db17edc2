"""Data: a task's rows of a split manifest as datasets, the training augmentation, and a DataModule whose loaders
keep a GPU fed: worker processes that persist across epochs, pinned memory, batches prefetched, and JPEGs decoded
at the smallest DCT scale that still covers the model's input."""

from __future__ import annotations

import albumentations as A
import lightning as L
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from carvision.preprocess import Preprocess, letterbox, load_rgb, normalise
from carvision.tasks import IMAGE_COLUMN


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


class ManifestDataset(Dataset):
    """Image files and class indices; returns (image tensor (3, H, W), class index).

    Args:
        min_side: px; a JPEG larger than needed decodes reduced (1/2, 1/4 or 1/8, by libjpeg's DCT scaling) as long
            as its shorter side stays at least this: the model's input side, so the letterbox still only shrinks.
            A 1.9 MP photo for a 260 px input decodes at 1/4, about 3x faster, and its letterboxed pixels differ
            from a full decode's by about 1 grey level in 255 on average. Crops already that small decode whole.
    """

    def __init__(self, paths: list[str], targets: list[int], transform, min_side: int | None = None) -> None:
        self.paths, self.targets, self.transform = list(paths), list(targets), transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_rgb(self.paths[i], min_side=self.min_side)), self.targets[i]


class TaskDataModule(L.LightningDataModule):
    """Train/val/test loaders over a task's rows: `rows` holds `split`, the image column and `target`.

    Args:
        num_workers: loader processes; they persist across epochs (no re-spawn, no re-import per epoch).
        pin_memory: page-locked batches, so the copy to the GPU is asynchronous (DMA) and overlaps the step;
            None: on when CUDA is present.
        prefetch_factor: batches each worker prepares ahead (num_workers > 0): a slow batch (large JPEGs) is
            absorbed instead of stalling the step.
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
    ) -> None:
        super().__init__()
        self.df, self.num_classes, self.preprocess = rows, num_classes, preprocess
        self.batch_size, self.num_workers = batch_size, num_workers
        self.balanced_sampling, self.seed = balanced_sampling, seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.prefetch_factor = prefetch_factor

    def rows(self, split: str) -> pd.DataFrame:
        return self.df[self.df["split"] == split]

    def train_class_counts(self) -> list[int]:
        return class_counts(self.rows("train")["target"].to_numpy(), self.num_classes)

    def dataset(self, split: str) -> ManifestDataset:
        rows = self.rows(split)
        transform = TrainTransform(self.preprocess, self.seed) if split == "train" else self.preprocess
        paths, targets = rows[IMAGE_COLUMN].tolist(), rows["target"].astype(int).tolist()
        return ManifestDataset(paths, targets, transform, min_side=self.preprocess.size)

    def _loader(self, split: str, shuffle: bool, sampler=None) -> DataLoader:
        dataset = self.dataset(split)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            # A last training batch of one image breaks BatchNorm ("expected more than 1 value per channel").
            drop_last=split == "train" and len(dataset) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        if not self.balanced_sampling:
            return self._loader("train", shuffle=True)
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
