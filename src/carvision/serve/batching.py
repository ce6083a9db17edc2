"""The micro-batcher: requests that arrive together are answered by one `Recogniser.answer` call, in one worker
thread off the event loop.

Requests put their photos on an asyncio queue. One task takes the first waiting request, then every other request
already queued (and, with `window_s` > 0, those arriving within the window after the first), up to `max_batch`
photos, and runs the batch in the worker thread. While a batch runs, the next one gathers: under load batches grow
on their own, and a lone request is not held back by a window (`window_s` = 0, the default).

Why it helps: a model call has a fixed cost (Python dispatch through ~200 modules per network, three networks per
photo) that a batch of n photos pays once; see benchmarks/serve_latency.py for on/off figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger("carvision.serve")


@dataclass
class _Job:
    photos: Sequence[bytes]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What the batcher did: model calls, photos and requests per call, time queued and time in the worker."""

    batches: int = 0
    photos: int = 0
    requests: int = 0
    sizes: Counter = field(default_factory=Counter)  # photos per call -> calls
    queued_s: float = 0.0  # summed over requests: from submit to their batch's start
    busy_s: float = 0.0  # summed over calls: time in Recogniser.answer

    def to_dict(self) -> dict:
        return {
            "batches": self.batches,
            "photos": self.photos,
            "requests": self.requests,
            "mean_photos_per_batch": round(self.photos / self.batches, 3) if self.batches else 0.0,
            "mean_requests_per_batch": round(self.requests / self.batches, 3) if self.batches else 0.0,
            "photos_per_batch": {str(k): v for k, v in sorted(self.sizes.items())},
            "mean_queued_ms": round(1000 * self.queued_s / self.requests, 3) if self.requests else 0.0,
            "busy_s": round(self.busy_s, 3),
        }


class MicroBatcher:
    """Answers lists of photos through `answer`, batching requests that wait together.

    Args:
        answer: photos -> one answer per photo, in order (`Recogniser.answer`); runs in the worker thread.
        max_batch: photos per call at most; a request with more is answered alone, in one call.
        window_s: seconds to wait for more requests after a batch's first one; 0: take what is queued.
    """

    def __init__(self, answer: Callable[[list[bytes]], list[dict]], *, max_batch: int = 32, window_s: float = 0.0):
        if max_batch < 1 or window_s < 0:
            raise ValueError("max_batch must be >= 1 and window_s >= 0")
        self.answer, self.max_batch, self.window_s = answer, max_batch, window_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._held: _Job | None = None
        self._task: asyncio.Task | None = None
        # One thread: the models run one batch at a time, each using the intra-op threads torch is given.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carvision-infer")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="carvision-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._worker.shutdown(wait=True, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queued(self) -> int:
        return (self._queue.qsize() if self._queue is not None else 0) + (self._held is not None)

    async def run_in_worker(self, fn: Callable, *args):
        """Runs `fn(*args)` in the worker thread (start-up warm-up), in turn with the batches."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def submit(self, photos: Sequence[bytes]) -> list[dict]:
        """The answers to `photos`, once their batch has run."""
        if not self.alive or self._queue is None:
            raise RuntimeError("the inference worker is not running")
        if not photos:
            return []
        job = _Job(photos, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _gather(self) -> list[_Job]:
        """The next batch: the first queued job and those that join it."""
        assert self._queue is not None
        first, self._held = self._held, None
        jobs = [first if first is not None else await self._queue.get()]
        n = len(jobs[0].photos)
        deadline = time.perf_counter() + self.window_s
        while n < self.max_batch:
            if not self._queue.empty():
                job = self._queue.get_nowait()
            else:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        job = await self._queue.get()
                except TimeoutError:
                    break
            if n + len(job.photos) > self.max_batch:
                self._held = job  # too many photos to join: it starts the next batch
                break
            jobs.append(job)
            n += len(job.photos)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._gather() if not j.future.done()]  # a client that left is not answered
            if not jobs:
                continue
            photos = [p for j in jobs for p in j.photos]
            start = time.perf_counter()
            try:
                answers = await loop.run_in_executor(self._worker, self.answer, photos)
            except Exception:
                # A bug hit by one photo must not fail the other requests of its batch: answer them one by one.
                log.exception("batch of %d photos failed; answering its %d requests one by one", len(photos), len(jobs))
                await self._one_by_one(jobs)
                continue
            self._record(jobs, len(photos), start)
            i = 0
            for j in jobs:
                if not j.future.done():
                    j.future.set_result(answers[i : i + len(j.photos)])
                i += len(j.photos)

    async def _one_by_one(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        for j in jobs:
            start = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._worker, self.answer, list(j.photos))
            except Exception as e:
                if not j.future.done():
                    j.future.set_exception(e)
                continue
            self._record([j], len(j.photos), start)
            if not j.future.done():
                j.future.set_result(result)

    def _record(self, jobs: list[_Job], n_photos: int, start: float) -> None:
        s = self.stats
        s.batches += 1
        s.photos += n_photos
        s.requests += len(jobs)
        s.sizes[n_photos] += 1
        s.queued_s += sum(start - j.queued_at for j in jobs)
        s.busy_s += time.perf_counter() - start
