"""Parallel map with a progress bar, for the per-image stages (decode, hash, crop).

Workers die with their stage: each asks the kernel (Linux prctl PR_SET_PDEATHSIG) to be killed when the
process that started it ends, so a stage killed with -9 leaves no worker running on.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm

_PR_SET_PDEATHSIG = 1


def resolve_workers(workers: int) -> int:
    """0 means one process per CPU core."""
    return workers if workers > 0 else (os.cpu_count() or 1)


def die_with_parent(parent_pid: int) -> None:
    """Asks the kernel to SIGKILL this process when its parent ends (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect: nobody awaits our results
        os._exit(1)


def _init_worker(parent_pid: int, setup: Callable[[], None] | None) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the stage, which shuts the pool down
    if setup is not None:
        setup()


def map_with_progress(
    fn: Callable[[Any], Any], items: list, workers: int, desc: str, setup: Callable[[], None] | None = None
) -> list:
    """[fn(x) for x in items], in order, in `workers` processes (1 = in this process), with a progress bar.

    Args:
        setup: run once in each worker (and here, when running in this process) before the first item.
    """
    workers = resolve_workers(workers)
    bar = dict(total=len(items), desc=desc, unit="img", mininterval=1.0)
    if workers == 1 or len(items) < 64:  # a pool costs ~0.5 s to start: not worth it for a few images
        if setup is not None:
            setup()
        return [fn(x) for x in tqdm(items, **bar)]
    # Small chunks: progress moves steadily, and a slow file does not hold up a large batch of others.
    chunk = max(1, min(64, len(items) // (workers * 16)))
    # fork where there is one: workers start in milliseconds with the stage's imports and warm state; spawn (the
    # default in a spawned process, and from Python 3.14 forkserver) re-imports everything, ~2 CPU-s per worker.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(), setup)
    ) as pool:
        results: Iterable = pool.map(fn, items, chunksize=chunk)
        return list(tqdm(results, **bar))
