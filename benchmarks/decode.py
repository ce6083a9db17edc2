"""CPU cost of decoding ~1.5 MP JPEGs: full decode, reduced (draft) decode, and each with Pillow's block cache.

python benchmarks/decode.py                        # 40 photos of 1.5 MP, 3 rounds per variant
python benchmarks/decode.py --n 60 --rounds 5 --megapixels 2.0
python benchmarks/decode.py --consumer       # each decoded image is then used as clean does (pHash-style resize)

Each variant runs in its own fresh process (the allocator's state is per process), on the same JPEG bytes held in
memory (no disk reads are timed):
- pillow:         `Image.open(...).convert("RGB")`, what the stages did before `carvision.images.decode`;
- full:           `decode(data, max_pixels=...)` (structure check, colour handling, orientation, full resolution);
- draft:          `decode(..., min_side=256)`: libjpeg decodes at 1/2, 1/4 or 1/8 scale;
- pillow+blocks, full+blocks, draft+blocks: the same after `tune_allocator()` (Pillow keeps freed image blocks for reuse
  instead of returning them to the OS, so the next image's buffer needs no fresh page faults).
With --consumer, each decoded image is also turned into a 32x32 greyscale thumbnail (what `imagehash.phash` does
first), so that more than one image buffer is allocated and freed per photo, as in a stage.
Reported per image: CPU ms (user+sys, `resource.getrusage`), of which system ms, and minor page faults.
The first round of each variant is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

VARIANTS = ("pillow", "pillow+blocks", "full", "full+blocks", "draft", "draft+blocks")


def photo(rng: np.random.Generator, megapixels: float) -> Image.Image:
    """Photo-like: gradient background, a few shapes, blur, sensor noise (noise is what makes JPEGs costly)."""
    w = int(round((megapixels * 1e6 * 3 / 2) ** 0.5))
    h = int(round(w * 2 / 3))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = rng.uniform(60, 200, 3) + (ys / h)[..., None] * rng.uniform(-60, 60, 3) + (xs / w)[..., None] * 30
    im = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w - 50)), int(rng.integers(0, h - 50))
        x1, y1 = x0 + int(rng.integers(40, w // 3)), y0 + int(rng.integers(40, h // 3))
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    im = im.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(im, dtype=np.float32) + rng.normal(0, 5, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def measure(variant: str, folder: Path, rounds: int, consumer: bool, blocks: int | None) -> dict:
    """Runs in the child process: decodes every photo `rounds` times and returns per-image costs."""
    from carvision.images import decode, tune_allocator

    if variant.endswith("+blocks"):
        tune_allocator() if blocks is None else Image.core.set_blocks_max(blocks)
    blobs = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]
    base = variant.split("+")[0]

    def one(data: bytes) -> tuple[int, int]:
        if base == "pillow":
            with Image.open(io.BytesIO(data)) as im:
                out = im.convert("RGB")
        else:
            out = decode(data, max_pixels=10**8, min_side=256 if base == "draft" else None).image
        if consumer:
            out.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
        return out.size

    sizes = [one(b) for b in blobs]  # warm-up round: imports, first allocations
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(rounds):
        for b in blobs:
            one(b)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    n = rounds * len(blobs)
    return {
        "variant": variant,
        "cpu_ms": 1e3 * (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n,
        "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / n,
        "wall_ms": 1e3 * wall / n,
        "minor_faults": (r1.ru_minflt - r0.ru_minflt) / n,
        "decoded": f"{sizes[0][0]}x{sizes[0][1]}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--megapixels", type=float, default=1.5)
    ap.add_argument("--consumer", action="store_true", help="use each image as clean does (pHash-style)")
    ap.add_argument("--blocks", type=int, help="blocks to cache in the +blocks variants (default: tune_allocator)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.rounds, args.consumer, args.blocks)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        rng = np.random.default_rng(0)
        total = 0
        for i in range(args.n):
            p = Path(tmp) / f"{i:04d}.jpg"
            photo(rng, args.megapixels).save(p, "JPEG", quality=90)
            total += p.stat().st_size
        with Image.open(Path(tmp) / "0000.jpg") as im:
            size = im.size
        print(
            f"{args.n} JPEGs {size[0]}x{size[1]} q90, {total / args.n / 1e3:.0f} kB mean; {args.rounds} rounds; "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; Pillow {Image.__version__}"
            + ("; with a pHash-style consumer" if args.consumer else "")
        )
        print(f"{'variant':<14}{'CPU ms/img':>11}{'sys ms':>8}{'wall ms':>9}{'faults/img':>11}  decoded")
        rows = []
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--rounds", str(args.rounds), "--child", variant, tmp]
            cmd += ["--consumer"] if args.consumer else []
            cmd += ["--blocks", str(args.blocks)] if args.blocks is not None else []
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rows.append(row)
            print(
                f"{row['variant']:<14}{row['cpu_ms']:>11.2f}{row['sys_ms']:>8.2f}{row['wall_ms']:>9.2f}"
                f"{row['minor_faults']:>11.0f}  {row['decoded']}"
            )
        by = {r["variant"]: r["cpu_ms"] for r in rows}
        pairs = [("pillow", "full"), ("full", "draft"), ("pillow", "draft")]
        pairs += [(v, f"{v}+blocks") for v in ("pillow", "full", "draft")]
        for a, b in pairs:
            if a in by and b in by:
                print(f"{a} / {b}: {by[a] / by[b]:.2f}x CPU")


if __name__ == "__main__":
    main()
