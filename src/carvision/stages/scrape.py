"""Scrape: download the photos of listings (a CSV of image URLs) into the raw-scrape layout that ingest reads.

python -m carvision.stages.scrape                      # reads params.yaml (DVC: dvc repro pipelines/scrape/dvc.yaml)
python -m carvision.stages.scrape --params other.yaml  # any composed config

Input (`scrape.listings`): a CSV with ad_id, make, model, optionally submodel and/or year, and either image_urls
(`;`-separated http/https URLs) or images (`;`-separated ids, made into URLs by `scrape.url_template`).
Output (`scrape.out`, the layout of `data: scrape`):
  listings.csv     ad_id (the listing's folder name), source_ad_id, make, model, submodel|year, images (`;`-separated)
  images/<ad_id>/<sha256 of the content, 16 hex>.<ext from the content>
  report.json      counts by outcome and reason, the CSV's encoding, and every listing-level problem with its line
  failures.csv     ad_id (as in the input), url, reason, detail, attempts: every failed URL and every lost listing
  journal.jsonl    one line per finished URL, appended as it finishes: what makes a restart resume

A restart skips every URL journaled as done (whose file is still there) or as failed for good, and retries
transient failures; listings.csv, report.json and failures.csv are rebuilt from the input and the journal, so a
resumed run writes the same outputs as one that was never interrupted. Delete journal.jsonl to start over.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from omegaconf import DictConfig

from carvision import settings
from carvision.atomic import write_json, write_text
from carvision.config import load_params
from carvision.download import Job, Result, download, remove_partials, unsupported_url
from carvision.safe_names import safe_name
from carvision.settings import ConfigError

JOURNAL = "journal.jsonl"
LABEL_COLUMNS = ("make", "model", "submodel", "year")  # carried into listings.csv when the input has them
FAILURE_COLUMNS = ["ad_id", "url", "reason", "detail", "attempts"]
BACKOFF_S = 0.5  # first retry's delay; doubles with each retry


@dataclass(frozen=True)
class Listing:
    line: int  # where its record starts in the CSV (the header is line 1)
    source_ad_id: str
    ad_id: str  # safe_name(source_ad_id): its folder under images/, and its ad_id in listings.csv
    labels: dict[str, str]  # make, model and submodel and/or year, as in the input
    urls: list[str]  # in the input's order, repeats included


@dataclass(frozen=True)
class Problem:
    """A listing lost before any download: a malformed line, no ad_id, no images, a repeated ad_id."""

    line: int
    source_ad_id: str
    reason: str
    detail: str


@dataclass
class ListingsFile:
    listings: list[Listing]
    problems: list[Problem]
    encoding: str
    label_columns: list[str]  # the LABEL_COLUMNS the input has, in that order
    rows_in: int  # data records read, malformed ones included


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a CSV and the encoding that read it: UTF-8 (with or without BOM), else Windows-1252 (a
    superset of Latin-1's printable characters), else Latin-1, which decodes any byte."""
    try:
        return data.decode("utf-8-sig"), "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # the 5 bytes cp1252 leaves undefined
        return data.decode("latin-1"), "latin-1"


def check_url_template(template: str | None) -> None:
    """A config error at start, naming the key, rather than one unsupported_url per image."""
    if template is None:
        return
    try:
        example = template.format(ad_id="ad", image="image")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            f"scrape.url_template: '{template}' must use only {{ad_id}} and {{image}} ({type(e).__name__}: {e})"
        ) from e
    if why := unsupported_url(example):
        raise ConfigError(f"scrape.url_template: '{template}' is not an http or https URL ({why})")


def read_listings(path: str | Path, url_template: str | None = None) -> ListingsFile:
    """Reads the listings CSV. A bad record costs that listing (a `Problem` with its line), never the run; a
    missing column, or ids without a URL template, is a ConfigError naming the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"scrape.listings: {path} not found")
    text, encoding = decode_text(path.read_bytes())
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next((row for row in reader if row), None)
    if header is None:
        raise ConfigError(f"scrape.listings: {path} is empty (expected a header line)")
    columns = [c.strip().lower() for c in header]
    missing = [c for c in ("ad_id", "make", "model") if c not in columns]
    url_column = next((c for c in ("image_urls", "images") if c in columns), None)
    if missing or url_column is None:
        missing += [] if url_column else ["image_urls (or images)"]
        raise ConfigError(f"scrape.listings: {path} lacks column(s) {missing}; its header is {columns}")
    if url_column == "images" and url_template is None:
        raise ConfigError(
            f"scrape.url_template: {path} lists image ids (column `images`): set scrape.url_template, "
            "e.g. https://host/{ad_id}/{image}.jpg"
        )
    check_url_template(url_template)

    listings: list[Listing] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    rows_in, end_of_previous = 0, reader.line_num
    while True:
        start = end_of_previous + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # a stray quote in strict mode: the record is lost, the reader goes on
            rows_in += 1
            problems.append(Problem(start, "", "malformed_line", f"line {start}: {e}"))
            end_of_previous = reader.line_num
            continue
        end_of_previous = reader.line_num
        if not row:  # a blank line
            continue
        rows_in += 1
        record = dict(zip(columns, (v.strip() for v in row), strict=False))
        source_ad_id = record.get("ad_id", "")
        if len(row) != len(columns):
            detail = f"line {start}: {len(row)} fields, the header has {len(columns)}"
            problems.append(Problem(start, source_ad_id, "malformed_line", detail))
            continue
        if any("\x00" in v for v in row):
            problems.append(Problem(start, source_ad_id, "malformed_line", f"line {start}: NUL byte"))
            continue
        if not source_ad_id:
            problems.append(Problem(start, "", "missing_ad_id", f"line {start}"))
            continue
        ad_id = safe_name(source_ad_id)
        if ad_id in first_line:
            detail = f"line {start}: ad_id also on line {first_line[ad_id]}, which is kept"
            problems.append(Problem(start, source_ad_id, "repeated_ad_id", detail))
            continue
        first_line[ad_id] = start
        items = [v.strip() for v in record[url_column].split(";") if v.strip()]
        if not items:
            problems.append(Problem(start, source_ad_id, "listing_without_images", f"line {start}"))
            continue
        if url_column == "images":
            assert url_template is not None
            q = quote(source_ad_id, safe="")
            items = [url_template.format(ad_id=q, image=quote(i, safe="")) for i in items]
        labels = {c: record[c] for c in LABEL_COLUMNS if c in record}
        listings.append(Listing(start, source_ad_id, ad_id, labels, items))
    label_columns = [c for c in LABEL_COLUMNS if c in columns]
    return ListingsFile(listings, problems, encoding, label_columns, rows_in)


# --------------------------------------------------------------------------------------------------------------
# The journal: one JSON line per finished URL, so that a restart knows what is done.
# --------------------------------------------------------------------------------------------------------------


def read_journal(path: Path) -> dict[tuple[str, str], dict]:
    """(ad_id, url) -> the latest entry. A torn last line (a run killed mid-write) is ignored."""
    entries: dict[tuple[str, str], dict] = {}
    if not path.exists():
        return entries
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            e = json.loads(line)
            entries[(e["ad_id"], e["url"])] = e
        except (ValueError, KeyError, TypeError):
            continue
    return entries


class Journal:
    """Appends entries, one flushed line each: a killed process loses at most the line it was writing."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a+b")  # noqa: SIM115 (closed by close(), after the downloads)
        self._file.seek(0, 2)
        if self._file.tell() > 0:
            self._file.seek(-1, 2)
            if self._file.read(1) != b"\n":  # a torn line from a killed run: start ours on a line of its own
                self._file.write(b"\n")

    def append(self, entry: dict) -> None:
        self._file.write(json.dumps(entry, sort_keys=True).encode("utf-8") + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def journal_entry(result: Result) -> dict:
    entry = {"ad_id": result.dest_dir.name, "url": result.url, "attempts": result.attempts}
    if result.ok:
        return entry | {"file": result.file}
    return entry | {"reason": result.reason, "detail": result.detail, "transient": result.transient}


def is_finished(entry: dict | None, images: Path) -> bool:
    """Done (its file still there) or failed for good: a restart need not fetch it again."""
    if entry is None:
        return False
    if "file" in entry:
        return (images / entry["ad_id"] / entry["file"]).is_file()
    return not entry.get("transient", True)


# --------------------------------------------------------------------------------------------------------------
# The outputs, rebuilt from the input and the journal.
# --------------------------------------------------------------------------------------------------------------


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_outputs(out: Path, read: ListingsFile, journal: dict[tuple[str, str], dict]) -> dict:
    """listings.csv, failures.csv and report.json from the listings and the journal; returns the report."""
    images = out / "images"
    # make, model and submodel|year: an empty submodel when the input has neither (ingest reads either).
    label_columns = read.label_columns
    if not {"submodel", "year"} & set(label_columns):
        label_columns = [*label_columns, "submodel"]
    by_outcome: Counter[str] = Counter()
    failed_by_reason: Counter[str] = Counter()
    lost_by_reason: Counter[str] = Counter(p.reason for p in read.problems)
    failures = [(p.line, [p.source_ad_id, "", p.reason, p.detail, 0]) for p in read.problems]
    rows = []
    for listing in read.listings:
        files: list[str] = []
        seen_urls: set[str] = set()
        for url in listing.urls:
            if url in seen_urls:
                by_outcome["duplicate_url"] += 1
                continue
            seen_urls.add(url)
            e = journal.get((listing.ad_id, url))
            if e is not None and "file" in e and (images / listing.ad_id / e["file"]).is_file():
                by_outcome["duplicate_content" if e["file"] in files else "downloaded"] += 1
                if e["file"] not in files:
                    files.append(e["file"])
                continue
            # Not journaled at all only when the downloads were cut short (or its file was deleted since).
            if e is None or "file" in e:
                reason, detail, attempts = "not_downloaded", "", 0
            else:
                reason, detail, attempts = e["reason"], e["detail"], e["attempts"]
            by_outcome["failed"] += 1
            failed_by_reason[reason] += 1
            failures.append((listing.line, [listing.source_ad_id, url, reason, detail, attempts]))
        if not files:
            lost_by_reason["no_image_downloaded"] += 1
            continue
        labels = [listing.labels.get(c, "") for c in label_columns]
        rows.append([listing.ad_id, listing.source_ad_id, *labels, ";".join(files)])

    write_text(out / "listings.csv", _csv_text(["ad_id", "source_ad_id", *label_columns, "images"], rows))
    failures.sort(key=lambda f: f[0])  # input order: listing problems and URL failures interleaved by line
    write_text(out / "failures.csv", _csv_text(FAILURE_COLUMNS, [f for _, f in failures]))
    report = {
        "stage": "scrape",
        "encoding": read.encoding,
        "listings_in": read.rows_in,
        "listings_out": len(rows),
        "listings_lost_by_reason": dict(sorted(lost_by_reason.items())),
        "urls": sum(by_outcome.values()),
        "urls_by_outcome": dict(sorted(by_outcome.items())),
        "failed_by_reason": dict(sorted(failed_by_reason.items())),
        "images": by_outcome["downloaded"],
        "listing_problems": [dataclasses.asdict(p) for p in read.problems],
    }
    write_json(out / "report.json", report)
    return report


def summary(report: dict) -> str:
    fails = ", ".join(f"{k} {v}" for k, v in report["failed_by_reason"].items()) or "none"
    lost = ", ".join(f"{k} {v}" for k, v in report["listings_lost_by_reason"].items()) or "none"
    return (
        f"scrape: {report['images']} images of {report['urls']} URLs in {report['listings_out']} of "
        f"{report['listings_in']} listings ({report['encoding']}); failed: {fails}; listings lost: {lost}"
    )


def scrape(
    listings: str | Path,
    out: str | Path,
    url_template: str | None = None,
    concurrency: int = 16,
    per_host_rps: float = 4.0,
    retries: int = 3,
    timeout_s: float = 30.0,
    max_bytes: int = 50_000_000,
    *,
    backoff_s: float = BACKOFF_S,
    progress: bool = True,
) -> dict:
    """Downloads every listing's images into `out` (resuming a previous run there) and writes the outputs.

    The arguments are the `scrape` settings (see carvision.settings.ScrapeSettings); returns the report.
    """
    for key, value, low in (("concurrency", concurrency, 1), ("retries", retries, 0), ("max_bytes", max_bytes, 1)):
        if value < low:
            raise ConfigError(f"scrape.{key}: must be at least {low}, got {value}")
    if timeout_s <= 0:
        raise ConfigError(f"scrape.timeout_s: must be positive, got {timeout_s}")
    read = read_listings(listings, url_template)
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    leftovers = remove_partials(images)
    journal = read_journal(out / JOURNAL)

    keys = list(dict.fromkeys((lst.ad_id, url) for lst in read.listings for url in lst.urls))
    todo = [Job(url, images / ad_id) for ad_id, url in keys if not is_finished(journal.get((ad_id, url)), images)]
    print(f"scrape: {len(keys)} URLs; {len(keys) - len(todo)} finished before; {leftovers} partial files removed")
    log = Journal(out / JOURNAL)
    try:
        download(
            todo,
            concurrency=concurrency,
            per_host_rps=per_host_rps,
            retries=retries,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            backoff_s=backoff_s,
            on_result=lambda r: log.append(journal_entry(r)),
            progress=progress,
        )
    finally:
        log.close()
    report = write_outputs(out, read, read_journal(out / JOURNAL))
    print(summary(report))
    return report


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    return scrape(**dataclasses.asdict(s.scrape))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="the composed config (default: params.yaml)")
    main(load_params(parser.parse_args().params))
