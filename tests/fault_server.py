"""A real HTTP/1.1 server on 127.0.0.1 (a free port, in a thread) that serves registered paths and injects faults.

    with FaultServer() as server:
        url = server.add("/a.jpg", JPEG, fault="500", times=2)   # two 500s, then the image
        ...
        assert server.count("/a.jpg") == 3

Faults, applied to the first `times` requests of a path (every request when `times` is None):
  "500", "503", "429", "404", ... : that status with a short text body
  "reset"    : headers and half the body, then the socket is closed with RST (ConnectionResetError)
  "slow"     : sleeps `slow_s` before answering (beyond the client's timeout)
  "truncate" : Content-Length promises 100 bytes more than the body that is sent, then the connection closes
Every request is logged with its arrival time (time.monotonic), and the server tracks how many it answers at once.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Route:
    body: bytes = b""
    content_type: str | None = "image/jpeg"
    status: int = 200
    fault: str | None = None
    times: int | None = None  # the first `times` requests get the fault; None: all of them
    slow_s: float = 1.0  # the "slow" fault's delay
    delay_s: float = 0.0  # every answer waits this long (a slow-ish server)
    location: str | None = None  # a redirect's target (with status 301/302/307/308)
    content_length: bool = True  # False: a close-delimited body without Content-Length
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body would wait ~40 ms for the
    # client's delayed ACK of the headers, on every response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet tests

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        n = self.server.owner._arrived(path)
        try:
            self._answer(path, n)
        finally:
            self.server.owner._left()

    def _answer(self, path: str, n: int) -> None:
        route = self.server.owner.routes.get(path)
        if route is None:
            return self._send(404, b"no such path", "text/plain")
        if route.delay_s:
            time.sleep(route.delay_s)
        fault = route.fault if route.fault and (route.times is None or n <= route.times) else None
        if fault is None:
            if route.location is not None:
                return self._send(route.status, b"", None, {"Location": route.location})
            return self._send(route.status, route.body, route.content_type, route.headers, route.content_length)
        if fault.isdigit():
            return self._send(int(fault), f"fault {fault}".encode(), "text/plain", route.headers)
        if fault == "slow":
            time.sleep(route.slow_s)
            return self._send(200, route.body, route.content_type)
        if fault == "truncate":
            self._head(200, route.content_type, {"Content-Length": str(len(route.body) + 100)})
            self.wfile.write(route.body)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
            return None
        if fault == "reset":
            self._head(200, route.content_type, {"Content-Length": str(len(route.body))})
            self.wfile.write(route.body[: len(route.body) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close() sends RST instead of FIN, as a crashed server or a middlebox does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return None
        raise ValueError(f"unknown fault {fault!r}")

    def _head(self, status: int, content_type: str | None, headers: dict[str, str]) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
        content_length: bool = True,
    ) -> None:
        headers = dict(headers or {})
        if content_length:
            headers["Content-Length"] = str(len(body))
        else:
            headers["Connection"] = "close"
            self.close_connection = True
        self._head(status, content_type, headers)
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timed out, or stopped reading a too-large body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping for a "slow" fault must not hold up the test's end
    owner: FaultServer

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up mid-answer are the point of these tests


class FaultServer:
    """The server; a context manager that starts it on entry and stops it on exit."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, float]] = []  # (path, arrival time.monotonic()) of every request
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes = b"", **route) -> str:
        """Registers `path` (see Route for the options); returns its URL."""
        self.routes[path] = Route(body=body, **route)
        return self.url(path)

    def count(self, path: str) -> int:
        with self._lock:
            return sum(p == path for p, _ in self.log)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for p, _ in self.log:
                out[p] = out.get(p, 0) + 1
            return out

    def times(self) -> list[float]:
        with self._lock:
            return [t for _, t in self.log]

    def _arrived(self, path: str) -> int:
        with self._lock:
            self.log.append((path, time.monotonic()))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return sum(p == path for p, _ in self.log)

    def _left(self) -> None:
        with self._lock:
            self._in_flight -= 1
