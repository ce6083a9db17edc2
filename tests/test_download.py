"""Tests for the download library (carvision.download) against a real HTTP server on 127.0.0.1 that injects faults."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from fault_server import FaultServer
from PIL import Image

from carvision.download import (
    HostRateLimiter,
    Job,
    backoff_delay,
    download,
    published_mode,
    remove_partials,
    sniff_image,
)
from carvision.download import unsupported_url as why_unsupported

HTML = b"<!doctype html><html><head><title>Listing removed</title></head><body>" + b"." * 200 + b"</body></html>"


def jpeg(colour: tuple[int, int, int], size: int = 16) -> bytes:
    """A tiny JPEG; distinct colours give distinct bytes (and content hashes)."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "JPEG")
    return buf.getvalue()


def content_name(body: bytes, ext: str = "jpg") -> str:
    return f"{hashlib.sha256(body).hexdigest()[:16]}.{ext}"


# Small timeouts and backoffs keep the faults fast: 0.3 s per read, retries 0.01 s, 0.02 s, ... apart.
FAST = dict(concurrency=4, per_host_rps=0, retries=2, timeout_s=0.3, max_bytes=20_000, backoff_s=0.01, progress=False)


@pytest.fixture
def server():
    with FaultServer() as s:
        yield s


@pytest.mark.parametrize(
    "fmt, ext",
    [("JPEG", "jpg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff"),
     ("AVIF", "avif"), ("HEIF", "heic")],
)  # fmt: skip
def test_sniff_image_names_every_format_by_its_bytes(fmt: str, ext: str):
    if fmt == "HEIF":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buf, fmt)
    assert sniff_image(buf.getvalue()[:64]) == ext


@pytest.mark.parametrize("head", [HTML[:64], b"", b"GIF", b"BM is not a bitmap, just text", b'{"error": 404}'])
def test_sniff_image_refuses_what_is_not_an_image(head: bytes):
    assert sniff_image(head) is None


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://host/a.jpg", "javascript:alert(1)", "data:image/png;base64,AAAA", "/img/a.jpg",
     "img/a.jpg", "http://", "https:///a.jpg", "", "http://[::1/a.jpg"],
)  # fmt: skip
def test_only_absolute_http_and_https_urls_are_fetched(url: str):
    assert why_unsupported(url) is not None


@pytest.mark.parametrize("url", ["http://example.com/a.jpg", "HTTPS://Example.com:8443/a b.jpg?x=1", " http://h/a "])
def test_http_and_https_urls_are_accepted(url: str):
    assert why_unsupported(url) is None


def test_host_rate_limiter_books_slots_one_interval_apart():
    now = [100.0]
    limiter = HostRateLimiter(4.0, clock=lambda: now[0])
    assert [limiter.book("a") for _ in range(3)] == [0.0, 0.25, 0.5]
    assert limiter.book("b") == 0.0  # hosts do not share slots
    now[0] = 101.0  # long after the booked slots: no wait
    assert limiter.book("a") == 0.0
    assert HostRateLimiter(0).book("a") == HostRateLimiter(0).book("a") == 0.0


def test_backoff_doubles_with_jitter_and_honours_retry_after():
    for attempt, low in ((1, 0.1), (2, 0.2), (3, 0.4)):
        assert low <= backoff_delay(attempt, 0.1) <= low + 0.1
    assert backoff_delay(1, 0.1, retry_after_s=2.0) == 2.0
    assert backoff_delay(1, 0.1, retry_after_s=1e9) == 60.0  # capped


def test_faults_end_as_files_or_as_failures_with_their_reason(server: FaultServer, tmp_path: Path):
    bodies = {k: jpeg((i * 20, 100, 200 - i * 10)) for i, k in enumerate("abcdefghij")}
    cases = {  # url -> (expected file body or None, expected reason, requests the server should see)
        server.add("/ok.jpg", bodies["a"]): (bodies["a"], None, 1),
        server.add("/octet.jpg", bodies["j"], content_type="application/octet-stream"): (bodies["j"], None, 1),
        server.add("/flaky.jpg", bodies["b"], fault="500", times=2): (bodies["b"], None, 3),
        server.add("/down.jpg", bodies["c"], fault="503"): (None, "http_503", 3),
        server.add("/gone.jpg", bodies["c"], status=404): (None, "http_404", 1),
        server.add("/forbidden.jpg", bodies["c"], status=403): (None, "http_403", 1),
        server.add("/busy.jpg", bodies["d"], fault="429", times=1): (bodies["d"], None, 2),
        server.add("/reset.jpg", bodies["e"], fault="reset", times=1): (bodies["e"], None, 2),
        server.add("/reset-always.jpg", bodies["c"], fault="reset"): (None, "connection_error", 3),
        server.add("/slow-once.jpg", bodies["f"], fault="slow", times=1, slow_s=0.6): (bodies["f"], None, 2),
        server.add("/slow.jpg", bodies["c"], fault="slow", slow_s=0.6): (None, "timeout", 3),
        server.add("/cut-once.jpg", bodies["g"], fault="truncate", times=1): (bodies["g"], None, 2),
        server.add("/cut.jpg", bodies["c"], fault="truncate"): (None, "truncated", 3),
        server.add("/removed.jpg", HTML, content_type="image/jpeg"): (None, "not_an_image", 1),
        server.add("/page.jpg", bodies["c"], content_type="text/html"): (None, "wrong_content_type", 1),
        server.add("/huge.jpg", bodies["c"] + bytes(30_000)): (None, "too_large", 1),
        server.add("/huge-unsized.jpg", bodies["c"] + bytes(30_000), content_length=False): (None, "too_large", 1),
        server.add("/moved", status=301, location="/moved-here.jpg"): (bodies["h"], None, 1),
        server.add("/to-ftp", status=302, location="ftp://127.0.0.1/a.jpg"): (None, "unsupported_redirect", 1),
        server.add("/to-file", status=307, location="file:///etc/passwd"): (None, "unsupported_redirect", 1),
        server.add("/loop", status=302, location="/loop"): (None, "too_many_redirects", 6),
        "ftp://127.0.0.1/a.jpg": (None, "unsupported_url", 0),
        "javascript:fetch('/ok.jpg')": (None, "unsupported_url", 0),
    }
    server.add("/moved-here.jpg", bodies["h"])
    dest = tmp_path / "ad"
    results = download([Job(u, dest) for u in cases], **FAST)

    assert [r.url for r in results] == list(cases)
    for r, (body, reason, requests) in zip(results, cases.values(), strict=True):
        assert r.reason == reason, r
        if body is not None:
            assert r.file == content_name(body)
            assert (dest / r.file).read_bytes() == body
        else:
            assert r.file is None
        path = r.url.removeprefix(server.url(""))
        if path.startswith("/"):
            assert server.count(path) == requests, path
    # Permanent failures are tried once; transient ones 1 + retries times and say so.
    by_reason = {r.reason: r for r in results if r.reason}
    assert by_reason["http_404"].attempts == 1 and not by_reason["http_404"].transient
    assert by_reason["http_503"].attempts == 3 and by_reason["http_503"].transient
    assert by_reason["timeout"].transient and by_reason["truncated"].transient
    assert by_reason["unsupported_url"].attempts == 0
    # Exactly the recovered images are on disk: no partial files, nothing from a failed or refused body.
    expected = {content_name(b) for b, _, _ in cases.values() if b is not None}
    assert {p.name for p in dest.iterdir()} == expected
    # With the ordinary permissions of a new file (the umask's), not mkstemp's private 0600.
    assert {p.stat().st_mode & 0o777 for p in dest.iterdir()} == {published_mode()}


def test_identical_content_from_two_urls_is_stored_once(server: FaultServer, tmp_path: Path):
    body = jpeg((1, 2, 3))
    urls = [server.add("/a.jpg", body), server.add("/b.jpg", body)]
    results = download([Job(u, tmp_path) for u in urls], **FAST)
    assert results[0].file == results[1].file == content_name(body)
    assert [p.name for p in tmp_path.iterdir()] == [content_name(body)]


def test_the_extension_comes_from_the_content_not_the_url(server: FaultServer, tmp_path: Path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (5, 5, 5)).save(buf, "PNG")
    url = server.add("/photo.jpg", buf.getvalue(), content_type="image/jpeg")
    (result,) = download([Job(url, tmp_path)], **FAST)
    assert result.file == content_name(buf.getvalue(), "png")


def test_requests_to_one_host_are_spaced_by_the_rate_limit(server: FaultServer, tmp_path: Path):
    rps, n = 10.0, 8
    urls = [server.add(f"/{i}.jpg", jpeg((i, i, i))) for i in range(n)]
    results = download([Job(u, tmp_path) for u in urls], **(FAST | dict(concurrency=4, per_host_rps=rps)))
    assert all(r.ok for r in results)
    times = sorted(server.times())
    assert len(times) == n
    # The server's arrival times, not our own clock. A stall of the shared machine can delay one arrival and
    # shorten the gap after it, but no request can arrive before its slot: the i-th comes >= i intervals after
    # the first. Without the limiter, the 4 workers' requests arrive within a few ms of each other.
    since_first = [t - times[0] for t in times]
    assert all(since_first[i] >= i / rps - 0.05 for i in range(n)), since_first
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.25 / rps, gaps


def test_no_more_than_concurrency_requests_are_in_flight(server: FaultServer, tmp_path: Path):
    urls = [server.add(f"/{i}.jpg", jpeg((i, 0, 0)), delay_s=0.1) for i in range(6)]
    results = download([Job(u, tmp_path) for u in urls], **(FAST | dict(concurrency=2)))
    assert all(r.ok for r in results)
    assert server.max_in_flight <= 2


def test_remove_partials_clears_only_part_files(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".x1.part").write_bytes(b"half")
    (tmp_path / ".y.part").write_bytes(b"half")
    (tmp_path / "a" / "0123456789abcdef.jpg").write_bytes(b"whole")
    assert remove_partials(tmp_path) == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["0123456789abcdef.jpg"]
