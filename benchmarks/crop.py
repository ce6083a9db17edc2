"""How fast the detector crop runs end to end, and where its time goes: decode, model, write.

python benchmarks/crop.py                                   # 48 photos of ~1 MP, mobilenet, batch 8, CUDA if any
python benchmarks/crop.py --n 16 --batch-size 4             # a quick check
python benchmarks/crop.py --n 40 --batch-size 8 --device cpu --threads 2
python benchmarks/crop.py --n 3000 --batch-size 32 --weights fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth  # COCO
python benchmarks/crop.py --detector resnet50
python benchmarks/crop.py --smoke                           # CI: 4 small photos on the CPU, a few seconds

On generated photo-like JPEGs (benchmarks/clean.py's `photo`: a drawn car on a textured background with sensor-like
noise, quality 90, 0.67 to 1.33 x --megapixels), in one process, side by side:
- phases: the crop stage's steps called directly, batch by batch, each on its own clock:
  decode (`read_image_bytes` + `decode_for_detection`, the reduced decode for the detector);
  model (`detect`: to tensors, the detector's resize, forward, box decoding, score filter and NMS; batched; on CUDA
  under fp16 autocast, synchronised before each clock reading); policy (`to_full_resolution` + `decide`);
  write (`crop_one`: the crop's decode at the scale it needs, cut, resize, JPEG encode and save);
- end to end: the stage's `crop(..., method="detector")` once over the same photos (1 crop worker, like the phases),
  model loading included (also timed apart).
One batch (on the CPU, one photo) runs through every phase first, off the clock (lazy imports, allocator, CUDA
context and kernels). Photos are in the page cache. On CUDA the decode and write still run on the CPU, in this one
process.

Weights: `--weights FILE` (a state dict of the chosen detector), else a randomly initialised model saved to a temp
file: nothing is downloaded. The cost of the detector's post-processing (score filter, NMS, top-k) grows with the
number of boxes above `score_thresh`, so that number must be realistic. An untrained detector scores every proposal
alike per class (its RoI features vanish through the random backbone), so no threshold gives a realistic count: the
benchmark adds seeded noise to its class logits (`ScoreNoise`, also in the model the stage loads), runs it once at
threshold 0 on a few photos, and takes the threshold at which it returns about --boxes (10) boxes per image, as a
COCO detector does on a street photo. The counts at thresholds around it, the boxes handed to NMS, and the mean count
returned in the timed run are printed. The policy takes any car/truck box (min_score 0, min_box_fraction 0) and keeps
car-less photos whole, so that every photo is written, as in a run where most listing photos show a car.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import roi_heads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean import make_photos, manifest_of  # noqa: E402  (benchmarks/clean.py: the photo generator)

from carvision.detection import detector as detector_module  # noqa: E402
from carvision.detection.detector import (  # noqa: E402
    DETECTORS,
    decode_for_detection,
    detect,
    load_detector,
    to_full_resolution,
)
from carvision.detection.policy import CropPolicy, decide  # noqa: E402
from carvision.images import read_image_bytes, tune_allocator  # noqa: E402
from carvision.settings import CropSettings, DetectorSettings  # noqa: E402
from carvision.stages.crop import crop, crop_one  # noqa: E402

PHASE_WORDS = {
    "decode": "reduced decode",
    "model": "detector's forward pass",
    "policy": "box policy",
    "write": "crops' decode and encode",
}
NAMES = {"mobilenet": "fasterrcnn_mobilenet_v3_large_fpn", "resnet50": "fasterrcnn_resnet50_fpn_v2"}


def random_weights(name: str, path: Path, seed: int) -> None:
    """A randomly initialised detector's state dict, saved where `load_detector(weights_file=...)` reads it."""
    builder, _ = DETECTORS[name]
    torch.manual_seed(seed)
    torch.save(builder(weights=None, weights_backbone=None, num_classes=91).state_dict(), path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ScoreNoise(torch.nn.Module):
    """The box predictor, with seeded N(0, sigma^2) noise added to its class logits.

    A randomly initialised detector's RoI features vanish (~1e-8) through the untrained backbone and FPN, so its
    class logits are its biases: every proposal gets the same score per class, and a threshold admits whole classes
    (up to 1000 proposals each) or nothing. The noise gives each proposal its own scores, so that a threshold can
    select a realistic number of boxes; it costs one randn of (proposals x 91) per batch."""

    def __init__(self, predictor: torch.nn.Module, sigma: float, seed: int) -> None:
        super().__init__()
        self.predictor, self.sigma, self.seed = predictor, sigma, seed
        self.generator: torch.Generator | None = None
        self.spread: list[float] | None = None  # a list: records the logits' spread across proposals (syncs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = self.predictor(x)
        if self.spread is not None:
            self.spread.append(float(logits.float().std(0).mean()))
        if self.generator is None:
            self.generator = torch.Generator(device=logits.device).manual_seed(self.seed)
        noise = torch.randn(logits.shape, generator=self.generator, device=logits.device)
        return logits + self.sigma * noise.to(logits.dtype), deltas


def with_score_noise(model: torch.nn.Module, sigma: float, seed: int) -> torch.nn.Module:
    model.roi_heads.box_predictor = ScoreNoise(model.roi_heads.box_predictor, sigma, seed)
    return model


class _CountingBoxOps:
    """`torchvision.ops.boxes` as the RoI heads see it, with batched_nms counting its input boxes."""

    def __init__(self, counts: list[int]) -> None:
        self.counts, self.ops = counts, roi_heads.box_ops

    def __getattr__(self, name: str):
        return getattr(self.ops, name)

    def batched_nms(self, boxes, scores, idxs, iou_threshold):
        self.counts.append(len(boxes))
        return self.ops.batched_nms(boxes, scores, idxs, iou_threshold)


@contextmanager
def nms_inputs(counts: list[int]):
    """Records how many boxes each image's post-processing hands to NMS (those above score_thresh); the RPN's own
    NMS is not counted."""
    original = roi_heads.box_ops
    roi_heads.box_ops = _CountingBoxOps(counts)
    try:
        yield
    finally:
        roi_heads.box_ops = original


def count_boxes(model: torch.nn.Module, images, device, half) -> tuple[list[np.ndarray], list[int]]:
    """(scores of the boxes the detector returns, boxes handed to NMS) per image."""
    nms_in: list[int] = []
    with nms_inputs(nms_in):
        found = detect(model, images, device=device, half=half)
    return [d.scores for d in found], nms_in


def calibrate(model: torch.nn.Module, images, device, half, target: int) -> tuple[float, list[np.ndarray], float]:
    """(the score threshold at which `model` returns about `target` boxes per image, the scores of every box it
    returns at threshold 0 with no cap, the spread of its class logits across proposals before any noise (NaN
    without ScoreNoise)). The counts are exact: NMS is per class, so a box above a threshold is only ever suppressed
    by a higher-scoring one, which is above it too (the detector then keeps at most 100)."""
    heads = model.roi_heads
    saved = heads.score_thresh, heads.detections_per_img
    heads.score_thresh, heads.detections_per_img = 0.0, 1_000_000
    noise = heads.box_predictor if isinstance(heads.box_predictor, ScoreNoise) else None
    if noise is not None:
        noise.spread = []
    try:
        scores, _ = count_boxes(model, images, device, half)
    finally:
        heads.score_thresh, heads.detections_per_img = saved
    spread = float("nan")
    if noise is not None:
        spread, noise.spread = float(np.mean(noise.spread)), None
    everything = np.sort(np.concatenate(scores))[::-1]
    k = target * len(images)
    chosen = float(f"{float(everything[k]):.3g}") if k < len(everything) else 0.0  # above it: about k boxes
    return chosen, scores, spread


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CI: --n 4 --megapixels 0.1 --batch-size 2 --detect-side 96")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--megapixels", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--detector", choices=sorted(NAMES), default="mobilenet")
    ap.add_argument("--detect-side", type=int, default=512, help="px; also the detector's min_size")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; default: torch's own")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1; default: cuda when available")
    ap.add_argument("--weights", default=None, help="the detector's state dict; default: random weights")
    ap.add_argument(
        "--score-thresh",
        type=float,
        default=None,
        help="default: with --weights the stage's default; with random weights, calibrated to --boxes",
    )
    ap.add_argument("--boxes", type=int, default=10, help="random weights: boxes per image to calibrate to")
    ap.add_argument("--score-noise", type=float, default=1.0, help="random weights: sigma of the logit noise")
    ap.add_argument("--calibration-photos", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=3.0, help="sensor-noise sigma of the generated photos")
    ap.add_argument(
        "--num-workers", type=int, default=DetectorSettings().num_workers, help="the stage's decode processes"
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.megapixels, args.batch_size, args.detect_side = 4, 0.1, 2, 96
        args.device = args.device or "cpu"

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    half = device.type == "cuda"
    name = NAMES[args.detector]
    c = CropSettings()
    defaults = DetectorSettings()
    min_size = args.detect_side  # so that the detector never upsamples what the decode shrank
    max_size = round(args.detect_side * defaults.max_size / defaults.min_size)
    random = args.weights is None
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench-crop-") as tmp:
        tmp = Path(tmp)
        weights = args.weights
        if random:
            weights = str(tmp / "detector.pt")
            random_weights(name, Path(weights), args.seed)
        (tmp / "raw").mkdir()
        t0 = time.perf_counter()
        paths = make_photos(tmp / "raw", args.n, args.megapixels, args.seed, args.noise)
        sizes = []
        for p in paths:
            p.read_bytes()  # into the page cache: no phase pays for the first read
            with Image.open(p) as im:
                sizes.append(im.size)
        mp = np.mean([w * h for w, h in sizes]) / 1e6
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"{args.n} photos, {mp:.2f} MP mean, {mb:.1f} MB, generated in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )

        def decode_one(i: int):
            w, h = sizes[i]
            return decode_for_detection(read_image_bytes(paths[i]), max_pixels=w * h, detect_side=args.detect_side)

        def loaded(thresh: float) -> torch.nn.Module:
            model = load_detector(name, weights, device, min_size=min_size, max_size=max_size, score_thresh=thresh)
            return with_score_noise(model, args.score_noise, args.seed) if random else model

        # The score threshold, and the box counts around it, on a few photos.
        t0 = time.perf_counter()
        model = loaded(0.0)
        sync(device)
        load_s = time.perf_counter() - t0
        calib = [decode_one(i).image for i in range(min(args.calibration_photos, args.n))]
        chosen, calib_scores, spread = calibrate(model, calib, device, half, args.boxes)
        thresh = args.score_thresh if args.score_thresh is not None else chosen if random else defaults.score_thresh
        model.roi_heads.score_thresh = thresh
        _, nms_in = count_boxes(model, calib, device, half)
        shown = sorted({thresh / 2, thresh, thresh * 2, defaults.score_thresh})
        counts = {t: np.mean([(sc > t).sum() for sc in calib_scores]) for t in shown}

        policy = CropPolicy(min_score=0.0, min_box_fraction=0.0, without_car="keep", margin=0.0)
        tune_allocator()  # as the crop stage's workers do
        out = tmp / "phases"
        timers = {"decode": 0.0, "model": 0.0, "policy": 0.0, "write": 0.0}
        boxes_returned, box_share, decode_scale = [], [], []

        def write(i: int, box: list[float] | None, dst: Path) -> str | None:
            w, h = sizes[i]
            source, _, _ = crop_one(
                (str(paths[i]), str(dst), box, w, h),
                margin=c.margin,
                min_box_side=c.min_box_side,
                max_side=c.max_side,
                without_box="keep",
                jpeg_quality=c.jpeg_quality,
            )
            return source

        def run_batch(idx: list[int], clock: bool) -> None:
            t = time.perf_counter()
            decoded = [decode_one(i) for i in idx]
            t1 = time.perf_counter()
            sync(device)
            found = detect(model, [d.image for d in decoded], device=device, half=half)
            sync(device)
            t2 = time.perf_counter()
            decisions = []
            for dets, d in zip(found, decoded, strict=True):
                full = to_full_resolution(dets, d)
                decisions.append(decide(full.boxes, full.scores, full.labels, d.size, policy))
            t3 = time.perf_counter()
            for i, dec in zip(idx, decisions, strict=True):
                box = None if dec.detected_box is None else list(dec.detected_box)
                write(i, box, out / f"{i:05d}.jpg")
                if clock and box is not None:
                    box_share.append((box[2] - box[0]) * (box[3] - box[1]) / (sizes[i][0] * sizes[i][1]))
            t4 = time.perf_counter()
            if clock:
                boxes_returned.extend(len(f.boxes) for f in found)
                decode_scale.extend(d.image.width / d.size[0] for d in decoded)
                for key, (a, b) in zip(timers, ((t, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
                    timers[key] += b - a

        batches = [list(range(s, min(s + args.batch_size, args.n))) for s in range(0, args.n, args.batch_size)]
        run_batch(batches[0] if device.type == "cuda" else batches[0][:1], clock=False)  # warm-up, off the clock
        for b in batches:
            run_batch(b, clock=True)

        # The write of a listing photo's car: a box of 60% x 40% of the photo, centred (the generated car's width).
        t0 = time.perf_counter()
        for i, (w, h) in enumerate(sizes):
            write(i, [0.2 * w, 0.3 * h, 0.8 * w, 0.7 * h], tmp / "car.jpg")
        car_write_s = time.perf_counter() - t0

        # End to end: the stage itself over the same photos; its model gets the same score noise (random weights).
        df = manifest_of(paths)
        df["width"] = [w for w, _ in sizes]
        df["height"] = [h for _, h in sizes]
        settings = DetectorSettings(
            name=name,
            weights_file=weights,
            detect_side=args.detect_side,
            min_size=min_size,
            max_size=max_size,
            score_thresh=thresh,
            min_score=0.0,
            min_box_fraction=0.0,
            without_car="keep",
            batch_size=args.batch_size,
            half=half,
            num_workers=args.num_workers,
        )
        original_load = detector_module.load_detector
        if random:
            detector_module.load_detector = lambda *a, **k: with_score_noise(
                original_load(*a, **k), args.score_noise, args.seed
            )
        try:
            t0 = time.perf_counter()
            result = crop(
                df,
                tmp / "stage",
                margin=c.margin,
                min_box_side=c.min_box_side,
                max_side=c.max_side,
                jpeg_quality=c.jpeg_quality,
                workers=1,
                method="detector",
                detector=settings,
            )
            sync(device)
            stage_s = time.perf_counter() - t0
        finally:
            detector_module.load_detector = original_load
        kept, from_box = len(result.kept), int((result.kept["crop_source"] == "detector").sum())
    load_after = os.getloadavg()

    total = sum(timers.values())
    print()
    if random:
        print(
            f"detector {name}: RANDOMLY INITIALISED weights (saved to a temp file, nothing downloaded), logit noise "
            f"sigma {args.score_noise:g} (see below): the boxes are meaningless, only the work is real"
        )
    else:
        print(f"detector {name}: weights {args.weights}")
    print(
        f"device {device}{' (fp16 autocast)' if half else ''}; torch threads {torch.get_num_threads()}; "
        f"batch {args.batch_size}; detect_side {args.detect_side} (detector min_size {min_size}, max_size "
        f"{max_size}); {args.n} photos of {mp:.2f} MP mean ({mb / args.n * 1e3:.0f} kB); {os.cpu_count()} cores"
    )
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print()
    print("| phase | ms per image | share | images/s |")
    print("|---|---|---|---|")
    for key, sec in timers.items():
        print(f"| {key} | {sec / args.n * 1e3:.1f} | {sec / total:.0%} | {args.n / sec:.1f} |")
    print(f"| sum of phases | {total / args.n * 1e3:.1f} | 100% | {args.n / total:.1f} |")
    print()
    print(
        f"end to end, crop(method='detector'), 1 crop worker, {args.num_workers} decode workers: "
        f"{args.n / stage_s:.1f} images/s ({stage_s:.1f} s for "
        f"{args.n}, model loading included: {load_s:.2f} s measured apart; {kept} kept, {from_box} cut to a box)"
    )
    print()
    at = ", ".join(f"{t:g}: {n:.1f}" for t, n in counts.items())
    print(
        f"box count: score_thresh {thresh:g}"
        + (f", calibrated on {len(calib)} photos to ~{args.boxes} boxes per image" if thresh == chosen else "")
        + f". Boxes returned per image by threshold, before the detector's cap of 100: {at}. In the timed run the "
        f"model returned {np.mean(boxes_returned):.1f} per image (min {min(boxes_returned)}, max "
        f"{max(boxes_returned)}); NMS got {np.mean(nms_in):.0f} per image (calibration photos)."
    )
    if random:
        print(
            f"Why: untrained, the backbone and FPN shrink the RoI features to almost nothing (here the class logits "
            f"differ across proposals by {spread:.1e}, std per class, averaged over classes), so a random detector "
            "scores every proposal alike per class and a threshold admits whole classes (hundreds of boxes after NMS, "
            "capped at 100) or nothing. The benchmark adds seeded N(0, sigma^2) noise to the class logits "
            "(negligible work), then picks the threshold that returns about as many boxes as a COCO detector does on "
            "a street photo (5-20). The post-processing's cost (score filter, NMS, top-k) grows with the number of "
            "boxes above the threshold; random scores barely overlap, so NMS gets few more boxes than it returns, "
            "where a trained detector hands it several per object: the post-processing here is, if anything, "
            "cheaper than real. Box decoding and the box head's cost do not depend on the threshold: the head sees "
            "the RPN's maximum of 1000 proposals per image here (a trained RPN may give fewer)."
        )
    short = np.mean([min(w, h) for w, h in sizes])
    print(
        f"decode: photos decoded at {np.mean(decode_scale):.2f} of full size on average for detect_side "
        f"{args.detect_side} (shorter side {short:.0f} px on average; JPEG reduces by 1/2, 1/4 or 1/8 only while the "
        f"shorter side stays >= detect_side), then the detector resizes them to {min_size} px itself."
    )
    share = f"{np.mean(box_share):.0%}" if box_share else "n/a"
    print(
        f"write: {len(box_share)} of {args.n} photos cut to a car/truck box (mean {share} of the photo), the rest "
        f"written whole; a box of 60% x 40% of the photo, a listing's car, costs "
        f"{car_write_s / args.n * 1e3:.1f} ms per image to write. A box's write decodes at the smallest JPEG scale "
        f"that leaves {c.max_side} px on its longer side, so small boxes cost more than large ones."
    )
    cpu_ms = (timers["decode"] + timers["policy"] + timers["write"]) / args.n * 1e3
    bound = max(timers, key=timers.get)
    print(
        f"bound: {bound} ({timers[bound] / total:.0%} of the time) on {device.type}. The CPU-side work (decode + "
        f"policy + write) costs {cpu_ms:.1f} ms per image in one process: alone it caps one process at "
        f"{1e3 / cpu_ms:.0f} images/s, whatever the device."
    )
    print(
        "The issue's target, 1,500 images/s end to end on one H100/H200 with the mobilenet detector, can only be "
        "checked on such a GPU (run this there: it picks CUDA with fp16); "
        + (
            f"this run is on the CPU, where the {PHASE_WORDS[bound]} bounds the figure ({timers[bound] / total:.0%} of "
            "the time), and it says nothing about the GPU figure."
            if device.type == "cpu"
            else "compare the end-to-end figure above with it."
        )
    )


if __name__ == "__main__":
    main()
