"""The service's shared fixtures: one `carvision serve` process for the package's tests, the photos they send, and
the library's own answers to compare with."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .live_server import MAX_FILES, MAX_PIXELS, MAX_UPLOAD_BYTES, Launch, LiveServer


def jpeg(im: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photos(trained_tasks) -> dict[str, bytes]:
    """Good photos (3 car crops and a whole listing photo of the session's sample) and every kind of bad file."""
    crops = pd.read_parquet(Path(trained_tasks.paths.crop) / "manifest.parquet")
    sources = [*crops["crop_path"].head(3), crops["path"].iloc[0]]
    out = {f"good{i}.jpg": Path(p).read_bytes() for i, p in enumerate(sources)}
    whole = out["good3.jpg"]
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # ~50 kB on disk, 400 MP (1.2 GB as RGB) decoded
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    out |= {
        "text.jpg": b"this is not a photo\n",
        "page.jpg": b"<!doctype html><html><body>403 Forbidden</body></html>",
        "empty.jpg": b"",
        "truncated.jpg": whole[: len(whole) // 2],
        "bomb.png": bomb.getvalue(),
        "big.jpg": jpeg(Image.fromarray(noise), quality=98),  # a real photo over the upload limit
        "header-only.jpg": whole[:20],
    }
    assert len(out["big.jpg"]) > MAX_UPLOAD_BYTES and len(out["bomb.png"]) < MAX_UPLOAD_BYTES
    return out


@pytest.fixture(scope="session")
def recogniser(trained_tasks):
    """The library in this process, on the session's trained checkpoints (the registry's champions)."""
    from carvision.recognise import Recogniser

    return Recogniser.load(Path(trained_tasks.paths.models), device="cpu")


@pytest.fixture(scope="session")
def cli_server_launch(trained_tasks, tmp_path_factory) -> Launch:
    """`carvision serve` as a user starts it: the console script, models from the registry's @champion aliases,
    in a folder without params.yaml, with small limits so that the fuzz set reaches each one. Tests that need no
    server but run first ask for this fixture, so that the process boots meanwhile."""
    cwd = tmp_path_factory.mktemp("serve-cli")
    args = [
        f"--tracking-uri={trained_tasks.mlflow.tracking_uri}",
        f"--max-upload-bytes={MAX_UPLOAD_BYTES}",
        f"--max-pixels={MAX_PIXELS}",
        f"--max-files={MAX_FILES}",
        "--device=cpu",
        "--threads=1",  # 2 shared cores: the event loop's thread takes the other
    ]
    launch = Launch(args, cwd)
    yield launch
    launch.stop()


@pytest.fixture(scope="session")
def cli_server(cli_server_launch) -> LiveServer:
    return cli_server_launch.ready()
