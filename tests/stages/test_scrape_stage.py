"""Tests for the scrape stage (carvision.stages.scrape) against a real HTTP server on 127.0.0.1 injecting faults:
what ends on disk, what the report says, resuming (in-process and after kill -9), and ingest reading the result."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import FaultServer
from omegaconf import OmegaConf
from PIL import Image

from carvision.config import load_params
from carvision.safe_names import is_inside, safe_name
from carvision.settings import ConfigError
from carvision.stages.ingest import ingest
from carvision.stages.scrape import JOURNAL, main, read_listings, scrape
from conftest import REPO

HTML = b"<!doctype html><html><body><h1>This listing has been removed</h1>" + b" " * 100 + b"</body></html>"
LONG_ID = "x" * 300  # more bytes than any file name may have
HEADER = ["ad_id", "make", "model", "year", "image_urls"]
# Tiny timeouts and backoffs keep the faults fast: 0.3 s per read, retries 0.01 s, 0.02 s, ... apart.
FAST = dict(concurrency=4, per_host_rps=0.0, retries=2, timeout_s=0.3, max_bytes=100_000, backoff_s=0.01)


def jpeg(i: int) -> bytes:
    """A tiny JPEG, different for each i."""
    buf = io.BytesIO()
    Image.new("RGB", (12, 10), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)).save(buf, "JPEG")
    return buf.getvalue()


def name_of(body: bytes) -> str:
    return f"{hashlib.sha256(body).hexdigest()[:16]}.jpg"


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def outputs(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("listings.csv", "report.json", "failures.csv")}


@pytest.fixture(scope="module")
def server():
    with FaultServer() as s:
        yield s


@pytest.fixture(scope="module")
def scraped(server: FaultServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One scrape of listings that meet every fault, run once for the module; treat its folder as read-only."""
    s, root = server, tmp_path_factory.mktemp("scrape")
    body = {i: jpeg(i) for i in range(12)}
    u = {
        "a1": s.add("/a/1.jpg", body[1]),
        "a2": s.add("/a/2.jpg", body[2]),
        "a1-again": s.add("/a/1-copy.jpg", body[1]),  # the same photo under another URL
        "flaky": s.add("/a/flaky.jpg", body[3], fault="500", times=2),
        "gone": s.add("/a/gone.jpg", body[9], status=404),
        "removed": s.add("/a/removed.jpg", HTML, content_type="image/jpeg"),
        "etc": s.add("/etc/1.jpg", body[4]),
        "long": s.add("/long/1.jpg", body[5]),
        "c-gone": s.add("/c/gone.jpg", body[9], status=404),
        "down": s.add("/d/down.jpg", body[9], fault="503"),
        "d1": s.add("/d/1.jpg", body[6]),
        "reset": s.add("/e/reset.jpg", body[7], fault="reset", times=1),
        "cut": s.add("/e/cut.jpg", body[8], fault="truncate", times=1),
        "slow": s.add("/e/slow.jpg", body[10], fault="slow", times=1, slow_s=0.6),
        "page": s.add("/e/page.jpg", body[11], content_type="text/html"),
    }
    rows = [
        ["A1", "Toyota", "Corolla", "2019", ";".join([u["a1"], u["a2"], u["a1-again"], u["a1"], u["flaky"],
                                                      u["gone"], u["removed"], "ftp://127.0.0.1/a.jpg"])],
        ["../../etc", "BMW", "X5", "2020", u["etc"]],
        [LONG_ID, "Audi", "A4", "", u["long"]],
        ["B2", "Ford", "Focus", "2018", " ; "],  # no images
        ["bad", "Ford", "Focus", "2018", u["d1"], "an extra field"],  # line 6: malformed
        ["nul", "Fo\x00rd", "Focus", "2018", u["d1"]],  # line 7: NUL byte
        ["C3", "Kia", "Rio", "2017", u["c-gone"]],  # every image fails
        ["A1", "Toyota", "Yaris", "2019", u["d1"]],  # line 9: repeated ad_id
        ["", "Opel", "Astra", "2016", u["d1"]],  # line 10: no ad_id
        ["D4", "Mazda", "3", "2021", f"{u['down']};{u['d1']}"],
        ["E5", "Honda", "Civic", "2022", ";".join([u["reset"], u["cut"], u["slow"], u["page"], "javascript:x()"])],
    ]  # fmt: skip
    listings = write_csv(root / "listings-urls.csv", HEADER, rows)
    out = root / "out"
    report = scrape(listings, out, **FAST, progress=False)
    return dict(out=out, listings=listings, report=report, body=body, url=u, counts=server.counts())


def test_recoverable_images_are_on_disk_once_and_nothing_else(scraped: dict):
    out, body = scraped["out"], scraped["body"]
    images = out / "images"
    expected = {
        "A1": [body[1], body[2], body[3]],
        safe_name("../../etc"): [body[4]],
        safe_name(LONG_ID): [body[5]],
        "D4": [body[6]],
        "E5": [body[7], body[8], body[10]],
    }
    rows = read_rows(out / "listings.csv")
    assert [r["ad_id"] for r in rows] == list(expected)
    assert [r["source_ad_id"] for r in rows] == ["A1", "../../etc", LONG_ID, "D4", "E5"]
    labels = [(r["make"], r["model"], r["year"]) for r in rows]
    assert labels[:3] == [("Toyota", "Corolla", "2019"), ("BMW", "X5", "2020"), ("Audi", "A4", "")]
    for r in rows:
        assert r["images"].split(";") == [name_of(b) for b in expected[r["ad_id"]]]
    # Exactly the listed files exist: no partial files, no second copy of a photo, nothing outside the folder.
    on_disk = files_under(images)
    assert on_disk == sorted(images / ad / name_of(b) for ad, bs in expected.items() for b in bs)
    for p in on_disk:
        assert is_inside(p, images) and len(p.parent.name.encode()) < 255


def test_every_failure_is_reported_with_its_reason(scraped: dict):
    out, u = scraped["out"], scraped["url"]
    failures = [(r["ad_id"], r["url"], r["reason"]) for r in read_rows(out / "failures.csv")]
    assert failures == [
        ("A1", u["gone"], "http_404"),
        ("A1", u["removed"], "not_an_image"),
        ("A1", "ftp://127.0.0.1/a.jpg", "unsupported_url"),
        ("B2", "", "listing_without_images"),
        ("bad", "", "malformed_line"),
        ("nul", "", "malformed_line"),
        ("C3", u["c-gone"], "http_404"),
        ("A1", "", "repeated_ad_id"),
        ("", "", "missing_ad_id"),
        ("D4", u["down"], "http_503"),
        ("E5", u["page"], "wrong_content_type"),
        ("E5", "javascript:x()", "unsupported_url"),
    ]
    report = json.loads((out / "report.json").read_text())
    assert report == scraped["report"]
    assert report["encoding"] == "utf-8"
    assert report["failed_by_reason"] == {
        "http_404": 2, "http_503": 1, "not_an_image": 1, "unsupported_url": 2, "wrong_content_type": 1,
    }  # fmt: skip
    assert report["urls_by_outcome"] == {"downloaded": 9, "duplicate_content": 1, "duplicate_url": 1, "failed": 7}
    assert report["listings_lost_by_reason"] == {
        "listing_without_images": 1, "malformed_line": 2, "missing_ad_id": 1, "no_image_downloaded": 1,
        "repeated_ad_id": 1,
    }  # fmt: skip
    # The counts reconcile: listings in = out + lost; URLs = the sum of their outcomes.
    assert report["listings_in"] == 11 == report["listings_out"] + sum(report["listings_lost_by_reason"].values())
    assert report["urls"] == sum(report["urls_by_outcome"].values()) == 18
    lines = {p["source_ad_id"]: (p["line"], p["reason"]) for p in report["listing_problems"]}
    assert lines["bad"] == (6, "malformed_line") and lines["nul"] == (7, "malformed_line")
    assert "line 6: 6 fields" in next(p["detail"] for p in report["listing_problems"] if p["line"] == 6)


def test_permanent_failures_are_not_retried_and_transient_ones_are(scraped: dict):
    counts = scraped["counts"]
    assert counts["/a/gone.jpg"] == counts["/a/removed.jpg"] == counts["/e/page.jpg"] == 1
    assert counts["/a/flaky.jpg"] == 3 and counts["/d/down.jpg"] == 3  # 1 + retries
    assert counts["/a/1.jpg"] == 1  # listed twice in A1, fetched once


def test_ingest_reads_the_scrape_into_a_manifest(scraped: dict):
    result = ingest("scrape", scraped["out"])
    assert len(result.dropped) == 0
    kept = result.kept
    assert len(kept) == 9
    assert sorted(set(kept["listing_id"])) == sorted(["A1", "D4", "E5", safe_name("../../etc"), safe_name(LONG_ID)])
    assert set(kept.loc[kept["listing_id"] == "A1", "label"]) == {"Toyota Corolla"}
    assert all(Path(p).is_file() for p in kept["path"])


def test_a_second_run_resumes_downloading_nothing_twice(scraped: dict, server: FaultServer, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(scraped["out"], out)
    before = server.counts()
    report = scrape(scraped["listings"], out, **FAST, progress=False)
    after = server.counts()
    # Only the URL that failed transiently (503 every time) is tried again; done and permanent ones are not.
    assert {p: n - before.get(p, 0) for p, n in after.items() if n != before.get(p, 0)} == {"/d/down.jpg": 3}
    assert outputs(out) == outputs(scraped["out"])
    assert report == scraped["report"]


def test_a_latin1_listings_file_is_read_as_cp1252(server: FaultServer, tmp_path: Path):
    url = server.add("/latin/1.jpg", jpeg(20))
    listings = write_csv(tmp_path / "l.csv", HEADER, [["L1", "Škoda", "Citroën-like", "2015", url]], "cp1252")
    report = scrape(listings, tmp_path / "out", **FAST, progress=False)
    assert report["encoding"] == "cp1252"
    (row,) = read_rows(tmp_path / "out" / "listings.csv")
    assert (row["make"], row["model"]) == ("Škoda", "Citroën-like")


def test_a_utf8_file_with_bom_and_ids_with_a_url_template(server: FaultServer, tmp_path: Path):
    # `images` holds ids; the template quotes the ad_id and the id, so "a b/c" stays one path segment.
    server.add("/t/a%20b%2Fc/front%201.jpg", jpeg(21))
    server.add("/t/a%20b%2Fc/back.jpg", jpeg(22))
    listings = tmp_path / "l.csv"
    listings.write_bytes(b"\xef\xbb\xbfad_id,make,model,submodel,images\na b/c,Kia,Rio,LX,front 1;back\n")
    template = server.url("/t/{ad_id}/{image}.jpg")
    report = scrape(listings, tmp_path / "out", url_template=template, **FAST, progress=False)
    assert report["encoding"] == "utf-8-sig" and report["images"] == 2
    (row,) = read_rows(tmp_path / "out" / "listings.csv")
    assert (row["ad_id"], row["source_ad_id"], row["submodel"]) == (safe_name("a b/c"), "a b/c", "LX")
    assert row["images"].split(";") == [name_of(jpeg(21)), name_of(jpeg(22))]


@pytest.mark.parametrize(
    "header, template, key",
    [
        (["ad_id", "model", "year", "image_urls"], None, "scrape.listings"),  # no make
        (["ad_id", "make", "model", "year"], None, "scrape.listings"),  # no image column
        (["ad_id", "make", "model", "year", "images"], None, "scrape.url_template"),  # ids, no template
        (["ad_id", "make", "model", "year", "images"], "http://h/{ad}/{image}", "scrape.url_template"),
        (["ad_id", "make", "model", "year", "images"], "file:///{ad_id}/{image}", "scrape.url_template"),
    ],
)
def test_config_errors_fail_at_start_naming_the_key(tmp_path: Path, header, template, key):
    listings = write_csv(tmp_path / "l.csv", header, [["1"] * len(header)])
    with pytest.raises(ConfigError, match=key):
        scrape(listings, tmp_path / "out", url_template=template, **FAST, progress=False)
    assert not (tmp_path / "out").exists()  # nothing started


def test_a_record_the_csv_reader_refuses_costs_only_that_listing(tmp_path: Path):
    listings = tmp_path / "l.csv"
    listings.write_text(
        "ad_id,make,model,image_urls\n"
        "A,Kia,Rio,http://h/a.jpg\n"
        f"B,Kia,{'x' * 200_000},http://h/b.jpg\n"  # a field over the csv module's limit
        '"C","Kia\nMotors",Rio,http://h/c.jpg\n'  # one record on lines 4-5
        "D,Kia,Rio,http://h/d.jpg\n"
    )
    read = read_listings(listings)
    assert [(x.line, x.source_ad_id) for x in read.listings] == [(2, "A"), (4, "C"), (6, "D")]
    assert [(x.line, x.reason) for x in read.problems] == [(3, "malformed_line")]
    assert read.rows_in == 4


def test_a_missing_listings_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="scrape.listings"):
        scrape(tmp_path / "nope.csv", tmp_path / "out", progress=False)


def test_kill_9_then_restart_completes_without_fetching_twice(server: FaultServer, tmp_path: Path):
    # 20 photos at 0.05 s each, two at a time: the scrape is killed once 6 are journaled.
    listings, bodies = [], {}
    for a in range(5):
        urls = []
        for i in range(4):
            bodies[f"/kill/{a}/{i}.jpg"] = jpeg(100 + 4 * a + i)
            urls.append(server.add(f"/kill/{a}/{i}.jpg", bodies[f"/kill/{a}/{i}.jpg"], delay_s=0.05))
        listings.append([f"K{a}", "Seat", "Ibiza", "2014", ";".join(urls)])
    listings_csv = write_csv(tmp_path / "l.csv", HEADER, listings)
    out = tmp_path / "out"
    cfg = load_params(REPO / "params.yaml")
    # per_host_rps: the default 4/s would only make this test slower.
    cfg.scrape = dict(cfg.scrape, listings=str(listings_csv), out=str(out), concurrency=2, per_host_rps=1000.0)
    params = tmp_path / "params.yaml"
    OmegaConf.save(cfg, params)

    command = [sys.executable, "-m", "carvision.stages.scrape", "--params", str(params)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / JOURNAL
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"file"') >= 6:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]  # killed, not finished
    proc.stderr.close()

    done_before = {json.loads(line)["url"] for line in journal.read_text().splitlines() if '"file"' in line}
    assert 6 <= len(done_before) < 20
    (out / "images" / "K0" / ".left-by-a-killed-run.part").write_bytes(b"half a photo")
    counts_at_kill = server.counts()

    main(load_params(params))  # the restart
    counts = server.counts()
    for url in done_before:  # a URL finished before the kill was not requested again
        path = url.removeprefix(server.url(""))
        assert counts[path] == counts_at_kill[path] == 1, path
    assert not list(out.rglob("*.part"))
    rows = read_rows(out / "listings.csv")
    assert [r["ad_id"] for r in rows] == [f"K{a}" for a in range(5)]
    listed = sorted(out / "images" / r["ad_id"] / f for r in rows for f in r["images"].split(";"))
    assert files_under(out / "images") == listed  # every photo, each once, nothing else
    assert sorted(p.read_bytes() for p in listed) == sorted(bodies.values())

    # The outputs equal those of a run that was never interrupted.
    fresh = tmp_path / "fresh"
    scrape(listings_csv, fresh, concurrency=4, per_host_rps=0.0, progress=False)
    assert outputs(out) == outputs(fresh)
