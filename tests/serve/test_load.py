"""Load on real servers: 200 concurrent requests are all answered (batched together), the process's memory stays
bounded over 1,000 requests, and a server whose slots are full refuses with 429/503 and Retry-After, in JSON."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections import Counter

import httpx
import pytest

from carvision.serve.app import create_app
from carvision.serve.limits import Limits

from .live_server import multipart, rss_mb, start_in_thread

GOOD = ["good0.jpg", "good1.jpg", "good2.jpg", "good3.jpg"]


async def fire(url: str, bodies: list[list[tuple[str, bytes]]], concurrency: int) -> Counter:
    """Posts each body (a list of (name, bytes) files) with at most `concurrency` in flight; status -> count."""
    statuses: Counter = Counter()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(files: list[tuple[str, bytes]]) -> None:
            async with gate:
                r = await client.post("/v1/predict", files=[("files", f) for f in files])
                statuses[r.status_code] += 1
                assert r.headers["content-type"] == "application/json"

        await asyncio.gather(*(one(b) for b in bodies))
    return statuses


def test_200_concurrent_requests_are_all_answered_in_shared_batches(cli_server, photos):
    before = httpx.get(f"{cli_server.url}/healthz").json()["batching"]
    bodies = [[(n, photos[n])] for n in itertools.islice(itertools.cycle(GOOD), 200)]
    statuses = asyncio.run(fire(cli_server.url, bodies, concurrency=200))
    assert statuses == {200: 200}
    after = httpx.get(f"{cli_server.url}/healthz").json()
    requests = after["batching"]["requests"] - before["requests"]
    batches = after["batching"]["batches"] - before["batches"]
    assert requests == 200
    assert batches < requests / 2, after["batching"]  # requests that waited together shared model calls
    assert after["queue"]["refused"] == {"busy": 0, "overloaded": 0}


def test_memory_stays_bounded_over_1000_requests(cli_server, photos):
    """VmRSS of the server process after a warm-up and after 1,000 more requests (good photos, broken ones, and
    refused ones, 1-3 files each): the difference stays under 50 MB."""
    kinds = [
        [("good3.jpg", photos["good3.jpg"]), ("t.jpg", photos["truncated.jpg"]), ("x.jpg", photos["text.jpg"])],
        [("bomb.png", photos["bomb.png"])],  # 400 MP, refused from its header
        [("big.jpg", photos["big.jpg"])],  # over the upload limit
        [("page.jpg", photos["page.jpg"])],  # HTML: refused before inference
        [("t.jpg", photos["truncated.jpg"])],  # decoded until the data runs out
    ]
    asyncio.run(fire(cli_server.url, [kinds[i % len(kinds)] for i in range(100)], concurrency=32))
    start = rss_mb(cli_server.pid)
    statuses = asyncio.run(fire(cli_server.url, [kinds[i % len(kinds)] for i in range(1000)], concurrency=32))
    end = rss_mb(cli_server.pid)
    assert statuses == {200: 200, 413: 400, 415: 200, 422: 200}
    assert end - start < 50, f"VmRSS {start:.0f} MB -> {end:.0f} MB over 1,000 requests"


@pytest.fixture(scope="module")
def tight_server(recogniser):
    """A server with one slot, one place in the queue, a 0.5 s queue timeout and a 2 s body timeout."""
    limits = Limits(max_concurrent=1, max_queue=1, queue_timeout_s=0.5, read_timeout_s=2.0)
    server = start_in_thread(create_app(recogniser, limits))
    yield server
    server.stop()


def wait_for(url: str, key: str, value: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/healthz").json()["queue"][key] != value:
        assert time.monotonic() < deadline, f"queue {key} never reached {value}"
        time.sleep(0.02)


def test_a_full_server_refuses_with_429_then_503_and_a_stalled_body_gets_408(tight_server, photos):
    url = tight_server.url
    body = multipart([("files", "a.jpg", photos["good0.jpg"])], "b")
    headers = {"content-type": "multipart/form-data; boundary=b"}
    host, port = url.removeprefix("http://").split(":")
    # A takes the only slot and stalls half-way through its body.
    stalled = socket.create_connection((host, int(port)), timeout=10)
    stalled.sendall(
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:100]
    )
    wait_for(url, "active", 1)
    # B waits for the slot (the queue's one place) ...
    waited: dict = {}

    def post_b() -> None:
        t = time.monotonic()
        waited["response"] = httpx.post(f"{url}/v1/predict", content=body, headers=headers, timeout=30)
        waited["s"] = time.monotonic() - t

    b = threading.Thread(target=post_b)
    b.start()
    wait_for(url, "waiting", 1)
    # ... so C finds slot and queue full: refused at once.
    c = httpx.post(f"{url}/v1/predict", content=body, headers=headers, timeout=30)
    assert c.status_code == 429 and c.headers["retry-after"] == "1" and c.json()["error"]["code"] == "busy"
    b.join()
    r = waited["response"]
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded"
    assert 0.4 < waited["s"] < 1.9  # refused at its 0.5 s queue timeout, not when A gave up
    # A's body never completes: 408 at 2 s, in JSON, and the slot is free again.
    answer = b""
    while not answer.rstrip().endswith(b"}"):
        chunk = stalled.recv(65536)
        if not chunk:
            break
        answer += chunk
    stalled.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"read_timeout"' in answer
    d = httpx.post(f"{url}/v1/predict", content=body, headers=headers, timeout=30)
    assert d.status_code == 200 and d.json()["results"][0]["make_model"]
    assert httpx.get(f"{url}/healthz").json()["queue"]["refused"] == {"busy": 1, "overloaded": 1}


def test_latency_benchmark_smoke(tmp_path, capsys):
    import importlib.util
    import json

    import torch

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("serve_latency", REPO / "benchmarks" / "serve_latency.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        argv = ["--smoke", "--configs", "off", "on", "--concurrency", "4", "--json", str(tmp_path / "r.json")]
        results = bench.main(argv)
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(results))
    assert list(results["configs"]) == ["off", "on"]
    for rows in results["configs"].values():
        assert [r["concurrency"] for r in rows] == [4]
        for r in rows:
            assert r["statuses"] == {200: 16} and 0 < r["p50_ms"] <= r["p99_ms"] and r["throughput_rps"] > 0
    assert all(r["photos_per_call"] == 1.0 for r in results["configs"]["off"])  # max_batch 1: batching off
    assert "| on | 4 |" in capsys.readouterr().out
