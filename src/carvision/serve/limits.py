"""The service's limits and the errors they answer with: every refusal is a JSON body
`{"error": {"code": ..., "message": ...}}` with a 4xx status, decided before any model work where it can be.

| limit | answer |
|---|---|
| request body over `max_upload_bytes` (declared or counted while streaming) | 413 `upload_too_large` |
| more than `max_files` photos | 413 `too_many_files` |
| a photo over `max_pixels` (from its header, before decoding) | 413 `too_many_pixels` |
| not `multipart/form-data` | 415 `unsupported_media_type` |
| a file whose first bytes are no image signature (text, HTML named .jpg) | 415 `not_an_image` |
| `max_concurrent` requests hold an upload and `max_queue` more wait | 429 `busy`, `Retry-After` |
| waited `queue_timeout_s` for a slot | 503 `overloaded`, `Retry-After` |
| body not received within `read_timeout_s` | 408 `read_timeout` |
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

# ImageRejected reason (carvision.images, carvision.recognise) -> HTTP status of a photo refused for it.
REASON_STATUS = {
    "empty_file": 422,
    "file_too_large": 413,
    "not_an_image": 415,
    "too_many_pixels": 413,
    "truncated_image": 422,
    "corrupt_image": 422,
    "unsupported_image": 415,
}
RETRY_AFTER_S = 1  # what a refused client is told to wait: one batch of a loaded server takes well under a second


@dataclass(frozen=True)
class Limits:
    """What one request may cost (the `serve` section of the config; see conf/config.yaml)."""

    max_upload_bytes: int = 20_000_000
    max_pixels: int = 25_000_000
    max_files: int = 16
    max_concurrent: int = 32
    max_queue: int = 512
    queue_timeout_s: float = 30.0
    read_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_files", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"serve.{name} must be at least 1, not {getattr(self, name)}")
        if self.max_queue < 0 or self.queue_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("serve.max_queue must be >= 0 and the timeouts > 0")


class ApiError(Exception):
    """A request the service refuses: its status, a stable code for programs and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def photo_error(reason: str) -> dict:
    """A refused photo's entry in `results`: `{"error": {"code", "message", "status"}}`, from the answer's
    `"<reason>: <detail>"` string (`Recogniser.answer`) or a bare reason."""
    code, _, detail = reason.partition(": ")
    status = REASON_STATUS.get(code, 422)
    words = {
        "empty_file": "the file is empty",
        "not_an_image": "not an image: its first bytes are no JPEG, PNG, WebP, GIF, TIFF, BMP, HEIF or AVIF signature",
        "too_many_pixels": "the image has too many pixels",
        "truncated_image": "the image data ends early (an interrupted upload or copy)",
        "corrupt_image": "the image data cannot be decoded",
        "unsupported_image": "an image format or variant that the service cannot read",
    }.get(code, code.replace("_", " "))
    return {"error": {"code": code, "message": f"{words} ({detail})" if detail else words, "status": status}}


class Admission:
    """At most `max_concurrent` requests hold an upload at once; up to `max_queue` more wait for a slot, without
    their bodies (uvicorn stops reading a connection whose body the app has not asked for); any more are refused
    at once (429), and one that waits longer than `timeout_s` is refused then (503).

    So the memory held by uploads stays under max_concurrent x max_upload_bytes whatever the load.
    """

    def __init__(self, max_concurrent: int, max_queue: int, timeout_s: float) -> None:
        self.max_concurrent, self.max_queue, self.timeout_s = max_concurrent, max_queue, timeout_s
        self._slots = asyncio.Semaphore(max_concurrent)
        self.active = 0
        self.waiting = 0
        self.refused = {"busy": 0, "overloaded": 0}

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self.waiting >= self.max_queue:
            self.refused["busy"] += 1
            raise ApiError(
                429,
                "busy",
                f"{self.active} requests are being answered and {self.waiting} wait: try again shortly",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.waiting += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            self.refused["overloaded"] += 1
            raise ApiError(
                503,
                "overloaded",
                f"no slot freed within {self.timeout_s:g} s: try again later",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._slots.release()

    def state(self) -> dict:
        return {
            "active": self.active,
            "waiting": self.waiting,
            "max_concurrent": self.max_concurrent,
            "max_queue": self.max_queue,
            "refused": dict(self.refused),
        }


class UploadTooLarge(Exception):
    """Raised from inside the body stream, so that the multipart parser stops reading at once."""


async def capped(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The request body's chunks, stopping with UploadTooLarge as soon as more than `max_bytes` have arrived:
    a client that sends chunked, or more than its Content-Length, cannot make the server buffer more."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise UploadTooLarge(received)
        yield chunk
