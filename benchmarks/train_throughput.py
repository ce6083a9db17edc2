"""Training throughput, images/s side by side in one run: the input pipeline alone, a plain timm + PyTorch loop,
and carvision's Lightning path, on the same data and device.

python benchmarks/train_throughput.py                 # CUDA: efficientnet_b2 @260 and resnet152 @224, bf16, NHWC
python benchmarks/train_throughput.py --models efficientnet_b2:260 --batch-size 128 --num-workers 14 --repeats 5
python benchmarks/train_throughput.py --device cpu --models mobilenetv3_small_050:64 --rows 768 --batch-size 32 \
    --num-workers 1 --repeats 3                       # a CPU run (the figure in docs/training.md)
python benchmarks/train_throughput.py --smoke         # CI: 20 steps of the tiny model on the CPU, a few seconds

The data: generated photo-like car crops (benchmarks/clean.py's `photo`: a drawn car on a textured background with
sensor noise, JPEG quality 90) whose longer side is about 1.5x the model's input, like crops cut for that model;
--distinct files, listed --rows times over in a train split (the page cache holds them; every row is decoded
and augmented anew). Per model, three ways over the same rows:
- loader: carvision's train DataLoader (`TaskDataModule`: reduced-size JPEG decode, letterbox, augmentation,
  normalisation in --num-workers persistent worker processes, pinned memory on CUDA, prefetch), each batch copied
  to the device (non-blocking) and nothing else: the most the input pipeline delivers;
- plain: a plain loop on the same loader: `timm.create_model`, channels_last, `create_optimizer_v2` with the
  train settings' optimizer, timm's cosine stepped per update, cross-entropy, bf16 autocast on CUDA (fp32 on CPU);
- lightning: the train stage's own path: `build_classifier` and `build_trainer` (carvision.stages.train) with the
  project's settings (conf/, `trainer=gpu` on CUDA: bf16-mixed), `Trainer.fit` on the same `TaskDataModule`.
Each timed epoch is clocked from the end of its --skip-th batch to the end of its last (the device synchronised
at both ends), so worker start-up and each epoch's first batches are off the clock; a Lightning fit runs one
warm-up epoch and one timed epoch; plain and loader share one warm-up epoch. The three run interleaved, in a
rotating order, --repeats times; medians are reported, and the ratios of medians:
lightning / plain (the cost of the Lightning path), and loader headroom = loader / lightning images/s (> 1: the
input pipeline is faster than the step it feeds). Validation, checkpoint writes and the train stage's resume
checkpoints (train.checkpoint_every_n_steps) are outside the clock.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import timm
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean import photo  # noqa: E402  (benchmarks/clean.py: the photo generator)

from carvision import settings  # noqa: E402
from carvision.config import compose  # noqa: E402
from carvision.preprocess import Preprocess  # noqa: E402
from carvision.stages.train import build_classifier, build_trainer  # noqa: E402
from carvision.training.backbones import input_config  # noqa: E402
from carvision.training.data import TaskDataModule  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
GPU_MODELS = ["efficientnet_b2:260", "resnet152:224"]
CLASSES = 100  # make/model classes of a real scrape's order of magnitude; only the head's width depends on it


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_crops(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    """n JPEG crops whose longer side is ~1.5 x `size` (3:2), photo-like (benchmarks/clean.py's `photo`)."""
    rng = np.random.default_rng(seed)
    megapixels = (1.5 * size) ** 2 * 2 / 3 / 1e6
    paths = []
    for i in range(n):
        p = folder / f"{size}-{i:05d}.jpg"
        photo(rng, megapixels * rng.uniform(0.8, 1.2)).save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


def rows_of(paths: list[Path], n_rows: int, batch_size: int, seed: int) -> pd.DataFrame:
    """`n_rows` train rows cycling over the files, random classes, and one batch of val rows (the Lightning
    path's validation needs some; it is off the clock)."""
    rng = np.random.default_rng(seed)
    n = n_rows + batch_size
    files = [str(paths[i % len(paths)]) for i in range(n)]
    return pd.DataFrame(
        {
            "crop_path": files,
            "target": rng.integers(0, CLASSES, n),
            "split": ["train"] * n_rows + ["val"] * batch_size,
        }
    )


class Clock:
    """Images/s of one epoch from the end of batch `skip` to the end of the last one."""

    def __init__(self, device: torch.device, skip: int, batch_size: int) -> None:
        self.device, self.skip, self.batch_size = device, skip, batch_size
        self.t0 = self.rate = None

    def batch_done(self, i: int, last: int) -> None:
        if i == self.skip - 1:
            sync(self.device)
            self.t0 = time.perf_counter()
        if i == last:
            sync(self.device)
            self.rate = (last + 1 - self.skip) * self.batch_size / (time.perf_counter() - self.t0)


class LightningClock(L.Callback):
    """The Clock in the Lightning fit's last epoch (the first one is its warm-up)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1:
            self.clock.batch_done(batch_idx, trainer.num_training_batches - 1)


def loader_epoch(loader, device: torch.device, clock: Clock) -> float:
    last = len(loader) - 1
    for i, (x, y) in enumerate(loader):
        x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        clock.batch_done(i, last)
    return clock.rate


class PlainLoop:
    """timm + PyTorch, nothing else: the same model, optimizer and schedule as the train settings ask for."""

    def __init__(self, name: str, t: settings.TrainSettings, device: torch.device, steps_per_epoch: int) -> None:
        self.device = device
        self.model = timm.create_model(name, num_classes=CLASSES).to(device).to(memory_format=torch.channels_last)
        self.opt = create_optimizer_v2(
            self.model, opt=t.optimizer, lr=t.lr, weight_decay=t.weight_decay, momentum=t.momentum,
            layer_decay=t.layer_decay,
        )  # fmt: skip
        self.sched, _ = create_scheduler_v2(
            self.opt, sched="cosine", num_epochs=1000, step_on_epochs=False, updates_per_epoch=steps_per_epoch
        )
        self.bf16 = device.type == "cuda"
        self.steps = 0

    def epoch(self, loader, clock: Clock) -> float:
        self.model.train()
        last = len(loader) - 1
        for i, (x, y) in enumerate(loader):
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.steps += 1
            self.sched.step_update(num_updates=self.steps)
            clock.batch_done(i, last)
        return clock.rate


def project_settings(name: str, size: int, args, device: torch.device) -> settings.Settings:
    """conf/ as the train stage reads it, with this model, and the GPU trainer on CUDA."""
    overrides = [
        f"backbone.name={name}",
        f"backbone.img_size={size}",
        "backbone.pretrained=false",  # nothing is downloaded: random weights train at the same speed
        f"train.batch_size={args.batch_size}",
        f"train.num_workers={args.num_workers}",
        "train.epochs=2",  # a Lightning fit: one warm-up epoch, one timed epoch
        f"trainer={'gpu' if device.type == 'cuda' else 'cpu'}",
    ]
    return settings.parse(compose(overrides, conf_dir=CONF))


def loader_cost(dm: TaskDataModule, n: int = 32) -> float:
    """ms of one CPU core per training image: decode, letterbox, augmentation, normalisation (this process)."""
    ds = dm.dataset("train")
    ds[0]
    t = time.perf_counter()
    for i in range(1, n + 1):
        ds[i % len(ds)]
    return (time.perf_counter() - t) / n * 1e3


def bench_model(spec: str, args, device: torch.device, tmp: Path) -> dict:
    name, size = spec.split(":")[0], int(spec.split(":")[1])
    s = project_settings(name, size, args, device)
    task = s.tasks["make_model"]
    t = s.train
    t0 = time.perf_counter()
    paths = make_crops(tmp, args.distinct, size, args.seed)
    rows = rows_of(paths, args.rows, args.batch_size, args.seed)
    generated_s = time.perf_counter() - t0
    class_names = [f"class{i:03d}" for i in range(CLASSES)]
    counts = np.bincount(rows.loc[rows["split"] == "train", "target"], minlength=CLASSES).tolist()
    module = build_classifier(s, task, class_names, counts)
    img_size, mean, std = input_config(module.optimized, size)
    pin = device.type == "cuda"

    def datamodule() -> TaskDataModule:
        pre = Preprocess(img_size, mean, std)
        return TaskDataModule(rows, CLASSES, pre, t.batch_size, t.num_workers, False, args.seed, pin_memory=pin)

    loader = datamodule().train_dataloader()  # plain and loader share it (and its persistent workers)
    plain = PlainLoop(name, t, device, len(loader))
    clock = lambda: Clock(device, args.skip, args.batch_size)  # noqa: E731
    loader_epoch(loader, device, clock())  # warm-up, off the clock: workers start, files enter the page cache
    plain.epoch(loader, clock())  # warm-up: cuDNN autotuning, the allocator's pools

    def lightning_rate() -> float:
        c = clock()
        trainer, _ = build_trainer(s, t, f"val_{task.monitor}", False, tmp / "staging")
        trainer.callbacks.append(LightningClock(c))
        trainer.fit(module, datamodule=datamodule())
        del trainer
        gc.collect()  # the fit's loader workers end here, not during the next measurement
        return c.rate

    runs = {
        "loader": lambda: loader_epoch(loader, device, clock()),
        "plain": lambda: plain.epoch(loader, clock()),
        "lightning": lightning_rate,
    }
    rates: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for r in range(args.repeats):
        for key in order[r % 3 :] + order[: r % 3]:  # rotate, so no way always runs first or last
            rates[key].append(runs[key]())
    cost_ms = loader_cost(datamodule())
    return {
        "model": name,
        "size": size,
        "rates": rates,
        "median": {k: statistics.median(v) for k, v in rates.items()},
        "precision": s.trainer.precision,
        "batches": len(rows[rows["split"] == "train"]) // args.batch_size,
        "cost_ms": cost_ms,
        "generated_s": generated_s,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CI: 20 steps of the tiny model at 64 px on the CPU")
    ap.add_argument("--models", nargs="+", default=None, help="name:px ...; default: " + " ".join(GPU_MODELS))
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1; default: cuda when available")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rows", type=int, default=128 * 40, help="train rows per epoch (batches x batch size)")
    ap.add_argument("--distinct", type=int, default=512, help="distinct JPEG files the rows cycle over")
    ap.add_argument("--num-workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--skip", type=int, default=5, help="batches of each timed epoch left off the clock")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; default: torch's own")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.smoke:
        # 5 batches of 8 per epoch, one repeat: 10 training steps in the Lightning fit (warm-up and timed epochs)
        # and 10 in the plain loop (warm-up and timed epochs)
        args.models, args.device = args.models or ["mobilenetv3_small_050:64"], args.device or "cpu"
        args.batch_size, args.rows, args.distinct, args.num_workers = 8, 40, 8, 0
        args.skip, args.repeats, args.threads = 1, 1, args.threads or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models = args.models or (GPU_MODELS if device.type == "cuda" else ["mobilenetv3_small_050:64"])
    torch.backends.cudnn.benchmark = True  # fixed input sizes: both paths autotune their convolutions
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        results = [bench_model(m, args, device, Path(tmp)) for m in models]
    load_after = os.getloadavg()

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print()
    print(
        f"device {device} ({gpu}); {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; batch "
        f"{args.batch_size}; {args.num_workers} loader workers; {args.repeats} interleaved repeats; each timed epoch "
        f"{results[0]['batches']} batches, clocked after its first {args.skip}; RANDOMLY INITIALISED weights, "
        f"nothing downloaded"
    )
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print()
    columns = ["model", "px", "precision", "loader img/s", "plain img/s", "lightning img/s", "lightning / plain"]
    print("| " + " | ".join([*columns, "loader headroom"]) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for r in results:
        m = r["median"]
        print(
            f"| {r['model']} | {r['size']} | {r['precision']} | {m['loader']:.0f} | {m['plain']:.0f} | "
            f"{m['lightning']:.0f} | {m['lightning'] / m['plain']:.3f} | {m['loader'] / m['lightning']:.2f} |"
        )
    print()
    for r in results:
        each = "; ".join(f"{k} " + ", ".join(f"{v:.0f}" for v in vs) for k, vs in r["rates"].items())
        print(f"{r['model']} per repeat (images/s): {each}")
    print()
    for r in results:
        m = r["median"]
        cores = 4000 * r["cost_ms"] / 1e3
        headroom = m["loader"] / m["lightning"]
        bound = "the input pipeline (CPU)" if headroom < 1.2 else f"the training step on {device.type}"
        print(
            f"{r['model']}: the loader costs {r['cost_ms']:.1f} ms of one core per image (decode, letterbox, "
            f"augmentation, normalisation), so 4,000 images/s needs ~{cores:.0f} busy loader cores; loader headroom "
            f"{headroom:.2f}: bound by {bound}."
        )
    print(
        "Targets (one H100/H200-class GPU): lightning / plain >= 0.97, loader headroom >= 1.2, efficientnet_b2 >= "
        "4,000 images/s. "
        + (
            "This run is on the CPU: its ratios describe the CPU path only, and say nothing of the GPU figures."
            if device.type == "cpu"
            else "Compare the table with them."
        )
    )


if __name__ == "__main__":
    main()
