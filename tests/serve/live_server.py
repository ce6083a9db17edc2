"""Real `carvision serve` servers for the tests: uvicorn on 127.0.0.1, on a port the OS picks.

- `Launch`: the installed console script in a subprocess, as a user runs it (its own process: its memory can
  be read from /proc, and a crash cannot take the tests down with it).
- `start_in_thread`: `create_app(...)` under `uvicorn.Server` in a thread of the test process, for apps built in
  the test (tiny limits, or the red-box stand-in detector, which only works in-process).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

from carvision.cropping import CropSpec

URL_LINE = re.compile(r"carvision serve: (http://127\.0\.0\.1:\d+)/")
# The limits of the tests' `carvision serve` process (tests/serve/conftest.py), small so that the fuzz set hits each.
MAX_UPLOAD_BYTES = 300_000  # the good photos are a few kB; the oversized ones are above this
MAX_PIXELS = 4_000_000  # the photos are 128x96 at most; the bomb is 20000x20000
MAX_FILES = 4


@dataclass
class LiveServer:
    url: str
    pid: int | None = None  # the server process (None: runs in this process)
    log: Path | None = None
    _stop: object = field(default=None, repr=False)  # stops a server started in this process

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.is_file() else ""


def wait_healthy(url: str, timeout_s: float, alive=lambda: True) -> dict:
    """/healthz's body once it answers 200; fails when `alive()` turns false or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError("the server exited before it was healthy")
        try:
            r = httpx.get(f"{url}/healthz", timeout=5)
            if r.status_code == 200:
                return r.json()
            last = r.status_code
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{url}/healthz not healthy within {timeout_s} s (last: {last})")


def carvision_script() -> str:
    script = Path(sys.executable).parent / "carvision"
    assert script.is_file(), f"the console script is not installed beside {sys.executable}: pip install -e ."
    return str(script)


class Launch:
    """`carvision serve --port 0 ARGS` started in `cwd` (stdout and stderr to cwd/serve.log); `ready()` waits for
    its URL line and a healthy /healthz. Starting it early lets its imports and model loading (~15 s on 2 shared
    cores) overlap tests that do not need it."""

    def __init__(self, args: list[str], cwd: Path, timeout_s: float = 180) -> None:
        self.log = cwd / "serve.log"
        self.deadline = time.monotonic() + timeout_s
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [carvision_script(), "serve", "--port", "0", *args], cwd=cwd, env=env, stdout=out, stderr=out
            )
        self.server: LiveServer | None = None

    def ready(self) -> LiveServer:
        if self.server is not None:
            return self.server
        url = None
        while url is None:
            m = URL_LINE.search(self.log.read_text(errors="replace"))
            if m:
                url = m.group(1)
            elif self.proc.poll() is not None or time.monotonic() > self.deadline:
                self.stop()
                raise AssertionError(f"carvision serve did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.2)
        server = LiveServer(url, self.proc.pid, self.log)
        try:
            wait_healthy(url, max(1.0, self.deadline - time.monotonic()), alive=lambda: self.proc.poll() is None)
        except AssertionError:
            self.stop()
            raise AssertionError(f"carvision serve is not healthy:\n{server.log_text()[-3000:]}") from None
        self.server = server
        return server

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_in_thread(app, timeout_s: float = 60) -> LiveServer:
    """`app` under uvicorn in a daemon thread, on a socket bound here to 127.0.0.1 and a free port."""
    import uvicorn

    from carvision.serve import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-test")
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()

    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout_s, alive=thread.is_alive)
    except AssertionError:
        stop()
        raise
    return LiveServer(url, None, None, stop)


def rss_mb(pid: int) -> float:
    """The process's resident memory (VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise AssertionError(f"no VmRSS for {pid}")


def detector_trained(models: Path, out: Path, detector: dict, margin: float = 0.1) -> Path:
    """A copy of `models` whose make_model and viewpoint checkpoints say that they learnt from detector crops
    (as tests/test_recognise.py makes them), so that the service finds the car and answers with its box."""
    shutil.copytree(models, out)
    for task in ("make_model", "viewpoint"):
        path = out / task / "model.ckpt"
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["hyper_parameters"]["crop"] = CropSpec("detector", margin, 96, 12, detector).to_hparams()
        torch.save(ckpt, path)
    return out


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "carvision-test-boundary") -> bytes:
    """A multipart/form-data body built by hand (so that tests can send what a client library would refuse):
    (field name, file name or None for a plain field, content)."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()
