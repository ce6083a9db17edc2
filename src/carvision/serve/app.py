"""The FastAPI app of `carvision serve`: the API, the health check and the upload page.

    app = create_app(Recogniser.load(Path("models")), Limits())      # then run it under uvicorn

- `POST /v1/predict`: photos as multipart form fields named `files`. 200: `{"results": [...], "models": {...}}`,
  one result per file in order: the `carvision predict --json` object (without "path"), or, for a file that cannot
  be used, `{"error": {"code", "message", "status"}}`. When no file can be used, the request fails as a whole with
  the first file's status (415, 413 or 422) and the same `results` beside the `error`.
- `GET /healthz`: 200 when the models are loaded and the inference worker runs (503 otherwise), with the models,
  the queue and the batching counters.
- `GET /`: the upload page (static/index.html, app.js, style.css; no build step, nothing fetched from elsewhere).

Every error is `{"error": {"code": ..., "message": ...}}` (see `limits.py` for the limits and their statuses);
a 500 means a bug, and is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from carvision.images import sniff_format
from carvision.serve.batching import MicroBatcher
from carvision.serve.limits import Admission, ApiError, Limits, UploadTooLarge, capped, photo_error

log = logging.getLogger("carvision.serve")
STATIC = Path(__file__).parent / "static"
MAX_FIELD_BYTES = 64 * 1024  # a form field that is not a file: nothing the API reads, so small is plenty
# The page loads only its own files; blob: for the picked photo. No inline script, no other origin.
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'none'"
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "upload_too_large"}
MULTIPART_BODY = {  # the request body for the OpenAPI schema: the endpoint reads the stream itself
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            }
        },
    }
}


def warmup_photo() -> bytes:
    """A small JPEG for the first model call, which pays one-off costs (oneDNN kernels, allocator) before any
    request does."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (96, 72), (120, 130, 140)).save(buf, "JPEG")
    return buf.getvalue()


class SecurityHeaders:
    """Adds `X-Content-Type-Options: nosniff` to every response (a pure ASGI middleware: no per-request task)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_files(request: Request, limits: Limits) -> list[bytes]:
    """The bytes of each file part named `files`, in order, read with the body capped at `max_upload_bytes`.
    Raises ApiError for anything but a well-formed multipart body with 1 to `max_files` such parts."""
    parser = MultiPartParser(
        request.headers,
        capped(request.stream(), limits.max_upload_bytes),
        max_files=limits.max_files,
        max_fields=limits.max_files,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        async with asyncio.timeout(limits.read_timeout_s):
            form = await parser.parse()
    except UploadTooLarge:
        raise ApiError(
            413, "upload_too_large", f"the request body is larger than {limits.max_upload_bytes} bytes"
        ) from None
    except MultiPartException as e:
        if e.message.startswith("Too many files"):
            raise ApiError(413, "too_many_files", f"at most {limits.max_files} files per request") from None
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {e.message}") from None
    except TimeoutError:
        raise ApiError(408, "read_timeout", f"the body did not arrive within {limits.read_timeout_s:g} s") from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection mid-body") from None
    try:
        parts = form.getlist("files")
        if not parts:
            raise ApiError(422, "no_files", "no photo: send each one as a multipart file field named `files`")
        if any(isinstance(p, str) for p in parts):
            raise ApiError(422, "not_a_file", "`files` must be file parts (with a filename), not plain fields")
        return [await p.read() for p in parts]
    finally:
        await form.close()


def create_app(
    recogniser, limits: Limits | None = None, *, max_batch: int = 32, batch_window_ms: float = 0.0
) -> FastAPI:
    """The service around a loaded `carvision.recognise.Recogniser` (whose options hold threshold, top-k and
    max_pixels).

    Args:
        limits: body size, files per request, concurrency and timeouts.
        max_batch, batch_window_ms: the micro-batcher's (see `batching.MicroBatcher`).
    """
    limits = limits or Limits()
    batcher = MicroBatcher(recogniser.answer, max_batch=max_batch, window_s=batch_window_ms / 1000)
    admission = Admission(limits.max_concurrent, limits.max_queue, limits.queue_timeout_s)
    models = recogniser.describe()
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        await batcher.run_in_worker(recogniser.answer, [warmup_photo()])
        app.state.ready = True
        yield
        app.state.ready = False
        await batcher.stop()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN; /openapi.json stays.
    app = FastAPI(title="carvision", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ready = False
    app.state.batcher, app.state.admission, app.state.limits = batcher, admission, limits
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(e.status_code, f"http_{e.status_code}")
        return JSONResponse({"error": {"code": code, "message": str(e.detail)}}, e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": {"code": "invalid_request", "message": str(e.errors())[:500]}}, 422)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": {"code": "internal_error", "message": "a bug in the service; it is logged"}}, 500)

    @app.post("/v1/predict", openapi_extra=MULTIPART_BODY)
    async def predict(request: Request) -> JSONResponse:
        """Answers each photo: car probability, make/model top-k, viewpoint, and the car's box when the
        detector runs."""
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "multipart/form-data":
            raise ApiError(
                415, "unsupported_media_type", f"send multipart/form-data with `files` fields, not '{media or 'none'}'"
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_upload_bytes:
            raise ApiError(413, "upload_too_large", f"the request body is larger than {limits.max_upload_bytes} bytes")
        async with admission.slot():
            files = await read_files(request, limits)
            results: list[dict | None] = [None] * len(files)
            todo = []
            for i, data in enumerate(files):
                if not data:
                    results[i] = photo_error("empty_file")
                elif sniff_format(data) is None:  # text, HTML, anything without an image signature
                    results[i] = photo_error("not_an_image")
                else:
                    todo.append(i)
            answers = await batcher.submit([files[i] for i in todo])
        for i, a in zip(todo, answers, strict=True):
            results[i] = photo_error(a["error"]) if "error" in a else a
        failed = [r["error"] for r in results if "error" in r]
        if len(failed) < len(results):  # at least one answer: 200, refused photos say why in their place
            return JSONResponse({"results": results, "models": models})
        first = failed[0]
        message = first["message"]
        if len(results) > 1:
            message = f"none of the {len(results)} files is usable; the first: {message}"
        error = {"code": first["code"], "message": message}
        return JSONResponse({"error": error, "results": results}, first["status"])

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Whether the models are loaded and the worker runs; the queue and batching counters."""
        ok = bool(app.state.ready and batcher.alive)
        body = {
            "status": "ok" if ok else "unavailable",
            "models_loaded": ok,
            "models": models,
            "queue": admission.state() | {"batches_waiting": batcher.queued},
            "batching": batcher.stats.to_dict() | {"max_batch": batcher.max_batch, "window_ms": batch_window_ms},
        }
        return JSONResponse(body, 200 if ok else 503)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
