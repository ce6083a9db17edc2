"""Polite, checked image downloads over http(s) with httpx, safe to kill at any moment.

`download(jobs, ...)` fetches each `Job(url, dest_dir)` into `dest_dir/<sha256[:16]>.<ext>` and returns one
`Result` per job, in order. Along the way:
- at most `concurrency` requests are in flight, and requests to one host are spaced 1/`per_host_rps` s apart;
- 5xx, 429, connection errors, timeouts and truncated bodies are retried with exponential backoff and jitter;
  any other failure is permanent and never retried (`Result.transient` says which kind a failure was);
- only http and https URLs are fetched, and redirects are followed by hand so that each hop is checked too;
- a body counts only when its Content-Type says image (or octet-stream) and its first bytes are an image format's
  signature; the extension comes from those bytes, never from the URL;
- bodies stream to `.<random>.part` in `dest_dir`, are fsynced, and renamed to their final name in one step, so a
  killed process leaves no half-written image under a real name (`remove_partials` clears its `.part` files).

The library knows nothing of listings or stages; the scrape stage (carvision.stages.scrape) builds on it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from tqdm import tqdm

from carvision.images import sniff_format

PART_SUFFIX = ".part"
USER_AGENT = "carvision-scraper/0.1"  # identifies us in servers' logs
SNIFF_BYTES = 64  # what images.sniff_format reads: every signature, ftyp boxes with a few compatible brands
CHUNK_BYTES = 64 * 1024
MAX_RETRY_AFTER_S = 60.0  # a server's Retry-After is honoured up to this; longer waits are not worth a worker
ALLOWED_CONTENT_TYPES = ("application/octet-stream",)  # besides image/*

# ISO-BMFF brands (the `ftyp` box) of HEIF-family files: AVIF first, because AVIF files often list mif1 too.
# Formats by content (images.sniff_format) -> the extension a downloaded photo is stored under.
_EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "TIFF": "tiff",
    "BMP": "bmp",
    "AVIF": "avif",
    "HEIF": "heic",
}


@dataclass(frozen=True)
class Job:
    """One URL to fetch into `dest_dir` (created when needed)."""

    url: str
    dest_dir: Path


@dataclass(frozen=True)
class Result:
    """What became of a job: `file` (a name in `dest_dir`) when it worked, else `reason` and `detail`."""

    url: str
    dest_dir: Path
    file: str | None
    reason: str | None = None
    detail: str = ""
    attempts: int = 0  # requests made for it (redirect hops not counted); 0 when the URL was refused unfetched
    transient: bool = False  # a failure worth trying again later (5xx, 429, resets, timeouts, truncation)

    @property
    def ok(self) -> bool:
        return self.file is not None


class Failed(Exception):
    """One attempt's failure; `transient` failures are retried."""

    def __init__(self, reason: str, detail: str = "", *, transient: bool = False, retry_after_s: float = 0.0):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_after_s = retry_after_s


def unsupported_url(url: str) -> str | None:
    """Why `url` must not be fetched (None when it may): only absolute http and https URLs with a host."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as e:  # e.g. an unbalanced [ in the host
        return f"unparseable: {e}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"scheme '{parts.scheme}' is not http or https" if parts.scheme else "not an absolute URL"
    if not parts.hostname:
        return "no host"
    return None


def sniff_image(head: bytes) -> str | None:
    """The file extension of the image format whose signature `head` (a body's first bytes) starts with, or None
    (also for formats a photo is not saved in, such as JPEG 2000)."""
    return _EXTENSIONS.get(sniff_format(head))


def remove_partials(root: str | Path) -> int:
    """Deletes the `.part` files a killed run left anywhere under `root`; returns how many there were."""
    n = 0
    for p in Path(root).rglob(f".*{PART_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


class HostRateLimiter:
    """Spaces requests to each host at least 1/rps seconds apart (rps <= 0: no limit).

    Each caller books the host's next free slot and sleeps until it: a next-slot schedule rather than a bucket,
    so a host never sees a burst. Safe within one event loop: booking does not await.
    """

    def __init__(self, rps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = 1.0 / rps if rps > 0 else 0.0
        self._clock = clock
        self._next_slot: dict[str, float] = {}

    def book(self, host: str) -> float:
        """Seconds to wait before the request to `host` may go out (and the slot after it is booked)."""
        now = self._clock()
        slot = max(now, self._next_slot.get(host, now))
        self._next_slot[host] = slot + self.interval_s
        return slot - now

    async def wait(self, host: str) -> None:
        if (delay := self.book(host)) > 0:
            await asyncio.sleep(delay)


def backoff_delay(attempt: int, base_s: float, retry_after_s: float = 0.0) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): base * 2^(attempt-1) plus up to `base` of jitter, so
    that workers that failed together do not retry together; at least the server's Retry-After (capped)."""
    delay = base_s * 2 ** (attempt - 1) + random.uniform(0, base_s)
    return max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:  # an HTTP date, or junk: fall back to our own backoff
        return 0.0


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    """Refuses a response by its status and headers, before any of its body is read."""
    status = response.status_code
    if status == 429:
        raise Failed("http_429", response.reason_phrase, transient=True, retry_after_s=_retry_after(response))
    if status >= 500:
        raise Failed(f"http_{status}", response.reason_phrase, transient=True, retry_after_s=_retry_after(response))
    if not 200 <= status < 300:
        raise Failed(f"http_{status}", response.reason_phrase)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    # A missing Content-Type is let through (RFC 9110 lets the recipient sniff): the magic bytes still decide.
    if content_type and not content_type.startswith("image/") and content_type not in ALLOWED_CONTENT_TYPES:
        raise Failed("wrong_content_type", content_type[:100])
    length = _content_length(response)
    if length is not None and length > max_bytes:
        raise Failed("too_large", f"Content-Length {length} > {max_bytes} bytes")


def _transport_failure(e: httpx.TransportError) -> Failed:
    if isinstance(e, httpx.TimeoutException):
        return Failed("timeout", type(e).__name__, transient=True)
    detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return Failed("connection_error", detail[:200], transient=True)


@functools.cache
def published_mode() -> int:
    """The mode of a file created under the process's umask (0o644 under the usual 022). Read once: os.umask
    can only be read by setting it, which must not race with threads creating files."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the folder's entry is on disk too (power loss, not just a killed process).
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def _finish_file(f, tmp: Path, dest_dir: Path, name: str) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()
    os.replace(tmp, dest_dir / name)
    _fsync_dir(dest_dir)


async def _save_body(response: httpx.Response, dest_dir: Path, max_bytes: int) -> str:
    """Streams the body to a .part file and renames it to <sha256[:16]>.<ext>; returns that name."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=PART_SUFFIX, dir=dest_dir)
    tmp = Path(tmp_name)
    os.fchmod(fd, published_mode())  # mkstemp's 0600 would keep the images from teammates and services
    sha = hashlib.sha256()
    head, ext, size = b"", None, 0
    expected = _content_length(response)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:  # stop reading: a body without (or lying in) its Content-Length
                        raise Failed("too_large", f"over {max_bytes} bytes")
                    if ext is None:
                        head = (head + chunk)[:SNIFF_BYTES]
                        if len(head) >= SNIFF_BYTES:
                            ext = sniff_image(head)
                            if ext is None:  # an HTML error page served with 200: stop reading it
                                raise Failed("not_an_image", repr(head[:32]))
                    sha.update(chunk)
                    f.write(chunk)
            except httpx.RemoteProtocolError as e:  # the server closed the connection before the body's end
                received = response.num_bytes_downloaded
                if expected is not None and received < expected:
                    raise Failed("truncated", f"{received} of {expected} bytes", transient=True) from e
                raise _transport_failure(e) from e
            except httpx.TransportError as e:  # a reset or a read timeout mid-body
                raise _transport_failure(e) from e
            except httpx.DecodingError as e:
                raise Failed("decoding_error", str(e)[:200]) from e
            if expected is not None and response.num_bytes_downloaded < expected:
                raise Failed("truncated", f"{response.num_bytes_downloaded} of {expected} bytes", transient=True)
            if ext is None:  # bodies shorter than SNIFF_BYTES
                ext = sniff_image(head)
                if ext is None:
                    raise Failed("not_an_image", repr(head[:32]) if head else "empty body")
            name = f"{sha.hexdigest()[:16]}.{ext}"
            # fsync can take tens of ms: off the event loop, so other downloads go on meanwhile.
            await asyncio.to_thread(_finish_file, f, tmp, dest_dir, name)
        return name
    finally:
        tmp.unlink(missing_ok=True)


async def _fetch_once(
    client: httpx.AsyncClient, url: str, dest_dir: Path, limiter: HostRateLimiter, max_bytes: int, max_redirects: int
) -> str:
    """One attempt: follows up to `max_redirects` redirects, each hop checked and rate-limited."""
    current = url
    for _ in range(max_redirects + 1):
        try:
            await limiter.wait(httpx.URL(current).host)
            async with client.stream("GET", current) as response:
                if response.has_redirect_location:
                    target = urljoin(current, response.headers["location"])
                    if why := unsupported_url(target):
                        raise Failed("unsupported_redirect", f"{response.status_code} to {target[:200]}: {why}")
                    current = target
                    continue
                _check_response(response, max_bytes)
                return await _save_body(response, dest_dir, max_bytes)
        except httpx.TransportError as e:  # before the body: connect, send, or the response's headers
            raise _transport_failure(e) from e
        except httpx.InvalidURL as e:
            raise Failed("unsupported_url", str(e)[:200]) from e
        except httpx.HTTPError as e:  # anything else httpx refuses: this URL's failure, not the run's
            raise Failed("request_error", f"{type(e).__name__}: {e}"[:200]) from e
    raise Failed("too_many_redirects", f"more than {max_redirects}")


async def fetch(
    client: httpx.AsyncClient,
    job: Job,
    *,
    limiter: HostRateLimiter,
    retries: int,
    max_bytes: int,
    backoff_s: float,
    max_redirects: int = 5,
) -> Result:
    """Fetches one job, retrying transient failures up to `retries` times; never raises for a bad URL or server."""
    if why := unsupported_url(job.url):
        return Result(job.url, job.dest_dir, None, "unsupported_url", why)
    attempt = 0
    while True:
        attempt += 1
        try:
            name = await _fetch_once(client, job.url.strip(), job.dest_dir, limiter, max_bytes, max_redirects)
            return Result(job.url, job.dest_dir, name, attempts=attempt)
        except Failed as f:
            if not f.transient or attempt > retries:
                return Result(job.url, job.dest_dir, None, f.reason, f.detail, attempt, f.transient)
            await asyncio.sleep(backoff_delay(attempt, backoff_s, f.retry_after_s))


async def download_all(
    jobs: Sequence[Job],
    *,
    concurrency: int,
    per_host_rps: float,
    retries: int,
    timeout_s: float,
    max_bytes: int,
    backoff_s: float = 0.5,
    max_redirects: int = 5,
    on_result: Callable[[Result], None] | None = None,
    progress: bool = True,
) -> list[Result]:
    """Fetches every job with `concurrency` workers; `on_result` is called as each one finishes (to journal it).

    Args:
        per_host_rps: requests per second to any one host (every attempt and redirect hop counts).
        retries: extra attempts of a transient failure, `backoff_s` * 2^n (+ jitter) apart.
        timeout_s: seconds to connect, and for each read of the response.
        max_bytes: larger bodies are refused (too_large), read no further than that.
    """
    published_mode()  # read the umask now, before any thread starts
    limiter = HostRateLimiter(per_host_rps)
    results: list[Result | None] = [None] * len(jobs)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(jobs)):
        queue.put_nowait(i)
    bar = tqdm(total=len(jobs), desc="scrape", unit="img", mininterval=1.0, disable=not progress)
    failed = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            result = await fetch(
                client,
                jobs[i],
                limiter=limiter,
                retries=retries,
                max_bytes=max_bytes,
                backoff_s=backoff_s,
                max_redirects=max_redirects,
            )
            results[i] = result
            if on_result is not None:
                on_result(result)
            failed += not result.ok
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"User-Agent": USER_AGENT}
    try:
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits, headers=headers) as client:
            await asyncio.gather(*(worker(client) for _ in range(max(1, min(concurrency, len(jobs))))))
    finally:
        bar.close()
    return [r for r in results if r is not None]


def download(jobs: Sequence[Job], **kwargs) -> list[Result]:
    """`download_all` from synchronous code (see its arguments)."""
    return asyncio.run(download_all(jobs, **kwargs))
