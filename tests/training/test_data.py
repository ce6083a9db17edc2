from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from carvision.preprocess import Preprocess, load_rgb
from carvision.training.data import TaskDataModule, TrainTransform

NORM = Preprocess(32, (0.5,) * 3, (0.5,) * 3)


def _images(tmp_path, n: int, classes: list[int]) -> pd.DataFrame:
    rows = []
    for i in range(n):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40 + i % 7, 20), (i * 3 % 255, 80, 120)).save(p)
        rows.append({"crop_path": str(p), "target": classes[i], "split": "train" if i % 5 else "val"})
    return pd.DataFrame(rows)


def test_evaluation_transform_letterboxes_to_a_square():
    out = NORM(Image.new("RGB", (40, 10), (255, 255, 255)))
    assert out.shape == (3, 32, 32)
    # a 40x10 image letterboxed to 32x32 is 8 rows tall, centred: the padding rows stay black (-1 after norm)
    assert torch.allclose(out[:, 0], torch.full_like(out[:, 0], -1.0))
    assert torch.allclose(out[:, 16], torch.full_like(out[:, 16], 1.0))


def test_train_augmentations_repeat_with_the_same_seed():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    runs = [TrainTransform(NORM, seed=s)(image) for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1]) and runs[0].shape == (3, 32, 32)
    many = [TrainTransform(NORM, seed=s)(image) for s in range(6)]
    assert any(not torch.equal(many[0], m) for m in many[1:])


def test_weighted_sampler_balances_classes(tmp_path):
    classes = [0] * 90 + [1] * 10
    df = _images(tmp_path, 100, classes)
    dm = TaskDataModule(df, 2, NORM, batch_size=50, balanced_sampling=True, seed=0)
    assert dm.train_class_counts() == [72, 8]
    drawn = torch.cat([y for _ in range(5) for _, y in dm.train_dataloader()])
    share_rare = (drawn == 1).float().mean().item()
    assert 0.35 < share_rare < 0.65  # ~0.1 without the sampler
    plain = TaskDataModule(df, 2, NORM, batch_size=50)
    plain_share = torch.cat([y for _, y in plain.train_dataloader()]).float().mean().item()
    assert plain_share < 0.2


def test_a_last_train_batch_of_one_image_is_dropped(tmp_path):
    df = _images(tmp_path, 42, [i % 2 for i in range(42)])  # every 5th image is val: 33 train = 32 + 1
    dm = TaskDataModule(df, 2, NORM, batch_size=32)
    assert [len(y) for _, y in dm.train_dataloader()] == [32]
    assert sum(len(y) for _, y in dm.val_dataloader()) == 9  # evaluation keeps every image


def test_a_large_jpeg_decodes_reduced_to_the_input_size_and_stays_close_to_a_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    # a smooth 640x480 photo (noise would make any two decodes differ a lot after the letterbox's shrink)
    ramp = np.linspace(0, 255, 640)[None, :, None] * np.ones((480, 1, 3)) * rng.uniform(0.3, 1, 3)
    path = tmp_path / "big.jpg"
    Image.fromarray(ramp.astype(np.uint8)).save(path, quality=92)
    df = pd.DataFrame({"crop_path": [str(path)], "target": [0], "split": ["val"]})
    x, _ = TaskDataModule(df, 2, NORM).dataset("val")[0]
    # 480 px short side, 32 px input: libjpeg's 1/8 scale (80x60) is the smallest that still covers 32 px
    reduced = load_rgb(path, min_side=32)
    assert reduced.size == (80, 60)
    assert torch.equal(x, NORM(reduced))
    full = NORM(load_rgb(path))
    assert not torch.equal(x, full) and (x - full).abs().mean() < 0.02  # ~1 grey level of 255 after norm 0.5


def test_loaders_pin_memory_keep_their_workers_and_prefetch(tmp_path):
    df = _images(tmp_path, 20, [i % 2 for i in range(20)])
    loader = TaskDataModule(df, 2, NORM, batch_size=4, num_workers=1, pin_memory=True).train_dataloader()
    assert loader.pin_memory and loader.persistent_workers and loader.prefetch_factor == 4
    in_process = TaskDataModule(df, 2, NORM, batch_size=4, pin_memory=False).val_dataloader()
    assert not in_process.pin_memory and in_process.prefetch_factor is None
