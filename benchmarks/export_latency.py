"""Single-image latency on the CPU of one classifier in three runtimes, side by side: PyTorch, ONNX fp32, ONNX int8.

python benchmarks/export_latency.py --source models/make_model/model.ckpt --exports exports/make_model
python benchmarks/export_latency.py --source models:/car-classifier@champion      # exports/<task> by default
python benchmarks/export_latency.py --smoke                # a tiny random model exported on the fly (CI, seconds)
python benchmarks/export_latency.py --random efficientnet_b2 --img-size 288   # a random model of a real size
python benchmarks/export_latency.py --source ... --threads 2 --rounds 40 --calls 25 --json latency.json

The files are the ones `carvision export --task <task> --int8` wrote; the benchmark checks that their metadata's
weights hash is the PyTorch model's, so that the three columns are one model. With --random (--smoke: a
mobilenetv3_small_050 at 64 px, and few rounds) it builds a randomly initialised timm model with 8 classes and
exports it with `carvision.export` (fp32, and static int8 calibrated on random inputs) into a temp folder: the work
is real, the predictions are meaningless (the int8 ranges of random inputs are not a photo's either).

What is timed: one call on one preprocessed image, (1, 3, size, size) float32 already in memory, which is what a
phone or the service does per photo: PyTorch's `model(x)` under inference_mode in channels_last (as
`inference.Predictor` runs it), onnxruntime's `session.run` (as `OnnxPredictor` runs it). The preprocessing
(letterbox + normalise of a decoded 640x480 photo) is the same code for all three and is timed apart.
- Threads pinned: torch.set_num_threads(T) and one inter-op thread; onnxruntime intra-op T, inter-op 1. T is
  --threads (default 1: one core, as a phone app's inference thread and a service worker get; and this machine has
  2 shared cores).
- Warm-up off the clock: --warmup calls of each runtime first.
- Interleaved rounds: --rounds rounds, each --calls calls of every runtime in turn (the order rotates each round),
  so a burst of load from another process touches all three alike. p50 and p99 are over every timed call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from carvision.inference import Predictor, weights_sha256
from carvision.onnx_predictor import FP32_FILE, INT8_FILE, OnnxPredictor, export_metadata
from carvision.preprocess import Preprocess
from carvision.training.backbones import create_backbone

RUNTIMES = ("PyTorch", "ONNX fp32", "ONNX int8")


def random_model(folder: Path, backbone: str, size: int, seed: int) -> tuple[Predictor, Path, Path]:
    """A randomly initialised classifier (8 classes), and its fp32 and int8 exports in `folder`."""
    from carvision.export import Int8Options, export_fp32, quantize, set_metadata

    torch.manual_seed(seed)
    names = [f"class_{i}" for i in range(8)]
    hp = {
        "task": "make_model",
        "class_names": names,
        "positive_class": None,
        "img_size": size,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    }
    predictor = Predictor(create_backbone(backbone, len(names)).eval(), hp, f"random {backbone}", device="cpu")
    meta = dict(source=predictor.source, version=None, weights_sha256=weights_sha256(predictor.model))
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    export_fp32(predictor.model, size, fp32, 17, export_metadata(hp, precision="fp32", **meta))
    rng = np.random.default_rng(seed)
    batches = (rng.standard_normal((1, 3, size, size), dtype=np.float32) for _ in range(4))
    quantize(fp32, int8, Int8Options(), batches)
    set_metadata(int8, export_metadata(hp, precision="int8", quantization="static (random inputs)", **meta))
    return predictor, fp32, int8


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", help="the PyTorch model: a model.ckpt or models:/<name>@<alias>")
    ap.add_argument("--exports", type=Path, help="folder with model.onnx and model.int8.onnx (default exports/<task>)")
    ap.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    ap.add_argument("--smoke", action="store_true", help="a tiny random model exported on the fly, few rounds")
    ap.add_argument(
        "--random", metavar="BACKBONE", help="a random timm model exported on the fly, e.g. efficientnet_b2"
    )
    ap.add_argument("--img-size", type=int, default=64, help="px, input side of the --random/--smoke model")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of both runtimes")
    ap.add_argument("--rounds", type=int, default=None, help="default 30 (smoke 3)")
    ap.add_argument("--calls", type=int, default=None, help="calls per runtime per round; default 20 (smoke 5)")
    ap.add_argument("--warmup", type=int, default=None, help="calls per runtime off the clock; default 20 (smoke 3)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.smoke and not args.random:
        args.random = "mobilenetv3_small_050"
    if not args.random and not args.source:
        ap.error("--source, --random or --smoke is required")
    rounds = args.rounds or (3 if args.smoke else 30)
    calls = args.calls or (5 if args.smoke else 20)
    warmup = args.warmup or (3 if args.smoke else 20)

    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):  # already set in this process (a test calling main twice): it stays 1
        torch.set_num_interop_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        if args.random:
            predictor, fp32, int8 = random_model(Path(tmp), args.random, args.img_size, args.seed)
        else:
            predictor = Predictor.load(args.source, tracking_uri=args.tracking_uri, device="cpu")
            folder = args.exports or Path("exports") / predictor.task
            fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
        onnx = {
            name: OnnxPredictor.load(f, threads=args.threads)
            for name, f in zip(RUNTIMES[1:], (fp32, int8), strict=True)
        }
        sha = weights_sha256(predictor.model)
        for name, p in onnx.items():
            if p.meta["weights_sha256"] != sha:
                raise SystemExit(f"{name} ({p.source}) was not exported from {args.source}: the weights differ")
        size = predictor.preprocess.size
        x = torch.from_numpy(np.random.default_rng(args.seed).standard_normal((1, 3, size, size), dtype=np.float32))
        x_cl = x.contiguous(memory_format=torch.channels_last)
        x_np = x.numpy()
        model = predictor.served_network()  # what Predictor.logits runs (with a post-hoc adjustment, if any)

        def torch_call() -> None:
            with torch.inference_mode():
                model(x_cl)

        def onnx_call(p: OnnxPredictor):
            return lambda: p.session.run(None, {p.session.get_inputs()[0].name: x_np})

        run = {"PyTorch": torch_call, **{name: onnx_call(p) for name, p in onnx.items()}}
        # The same input must give the same answer in all three before any clock runs.
        with torch.inference_mode():
            ref = model(x_cl).float().numpy()
        top = {
            name: int(p.session.run(None, {p.session.get_inputs()[0].name: x_np})[0].argmax())
            for name, p in onnx.items()
        }
        for fn in run.values():
            for _ in range(warmup):
                fn()
        samples: dict[str, list[float]] = {name: [] for name in run}
        order = list(run)
        for r in range(rounds):
            for name in order[r % 3 :] + order[: r % 3]:
                fn, out = run[name], samples[name]
                for _ in range(calls):
                    t = time.perf_counter()
                    fn()
                    out.append(time.perf_counter() - t)

        # The preprocessing of a decoded photo, the same for every runtime.
        photo = Image.fromarray(np.random.default_rng(args.seed).integers(0, 256, (480, 640, 3), dtype=np.uint8))
        pre = Preprocess(size, predictor.preprocess.mean, predictor.preprocess.std)
        for _ in range(5):
            pre(photo)
        pre_s = []
        for _ in range(50):
            t = time.perf_counter()
            pre(photo)
            pre_s.append(time.perf_counter() - t)
        files = {"PyTorch": None, "ONNX fp32": fp32.stat().st_size / 1e6, "ONNX int8": int8.stat().st_size / 1e6}
    load_after = os.getloadavg()

    p50_torch = percentile(samples["PyTorch"], 50)
    results = {
        "model": predictor.source if args.random else args.source,
        "task": predictor.task,
        "img_size": size,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "rounds": rounds,
        "calls_per_round": calls,
        "warmup_calls": warmup,
        "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
        "torch": torch.__version__,
        "preprocess_640x480_ms_p50": percentile(pre_s, 50),
        "top1_of_the_input": {"PyTorch": int(ref.argmax()), **top},
        "runtimes": {
            name: {
                "p50_ms": percentile(s, 50),
                "p99_ms": percentile(s, 99),
                "mean_ms": float(np.mean(s) * 1e3),
                "calls": len(s),
                "file_mb": files[name],
                "p50_vs_pytorch": percentile(s, 50) / p50_torch,
            }
            for name, s in samples.items()
        },
    }
    print(
        f"{results['model']}: {size} px input, batch 1, {args.threads} thread(s) per runtime (inter-op 1), "
        f"{rounds} interleaved rounds x {calls} calls each after {warmup} warm-up calls; {os.cpu_count()} cores, "
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print()
    print("| runtime | p50 ms | p99 ms | mean ms | p50 vs PyTorch | file MB |")
    print("|---|---|---|---|---|---|")
    for name, r in results["runtimes"].items():
        mb = "-" if r["file_mb"] is None else f"{r['file_mb']:.2f}"
        ms = f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['mean_ms']:.3f}"
        print(f"| {name} | {ms} | {r['p50_vs_pytorch']:.2f}x | {mb} |")
    print()
    print(
        f"preprocessing of a decoded 640x480 photo (letterbox + normalise, the same for all three): "
        f"{results['preprocess_640x480_ms_p50']:.3f} ms p50"
    )
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
