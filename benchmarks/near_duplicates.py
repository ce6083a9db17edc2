"""Exact near-duplicate search on millions of 64-bit hashes: multi-index hashing against the old banding.

python benchmarks/near_duplicates.py --n 2000000 --radius 10
python benchmarks/near_duplicates.py --n 200000 --radius 4 --workers 1 --compare-n 20000

Hashes: n uniform random 64-bit values, then `--planted` of them (5 %) overwritten with copies of others with
0..radius+2 random bits flipped, so there are real near-duplicates at, around and beyond the radius.
Rows of the table:
- mih: carvision.near_duplicates.pairs_within (multi-index hashing), with each `--workers` count, at --n;
- both methods at each --compare-n (smaller, where the old banding still runs), checked to give the same pairs.
The old banding search is copied here (`banding_pairs`, as in carvision before multi-index hashing).

Each measurement runs in its own forked process, so that its peak RSS (ru_maxrss, which includes the hashes
themselves and numpy: see the "before" column) is its own; CPU time counts that process and its workers. The
machine may be shared: /proc/loadavg is printed before and after, and CPU seconds compare better than wall seconds
under load.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np

from carvision.near_duplicates import pairs_within, plan_search


def make_hashes(n: int, radius: int, planted: float, seed: int = 0) -> np.ndarray:
    """n random 64-bit hashes, a `planted` fraction of them replaced by copies of others with a few bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    n_copies = int(n * planted)
    if n_copies == 0:
        return hashes
    copies = rng.choice(n, size=n_copies, replace=False)
    sources = rng.integers(0, n, size=n_copies)
    flips = rng.integers(0, radius + 3, size=n_copies)  # bits flipped per copy: 0..radius+2
    bit_values = np.uint64(1) << np.arange(64, dtype=np.uint64)
    masks = np.zeros(n_copies, dtype=np.uint64)
    for lo in range(0, n_copies, 1 << 16):  # (chunk, 64) random ranks: the first `flips` of each row are flipped
        ranks = rng.random((min(1 << 16, n_copies - lo), 64)).argsort(axis=1).argsort(axis=1)
        chosen = ranks < flips[lo : lo + len(ranks), None]
        masks[lo : lo + len(ranks)] = np.bitwise_or.reduce(np.where(chosen, bit_values, np.uint64(0)), axis=1)
    hashes[copies] = hashes[sources] ^ masks
    return hashes


def banding_pairs(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int, int]]:
    """The old search: max_bits + 1 bands, all pairs compared inside each bucket of equal band values."""
    n = len(hashes)
    if n < 2:
        return []
    n_bands = min(max_bits + 1, 64)
    edges = np.linspace(0, 64, n_bands + 1).astype(int)
    found: dict[tuple[int, int], int] = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        keys = (hashes >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            idx = np.sort(order[s:e])
            dist = np.bitwise_count(hashes[idx][:, None] ^ hashes[idx][None, :])
            ii, jj = np.nonzero(np.triu(dist <= max_bits, k=1))
            for a, b in zip(ii, jj, strict=True):
                found[(int(idx[a]), int(idx[b]))] = int(dist[a, b])
    return [(i, j, d) for (i, j), d in sorted(found.items())]


def rss_mib() -> float:
    """Resident memory of this process now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(method: str, n: int, radius: int, planted: float, workers: int, out: mp.Queue) -> None:
    """Runs one search in this (forked) process and puts its figures on `out`."""
    hashes = make_hashes(n, radius, planted)
    before = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "mih":
        i, j, d = pairs_within(hashes, radius, workers=workers)
        pairs = np.stack([i, j, d], axis=1)
    else:
        pairs = np.array(banding_pairs(hashes, radius), dtype=np.int64).reshape(-1, 3)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, reaped when their pool closed
    cpu += kids.ru_utime + kids.ru_stime
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, kids.ru_maxrss) / 1024  # KiB on Linux
    digest = int(np.bitwise_xor.reduce((pairs[:, 0] * 1_000_003 + pairs[:, 1]) * 31 + pairs[:, 2])) if len(pairs) else 0
    out.put(dict(method=method, n=n, workers=workers, wall=wall, cpu=cpu, pairs=len(pairs), digest=digest,
                 peak=peak, before=before))  # fmt: skip


def run(method: str, n: int, radius: int, planted: float, workers: int) -> dict:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=measure, args=(method, n, radius, planted, workers, out))
    proc.start()
    row = out.get()
    proc.join()
    print(f"  {row['method']:8} n={n:>9,} workers={workers}: {row['wall']:.1f} s, {row['pairs']:,} pairs", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2_000_000, help="hashes for the multi-index hashing rows")
    parser.add_argument("--radius", type=int, default=10, help="Hamming radius (bits)")
    parser.add_argument("--planted", type=float, default=0.05, help="fraction of hashes that are near copies")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time at --n")
    parser.add_argument("--compare-n", type=int, nargs="*", default=[20_000, 100_000], help="n for old vs new")
    args = parser.parse_args()

    load_before = Path("/proc/loadavg").read_text().strip()
    print(f"cores: {os.cpu_count()}, load before: {load_before}")
    for n in [*args.compare_n, args.n]:
        plan = plan_search(n, args.radius)
        widths = [hi - lo for lo, hi in plan.bounds]
        print(f"plan at n={n:,}: substrings of {widths} bits, flip budgets {list(plan.thresholds)}")
    rows = []
    for n in args.compare_n:
        new, old = run("mih", n, args.radius, args.planted, 1), run("banding", n, args.radius, args.planted, 1)
        if (new["pairs"], new["digest"]) != (old["pairs"], old["digest"]):
            raise SystemExit(f"n={n}: multi-index hashing and banding disagree ({new['pairs']} vs {old['pairs']})")
        rows += [new, old]
    rows += [run("mih", args.n, args.radius, args.planted, w) for w in args.workers]
    load_after = Path("/proc/loadavg").read_text().strip()

    print(f"\nradius {args.radius}, {args.planted:.0%} planted near copies; load before: {load_before}")
    print("| method | n | workers | wall s | CPU s | pairs | peak RSS MiB | RSS before search MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['method']} | {r['n']:,} | {r['workers']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['pairs']:,} "
            f"| {r['peak']:.0f} | {r['before']:.0f} |"
        )
    print(f"load after: {load_after}")


if __name__ == "__main__":
    main()
