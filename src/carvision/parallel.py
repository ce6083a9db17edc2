"""Parallel map with a progress bar, for the per-image stages (decode, hash, crop)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm


def resolve_workers(workers: int) -> int:
    """0 means one process per CPU core."""
    return workers if workers > 0 else (os.cpu_count() or 1)


def map_with_progress(fn: Callable[[Any], Any], items: list, workers: int, desc: str) -> list:
    """[fn(x) for x in items], in order, in `workers` processes (1 = in this process), with a progress bar."""
    workers = resolve_workers(workers)
    bar = dict(total=len(items), desc=desc, unit="img", mininterval=1.0)
    if workers == 1 or len(items) < 64:  # a pool costs ~0.5 s to start: not worth it for a few images
        return [fn(x) for x in tqdm(items, **bar)]
    chunk = max(1, min(256, len(items) // (workers * 8)))
    with ProcessPoolExecutor(workers) as pool:
        results: Iterable = pool.map(fn, items, chunksize=chunk)
        return list(tqdm(results, **bar))
