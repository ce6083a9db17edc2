"""Data: the split manifest as datasets, albumentations transforms, and a DataModule."""

from __future__ import annotations

import albumentations as A
import cv2
import lightning as L
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler


def build_transforms(
    img_size: int, mean: tuple[float, ...], std: tuple[float, ...], train: bool, seed: int | None = None
) -> A.Compose:
    """Letterbox to img_size x img_size (car crops are wide; stretching would distort the body shape).

    Training adds flips and mild geometric and photometric jitter; colour hue is kept because a photo's
    white balance varies, not the car's paint. `seed` makes the augmentations repeatable: albumentations
    keeps its own random state and ignores torch's and numpy's seeds.
    """
    resize = [
        A.LongestMaxSize(max_size=img_size),
        A.PadIfNeeded(img_size, img_size, border_mode=cv2.BORDER_CONSTANT, fill=0),
    ]
    augment = [
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-5, 5), p=0.5),
        A.RandomBrightnessContrast(0.15, 0.15, p=0.5),
    ]
    steps = [*resize, *(augment if train else []), A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(steps, seed=seed)


def class_counts(manifest_df: pd.DataFrame, num_classes: int, split: str = "train") -> list[int]:
    """Images per class_idx in one split of the split manifest (0 for classes absent from it)."""
    counts = manifest_df.loc[manifest_df["split"] == split, "class_idx"].value_counts()
    return [int(counts.get(i, 0)) for i in range(num_classes)]


class ManifestDataset(Dataset):
    """Images and class indices; returns (image tensor (3, H, W), class index)."""

    def __init__(self, paths: list[str], targets: list[int], transform: A.Compose) -> None:
        self.paths, self.targets, self.transform = list(paths), list(targets), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as im:
            image = np.asarray(im.convert("RGB"))
        return self.transform(image=image)["image"], self.targets[i]


class CarDataModule(L.LightningDataModule):
    """Train/val/test loaders over the `crop_path` and `class_idx` columns of the split manifest."""

    def __init__(
        self,
        manifest_df: pd.DataFrame,
        num_classes: int,
        img_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int = 64,
        num_workers: int = 0,
        balanced_sampling: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.df, self.num_classes = manifest_df, num_classes
        self.img_size, self.mean, self.std = img_size, mean, std
        self.batch_size, self.num_workers = batch_size, num_workers
        self.balanced_sampling, self.seed = balanced_sampling, seed

    def rows(self, split: str) -> pd.DataFrame:
        return self.df[self.df["split"] == split]

    def train_class_counts(self) -> list[int]:
        return class_counts(self.df, self.num_classes)

    def dataset(self, split: str) -> ManifestDataset:
        rows = self.rows(split)
        transform = build_transforms(self.img_size, self.mean, self.std, train=split == "train", seed=self.seed)
        return ManifestDataset(rows["crop_path"].tolist(), rows["class_idx"].astype(int).tolist(), transform)

    def _loader(self, split: str, shuffle: bool, sampler=None) -> DataLoader:
        dataset = self.dataset(split)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # A last training batch of one image breaks BatchNorm ("expected more than 1 value per channel").
            drop_last=split == "train" and len(dataset) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        if not self.balanced_sampling:
            return self._loader("train", shuffle=True)
        counts = np.array(self.train_class_counts(), dtype=float)
        targets = self.rows("train")["class_idx"].to_numpy()
        weights = 1.0 / counts[targets]  # each class drawn equally often in expectation
        generator = torch.Generator().manual_seed(self.seed)
        sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(targets), generator=generator)
        return self._loader("train", shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
