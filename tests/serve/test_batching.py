"""The micro-batcher on its own: requests that wait together share one call, in order, within max_batch; a lone
request waits for nobody; a window gathers late arrivals; a failing photo fails only its own request."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from carvision.serve.batching import MicroBatcher


class SlowAnswer:
    """An answer function that takes `seconds` per call and records each call's photos and thread."""

    def __init__(self, seconds: float = 0.05, fail_on: bytes | None = None) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.calls: list[list[bytes]] = []
        self.threads: set[str] = set()

    def __call__(self, photos: list[bytes]) -> list[dict]:
        self.calls.append(list(photos))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in photos:
            raise RuntimeError("a bug hit by one photo")
        return [{"photo": p.decode()} for p in photos]


def run(coro):
    return asyncio.run(coro)


async def with_batcher(answer, requests: list[list[bytes]], stagger_s: float = 0.0, **kwargs):
    b = MicroBatcher(answer, **kwargs)
    await b.start()
    try:
        tasks = []
        for photos in requests:
            tasks.append(asyncio.create_task(b.submit(photos)))
            await asyncio.sleep(stagger_s)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await b.stop()
    return b, results


def test_requests_waiting_together_share_a_call_and_get_their_own_answers_in_order():
    answer = SlowAnswer()
    requests = [[f"r{i}p{j}".encode() for j in range(1 + i % 2)] for i in range(10)]  # 15 photos
    b, results = run(with_batcher(answer, requests, max_batch=32))
    for photos, got in zip(requests, results, strict=True):
        assert got == [{"photo": p.decode()} for p in photos]
    # The first request runs alone (nothing else was queued); the other nine arrived while it ran: one call.
    assert [len(c) for c in answer.calls] == [1, 14]
    assert b.stats.batches == 2 and b.stats.requests == 10 and b.stats.photos == 15
    assert answer.threads == {"carvision-infer_0"}  # off the event loop, in the one worker thread


def test_a_batch_never_exceeds_max_batch_unless_one_request_alone_does():
    answer = SlowAnswer(0.02)
    requests = [[b"a"] * 3 for _ in range(6)] + [[b"big"] * 7]
    _, results = run(with_batcher(answer, requests, max_batch=4))
    assert all(not isinstance(r, Exception) for r in results)
    sizes = [len(c) for c in answer.calls]
    assert sizes == [3, 3, 3, 3, 3, 3, 7]  # 3 + 3 > 4: one request per call; the 7-photo request in one call


def test_a_window_gathers_requests_that_arrive_within_it():
    # Requests 10 ms apart: without a window each finds the worker idle and goes alone (after the first call's
    # backlog); with a 200 ms window they join the first.
    answer = SlowAnswer(0.001)
    run(with_batcher(answer, [[b"x"]] * 4, stagger_s=0.01, window_s=0.0))
    assert len(answer.calls) >= 3
    windowed = SlowAnswer(0.001)
    run(with_batcher(windowed, [[b"x"]] * 4, stagger_s=0.01, window_s=0.2))
    assert [len(c) for c in windowed.calls] == [4]


def test_a_failing_photo_fails_only_its_own_request():
    answer = SlowAnswer(0.02, fail_on=b"poison")
    requests = [[b"ok0"], [b"ok1"], [b"poison"], [b"ok2", b"ok3"]]
    b, results = run(with_batcher(answer, requests))
    assert results[0] == [{"photo": "ok0"}]
    assert results[1] == [{"photo": "ok1"}] and results[3] == [{"photo": "ok2"}, {"photo": "ok3"}]
    assert isinstance(results[2], RuntimeError)
    assert b.stats.requests == 3  # answered ones only


def test_a_stopped_batcher_refuses_work():
    async def go():
        b = MicroBatcher(SlowAnswer())
        await b.start()
        assert b.alive
        await b.stop()
        assert not b.alive
        with pytest.raises(RuntimeError, match="not running"):
            await b.submit([b"x"])

    run(go())
