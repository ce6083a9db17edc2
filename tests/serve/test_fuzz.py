"""The fuzz set against a real `carvision serve` process: every malformed, oversized, hostile or mislabelled request
gets a 4xx with a JSON error body naming the problem, never a 5xx, and the server stays healthy."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .live_server import MAX_FILES, MAX_UPLOAD_BYTES, multipart

BOUNDARY = "carvision-test-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def one(name: str, data: bytes) -> bytes:
    return multipart([("files", name, data)], BOUNDARY)


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (httpx sends a generator chunked): only counting can stop it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def cases(p: dict[str, bytes]) -> dict[str, tuple[dict, int, str]]:
    """name -> (httpx request arguments, expected status, expected error code)."""
    good = p["good0.jpg"]
    closing = f"--{BOUNDARY}--\r\n".encode()
    big = one("big.jpg", p["big.jpg"])
    nameless = f'--{BOUNDARY}\r\nContent-Disposition: form-data; filename="a.jpg"\r\n\r\n'.encode() + good + b"\r\n"
    return {
        # malformed multipart
        "garbage body": (dict(content=b"\x00\x01garbage\xff" * 100, headers=MULTIPART), 400, "bad_multipart"),
        "another boundary": (
            dict(content=multipart([("files", "a.jpg", good)], "other"), headers=MULTIPART),
            400,
            "bad_multipart",
        ),
        "no boundary": (
            dict(content=one("a.jpg", good), headers={"content-type": "multipart/form-data"}),
            400,
            "bad_multipart",
        ),
        "part without a name": (dict(content=nameless + closing, headers=MULTIPART), 400, "bad_multipart"),
        "cut before the closing boundary": (
            dict(content=one("a.jpg", good)[: -len(closing) - 100], headers=MULTIPART),
            422,
            "no_files",
        ),
        "plain field over 64 kB": (
            dict(content=multipart([("note", None, b"x" * 70_000)], BOUNDARY), headers=MULTIPART),
            400,
            "bad_multipart",
        ),
        # empty
        "empty multipart body": (dict(content=b"", headers=MULTIPART), 422, "no_files"),
        "empty body, no content type": (dict(content=b""), 415, "unsupported_media_type"),
        "empty file": (dict(content=one("a.jpg", b""), headers=MULTIPART), 422, "empty_file"),
        # too large
        "oversized file, declared length": (dict(content=big, headers=MULTIPART), 413, "upload_too_large"),
        "oversized file, chunked": (dict(content=chunked(big), headers=MULTIPART), 413, "upload_too_large"),
        "decompression bomb": (dict(content=one("bomb.png", p["bomb.png"]), headers=MULTIPART), 413, "too_many_pixels"),
        "too many files": (
            dict(
                content=multipart([("files", f"{i}.jpg", good) for i in range(MAX_FILES + 1)], BOUNDARY),
                headers=MULTIPART,
            ),
            413,
            "too_many_files",
        ),
        # broken or fake images
        "truncated JPEG": (dict(content=one("t.jpg", p["truncated.jpg"]), headers=MULTIPART), 422, "truncated_image"),
        "JPEG header only": (dict(content=one("h.jpg", p["header-only.jpg"]), headers=MULTIPART), 422, "corrupt_image"),
        "text named .jpg": (dict(content=one("text.jpg", p["text.jpg"]), headers=MULTIPART), 415, "not_an_image"),
        "HTML named .jpg": (dict(content=one("page.jpg", p["page.jpg"]), headers=MULTIPART), 415, "not_an_image"),
        # wrong content types
        "JSON": (dict(json={"files": ["a.jpg"]}), 415, "unsupported_media_type"),
        "a raw JPEG body": (dict(content=good, headers={"content-type": "image/jpeg"}), 415, "unsupported_media_type"),
        "urlencoded form": (dict(data={"files": "a.jpg"}), 415, "unsupported_media_type"),
        # the wrong fields
        "no files field": (
            dict(content=multipart([("photo", "a.jpg", good)], BOUNDARY), headers=MULTIPART),
            422,
            "no_files",
        ),
        "files as a plain field": (
            dict(content=multipart([("files", None, b"a.jpg")], BOUNDARY), headers=MULTIPART),
            422,
            "not_a_file",
        ),
    }


CASES = list(
    cases(
        {
            k: b"x"
            for k in ("good0.jpg", "big.jpg", "bomb.png", "truncated.jpg", "header-only.jpg", "text.jpg", "page.jpg")
        }
    )
)


@pytest.mark.parametrize("case", CASES)
def test_the_fuzz_set_gets_4xx_with_a_json_error(cli_server, photos, case):
    kwargs, status, code = cases(photos)[case]
    r = httpx.post(f"{cli_server.url}/v1/predict", timeout=60, **kwargs)
    assert r.status_code == status, (case, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"], (case, error)


ODD_NAMES = [
    "voiture é ☃ (1).jpg",
    "../../../../tmp/carvision-pwned.jpg",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "a" * 2000 + ".jpg",
    "semi;colon=1.jpg",
    "",
]


def test_odd_file_names_are_only_labels(cli_server, photos):
    """Names are never used as paths: a good photo under any name is answered, a text file refused (415), and
    nothing appears where a path-traversal name points."""
    before = sorted(p.name for p in cli_server.log.parent.iterdir())
    expected = httpx.post(f"{cli_server.url}/v1/predict", content=one("a.jpg", photos["good0.jpg"]), headers=MULTIPART)
    for name in ODD_NAMES:
        body = multipart([("files", name, photos["good0.jpg"]), ("files", name, photos["text.jpg"])], BOUNDARY)
        r = httpx.post(f"{cli_server.url}/v1/predict", content=body, headers=MULTIPART, timeout=60)
        assert r.status_code == 200, (name[:40], r.text[:300])
        good, text = r.json()["results"]
        assert good == expected.json()["results"][0]
        assert text["error"]["status"] == 415
    # A name that is not UTF-8 at all (raw bytes in the header).
    raw = multipart([("files", "X", photos["text.jpg"])], BOUNDARY).replace(b'filename="X"', b'filename="\xff\xfe.jpg"')
    r = httpx.post(f"{cli_server.url}/v1/predict", content=raw, headers=MULTIPART)
    assert r.status_code == 415 and r.json()["error"]["code"] == "not_an_image"
    assert sorted(p.name for p in cli_server.log.parent.iterdir()) == before
    assert not Path("/tmp/carvision-pwned.jpg").exists()


def raw_request(url: str, head: bytes, body: bytes = b"", read_s: float = 10) -> bytes:
    """Sends bytes over a socket as they are (what no HTTP client library sends) and returns the raw answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_s) as s:
        s.sendall(head + body)
        out = b""
        while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(cli_server):
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {10**12}\r\n\r\n"
    ).encode()
    answer = raw_request(cli_server.url, head, b"--" + BOUNDARY.encode())  # 1 TB announced, a few bytes sent
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"upload_too_large"' in answer and str(MAX_UPLOAD_BYTES).encode() in answer


def test_other_methods_and_paths_get_json_errors(cli_server):
    r = httpx.get(f"{cli_server.url}/v1/predict")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.get(f"{cli_server.url}/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{cli_server.url}/static/../../../etc/passwd")
    assert r.status_code == 404


def test_after_the_fuzz_set_the_server_is_healthy_and_logged_no_error(cli_server):
    assert httpx.get(f"{cli_server.url}/healthz").json()["status"] == "ok"
    log = cli_server.log_text()
    assert "Traceback" not in log and " 500 " not in log and "ERROR" not in log, log[-3000:]
