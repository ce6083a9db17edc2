"""carvision serve [--host 127.0.0.1] [--port 8000] [--models DIR] [--runtime torch|onnx] [--max-upload-bytes N] ...

The HTTP service and upload page: `POST /v1/predict` (photos as multipart `files` fields), `GET /healthz`, and the
page at `GET /` (http://127.0.0.1:8000/). See docs/serve.md.

Models load at start, before the port opens: from the registry aliases (`models:/car-classifier@champion`, ...) by
default, from a folder of checkpoints (`--models models`: models/<task>/model.ckpt), or with `--runtime onnx` from
the files `carvision export` wrote (`--models exports`: exports/<task>/model.onnx, `--int8` for model.int8.onnx).

Settings come from the `serve` section of params.yaml when run inside a carvision project folder (the registry
names, alias and tracking URI, and the car threshold too, as `carvision predict` reads them), else from the built-in
defaults; each flag overrides its setting.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import typing
from pathlib import Path

from carvision.settings import ServeSettings

log = logging.getLogger("carvision.serve")


def project_settings(params: Path = Path("params.yaml")) -> ServeSettings:
    """The project's `serve` section when run inside a carvision folder, else the built-in one."""
    if not params.is_file():
        return ServeSettings()
    from carvision import settings
    from carvision.config import load_params

    return settings.parse(load_params(params)).serve


def export_folder(params: Path = Path("params.yaml")) -> str:
    """Where `carvision export` writes (`export.out`): the ONNX runtime's default models folder."""
    if not params.is_file():
        return "exports"
    from carvision import settings
    from carvision.config import load_params

    return settings.parse(load_params(params)).export.out


def add_settings_arguments(p: argparse.ArgumentParser, s: ServeSettings) -> None:
    """One flag per ServeSettings field (`--max-upload-bytes`), its default the project's value, its help the
    field's doc."""
    hints = typing.get_type_hints(ServeSettings)
    for f in dataclasses.fields(ServeSettings):
        flag, default, text = "--" + f.name.replace("_", "-"), getattr(s, f.name), f.metadata.get("doc", "")
        tp = hints[f.name]
        help_text = f"{text} (default: {default})"
        if tp is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif typing.get_origin(tp) is typing.Literal:
            p.add_argument(flag, choices=typing.get_args(tp), default=default, help=help_text)
        elif tp in (int, float):
            p.add_argument(flag, type=tp, default=default, help=help_text)
        else:  # str, str | None
            p.add_argument(flag, default=default, help=help_text)


def parse_args(argv: list[str] | None, params: Path = Path("params.yaml")) -> tuple[ServeSettings, argparse.Namespace]:
    """(the serve settings: the project's, overridden by flags; the other arguments)."""
    from carvision.predict import project_defaults

    d = project_defaults(params)
    s = project_settings(params)
    p = argparse.ArgumentParser(prog="carvision serve", description=__doc__.split("\n\n", 1)[1])
    add_settings_arguments(p, s)
    p.add_argument("--tracking-uri", default=d.tracking_uri, help="MLflow store holding the registry")
    p.add_argument("--alias", default=d.alias, help="registry alias of each task's model")
    p.add_argument("--threshold", type=float, default=d.threshold, help="car probability below which is_car is false")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False, help="log every request")
    args = p.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings)}
    args.registry = dict(d.registry)
    args.exports = export_folder(params)
    return ServeSettings(**values), args


def cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def inference_threads(threads: int) -> int:
    """`threads`, or for 0 one less than the usable cores (at least 1): the event loop (HTTP, multipart, JSON) keeps
    a core, and torch's OpenMP threads, which spin a while after each parallel region, do not contend with it."""
    return threads or max(1, cores() - 1)


def set_threads(threads: int) -> int:
    """Gives torch's intra-op pool `inference_threads(threads)` threads and one inter-op thread (the one inference
    worker runs one batch at a time)."""
    import torch

    n = inference_threads(threads)
    torch.set_num_threads(n)
    # Raises once set (a second server in one process, as the tests start them): keep the first setting.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return n


def load_recogniser(s: ServeSettings, args: argparse.Namespace):
    """The Recogniser that `s` asks for: torch checkpoints or the registry, or ONNX exports."""
    from carvision.recognise import Options, Recogniser

    common = dict(
        crop=s.crop,
        detector_weights=s.detector_weights,
        options=Options(args.threshold, s.top_k, s.max_pixels),
        device=s.device,
        registry=args.registry,
        alias=args.alias,
        tracking_uri=args.tracking_uri,
    )
    if s.runtime == "onnx":
        # Imported here: the ONNX runtime is only needed when asked for.
        from carvision.onnx_predictor import FP32_FILE, INT8_FILE, load_predictor

        threads = inference_threads(s.threads)

        def loader(source: str, *, tracking_uri: str, device: str | None):
            return load_predictor(source, "onnx", threads=threads, device=device)

        folder = Path(s.models or args.exports)
        return Recogniser.load(folder, filename=INT8_FILE if s.int8 else FP32_FILE, loader=loader, **common)
    if s.int8:
        raise SystemExit("carvision serve: --int8 is an ONNX export: add --runtime onnx")
    return Recogniser.load(Path(s.models) if s.models else None, **common)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), made here so that the real port is known.

    Made with proto=IPPROTO_TCP, as asyncio makes its own: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    connections whose socket says TCP, and with it on, a keep-alive response written as headers then body waits for
    the client's delayed ACK of the headers: +40 ms on every request after a connection's first (measured: GET
    /healthz 44 ms instead of 1 ms)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once on the same port
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it (Linux)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from carvision.recognise import exits_on_load_errors
    from carvision.serve.app import create_app
    from carvision.serve.limits import Limits

    s, args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = Limits(
        s.max_upload_bytes,
        s.max_pixels,
        s.max_files,
        s.max_concurrent,
        s.max_queue,
        s.queue_timeout_s,
        s.read_timeout_s,
    )
    with exits_on_load_errors("carvision serve"):
        try:
            rec = load_recogniser(s, args)
        except ImportError as e:
            raise SystemExit(f"carvision serve: the {s.runtime} runtime is not available here ({e})") from e
    threads = set_threads(s.threads)
    app = create_app(rec, limits, max_batch=s.max_batch, batch_window_ms=s.batch_window_ms)
    try:
        sock = bind(s.host, s.port)
    except OSError as e:
        raise SystemExit(f"carvision serve: cannot listen on {s.host}:{s.port} ({e.strerror})") from e
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("models: %s", {t: m.get("version") or m.get("source") for t, m in rec.describe().items()})
    log.info("%s runtime, %d inference threads, batches of up to %d photos", s.runtime, threads, s.max_batch)
    # flush: tests and scripts read the URL from the pipe to learn the port
    print(f"carvision serve: http://{shown}:{port}/ (API: POST /v1/predict, GET /healthz)", flush=True)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C: uvicorn has shut down gracefully, then re-raises the signal
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
