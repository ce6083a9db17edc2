"""How fast clean verifies photos, against a plain full decode of the same files, and what it writes to disk.

python benchmarks/clean.py                       # 120 photos of ~1.5 MP, workers 1 and 2
python benchmarks/clean.py --n 300 --megapixels 2.0 --workers 1 2 --noise 6

Side by side in one run, on the same generated photo-like JPEGs (a drawn car on a textured background with
sensor-like noise, quality 90, 1 to 2 MP):
- plain decode: `Image.open(p).convert("RGB")` of every file;
- clean: the clean stage's `clean()` (read, hash, reduced-size verify-decode, pHash, duplicate search), with
  1 worker, and then with more, to show how it scales.
Each method runs in a fresh process (files in the page cache, imports done before the clock starts), so that
neither inherits the other's allocator state. Speeds are images per CPU-second (that process and its workers), so
that they compare across machines with different loads; wall-clock images/s is printed beside them. Ratios matter
here, absolute figures less.
Disk: before this change, clean wrote a full-size quality-95 JPEG copy of every photo; the "before" figure is
those copies' bytes (encoded here, in memory); "after" is what clean writes now (its manifest, dropped rows and
report).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from carvision.sample.catalogue import CLASSES
from carvision.sample.drawing import render_car


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (the stage's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def photo(rng: np.random.Generator, megapixels: float, noise: float = 3.0) -> Image.Image:
    """A photo-like image: textured background, a car, noise (so JPEG entropy and decode cost are realistic)."""
    w = int(round((megapixels * 1e6 * 3 / 2) ** 0.5))
    h = int(round(w * 2 / 3))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 200, 3).astype(np.float32)
    grad = (ys / h)[..., None] * rng.uniform(-60, 60, 3) + (xs / w)[..., None] * rng.uniform(-40, 40, 3)
    bg = np.clip(base + grad + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(bg)
    draw = ImageDraw.Draw(im)
    for _ in range(8):  # buildings, other cars, signs: scenes differ, so pHash tells the photos apart
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(w // 10, w // 2), y0 + rng.integers(h // 10, h // 2)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    car = render_car(
        rng, int(rng.integers(len(CLASSES))), tuple(int(c) for c in rng.integers(0, 255, 3)), "side", w * 0.6
    )
    car = car.convert("RGBA")
    im.paste(car, (int(w * 0.2), int(h * 0.5 - car.height / 2)), car)
    noisy = np.asarray(im, dtype=np.float32) + rng.normal(0, noise, (h, w, 3))  # sensor noise: what makes JPEGs big
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_photos(folder: Path, n: int, megapixels: float, seed: int, noise: float) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"{i:05d}.jpg"
        photo(rng, rng.uniform(megapixels * 0.67, megapixels * 1.33), noise).save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


def _run(method: str, paths: list[str], workers: int):
    from carvision.stages.clean import clean

    if method == "plain":
        for p in paths:
            with Image.open(p) as im:
                im.convert("RGB")
        return None
    df = manifest_of([Path(p) for p in paths])
    return clean(df, min_side=32, max_pixels=40_000_000, near_duplicate_bits=4, workers=workers)


def _measure(method: str, paths: list[str], warm: list[str], workers: int, out: multiprocessing.Queue) -> None:
    """Runs one method in this fresh process and puts (wall s, CPU s incl. workers, clean's result or None).

    First, off the clock, the method runs once in this process on a few other photos: one-time costs (lazy imports
    such as scipy's DCT for the pHash, decoder set-up) are paid there and inherited by forked workers.
    """
    _run(method, warm, 1)
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = _run(method, paths, workers)
    out.put((time.perf_counter() - wall, cpu_seconds() - cpu, result))


def timed(method: str, paths: list[Path], warm: list[Path], workers: int = 1):
    """(wall s, CPU s, result) of a method run in a fresh process: neither method inherits the other's heap, whose
    state decides whether each decode buffer is page-faulted in anew (up to half of a plain decode's time)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(method, [str(p) for p in paths], [str(p) for p in warm], workers, out))
    proc.start()
    got = out.get()
    proc.join()
    return got


def manifest_of(paths: list[Path]) -> pd.DataFrame:
    n = len(paths)
    return pd.DataFrame(
        {
            "image_id": [f"l{i}/{p.name}" for i, p in enumerate(paths)],
            "path": [str(p) for p in paths],
            "listing_id": [f"l{i}" for i in range(n)],
            **{c: [""] * n for c in ("make", "model", "submodel", "year", "viewpoint", "source_split")},
            "label": ["Make Model"] * n,
            "bbox": [None] * n,
        }
    ).astype({c: "string" for c in ("image_id", "path", "listing_id", "label")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--megapixels", type=float, default=1.5)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--noise",
        type=float,
        default=3.0,
        help="sensor-noise sigma in levels: 3 gives ~130 kB per MP at quality 90, like marketplace photos; "
        "6 gives ~220 kB per MP, where entropy decoding (which no reduced decode skips) dominates",
    )
    args = ap.parse_args()

    from carvision import manifest, stage_io

    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        tmp = Path(tmp)
        (tmp / "raw").mkdir()
        t0 = time.perf_counter()
        paths = make_photos(tmp / "raw", args.n, args.megapixels, args.seed, args.noise)
        (tmp / "warm").mkdir()
        warm = make_photos(tmp / "warm", 4, args.megapixels, args.seed + 1, args.noise)
        input_bytes = sum(p.stat().st_size for p in paths)
        pixels = []
        for p in paths:
            with Image.open(p) as im:
                pixels.append(im.width * im.height)
        print(
            f"{args.n} photos, {np.mean(pixels) / 1e6:.2f} MP mean, {input_bytes / 1e6:.1f} MB "
            f"({input_bytes / 1e3 / (sum(pixels) / 1e6):.0f} kB per MP, noise {args.noise}), "
            f"generated in {time.perf_counter() - t0:.0f} s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
            file=sys.stderr,
        )
        # Warm the page cache and the imports, so neither counts against whichever runs first.
        for p in paths:
            p.read_bytes()
        rows = []
        wall, cpu, _ = timed("plain", paths, warm)
        rows.append(("plain full decode", 1, wall, cpu))
        results = {}
        for w in args.workers:
            wall, cpu, results[w] = timed("clean", paths, warm, w)
            rows.append(("clean", w, wall, cpu))
        result = results[args.workers[0]]
        df = manifest_of(paths)
        report = result.report()
        assert set(report["dropped_by_reason"]) <= {"near_duplicate"}, f"clean dropped photos it should keep: {report}"
        print(f"clean kept {len(result.kept)} of {args.n} (drops: {report['dropped_by_reason']})", file=sys.stderr)

        before = 0  # what the old clean wrote: an upright RGB quality-95 copy of every photo
        for p in paths:
            buf = io.BytesIO()
            with Image.open(p) as im:
                im.convert("RGB").save(buf, "JPEG", quality=95)
            before += buf.tell()
        out = tmp / "clean"
        stage_io.save_stage(result, out, tmp / "reports", list(df.columns), "label")
        after = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        manifest.read(out / "manifest.parquet", stage="clean")

    base = args.n / rows[0][3]
    print("| method | workers | images/CPU-s | x plain decode | images/s (wall) |")
    print("|---|---|---|---|---|")
    for name, w, wall, cpu in rows:
        print(f"| {name} | {w} | {args.n / cpu:.1f} | {args.n / cpu / base:.2f} | {args.n / wall:.1f} |")
    gb = input_bytes / 1e9
    print()
    print(
        f"disk written per input GB: before (full-size q95 copies) {before / gb / 1e9:.2f} GB; "
        f"after {after / gb / 1e6:.3f} MB"
    )


if __name__ == "__main__":
    main()
