"""Every way data gets in, end to end: the scrape and the three readers (scrape, folder, stanford) each make an
ingest manifest that the rest of the data pipeline accepts, and DVC runs each of them as the ingest of an experiment.

Fast part (in process, no DVC): small real inputs are built for each reader, namely a marketplace export of class
folders read with listing and class patterns, a Stanford Cars devkit with official train and test rows, and a
scrape of listings whose image URLs a local HTTP server answers. Then ingest, clean, filter (no model), crop and
split run on each, and the test checks that every manifest meets its stage's contract, that every photo reaches
the split in the expected classes, that no listing straddles two splits, that the split report counts no
leakage, and (Stanford) that the official test set stays the test split.

Slow part (`-m slow`): the same inputs go into a throw-away git + DVC copy of the project, and
`dvc exp run ingest -S data=<reader> ...` runs ingest on each. Hydra recomposes params.yaml from the overrides.
For the scrape, DVC must first run the `scrape` stage of pipelines/scrape/dvc.yaml, whose output (scrape.out) is
data.root of `data=scrape`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import hostile_tables
import numpy as np
import pandas as pd
import pytest
import yaml
from fault_server import FaultServer
from PIL import Image

from carvision import manifest
from carvision.stages import clean, crop, filter, ingest, split
from carvision.stages.scrape import scrape
from conftest import commit_project, copy_project, make_cfg, sh

LISTING_PATTERN = r"^(?P<listing>[^_]+)_\d+_"
CLASS_PATTERN = r"^(?P<make>[^_]+)_(?P<model>.+)_(?P<year>\d{4})$"
# The data stages on a few dozen photos: every class kept, one process per stage, no car filter.
FAST_STAGES = ["split.min_images_per_class=2", "filter.model=none", "clean.workers=1", "crop.workers=1"]
LEAKAGE_COUNTS = ("listings_shared", "near_duplicate_pairs_across_splits", "near_duplicate_groups_shared")
SPLITS = {"train", "val", "test"}


def noise_jpeg(seed: int) -> bytes:
    """A 96 x 72 JPEG of random noise: photos that are not near duplicates of each other, so clean keeps them all."""
    pixels = np.random.default_rng(seed).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Input:
    """One reader's raw input and what must come of it."""

    overrides: list[str]  # the Hydra overrides that make it the ingest's input (besides data.root)
    labels: set[str]  # ingest labels (`<make> <model>`)
    classes: set[str]  # split classes
    photos: int  # every photo, each distinct: all must reach the split
    listings: dict[str, int] = field(default_factory=dict)  # listing_id -> photos


# --- the inputs -------------------------------------------------------------------------------------------------


def write_folder(root: Path) -> Input:
    """An EU marketplace export: `make_model_year/<listing>_<photo no>_<uuid>.jpg`. Golf 2015 and 2017 are one
    class (years merge by default), and listing G9 was filed under both of their folders."""
    folders = {
        "mercedes-benz_viano_2010": "V",
        "land_rover_range_rover_2019": "R",  # the pattern cuts `land`; the known multi-word make puts it back
        "volkswagen_golf_2015": "G",
        "volkswagen_golf_2017": "G",
    }
    listings: dict[str, int] = {}
    seed = 0
    for f, (folder, prefix) in enumerate(folders.items()):
        for i in range(4):
            listing = f"{prefix}{f}{i}"
            for n in range(2 + i % 2):
                seed += 1
                path = root / folder / f"{listing}_{n + 1}_{seed:04x}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(noise_jpeg(seed))
                listings[listing] = listings.get(listing, 0) + 1
    for folder in ("volkswagen_golf_2015", "volkswagen_golf_2017"):  # one listing, two class folders
        seed += 1
        (root / folder / f"G9_{seed}_{seed:04x}.jpg").write_bytes(noise_jpeg(seed))
        listings["G9"] = listings.get("G9", 0) + 1
    labels = {"mercedes-benz viano", "land rover range rover", "volkswagen golf"}
    overrides = ["data=folder", f"data.listing_pattern='{LISTING_PATTERN}'", f"data.class_pattern='{CLASS_PATTERN}'"]
    return Input(overrides, labels, labels, sum(listings.values()), listings)


STANFORD = {1: "AM General Hummer SUV 2000", 2: "Acura RL Sedan 2012", 3: "Aston Martin V8 Vantage Convertible 2012"}


def write_stanford(root: Path) -> Input:
    """A Stanford Cars devkit (hostile_tables.write_stanford) of 3 classes with 5 official train and 2 official
    test photos each; its placeholder JPEGs are replaced by distinct photos with the box inside them."""
    box = (4, 4, 92, 68)  # 1-based, inclusive, inside 96 x 72
    train = [(*box, c, f"{c}{i:04d}.jpg") for c in STANFORD for i in range(5)]
    test = [(*box, c, f"{c}{i:04d}.jpg") for c in STANFORD for i in range(2)]
    hostile_tables.write_stanford(root, train, test)
    for seed, path in enumerate(sorted(root.glob("cars_*/*.jpg")), start=1000):
        path.write_bytes(noise_jpeg(seed))
    classes = set(STANFORD.values())
    labels = {c.rsplit(" ", 1)[0] for c in classes}
    return Input(["data=stanford"], labels, classes, len(train) + len(test))


SCRAPED = [("Toyota", "Corolla", "2019"), ("Ford", "Focus", "2018"), ("Škoda", "Octavia", "2015")]


def write_listings(csv_path: Path, server: FaultServer, prefix: str) -> Input:
    """A listings CSV (ad_id, make, model, year, image_urls) whose URLs the server answers with distinct photos."""
    rows, listings, seed = [], {}, 2000
    for k, (make, model, year) in enumerate(SCRAPED):
        for i in range(4):
            ad_id, urls = f"AD{k}{i}", []
            for n in range(2 + i % 2):
                seed += 1
                urls.append(server.add(f"/{prefix}/{ad_id}/{n}.jpg", noise_jpeg(seed)))
            rows.append([ad_id, make, model, year, ";".join(urls)])
            listings[ad_id] = len(urls)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ad_id", "make", "model", "year", "image_urls"])
        w.writerows(rows)
    labels = {f"{make} {model}" for make, model, _ in SCRAPED}
    return Input(["data=scrape"], labels, labels, sum(listings.values()), listings)


@pytest.fixture(scope="module")
def server():
    with FaultServer() as s:
        yield s


# --- fast: the data stages in process ---------------------------------------------------------------------------


def run_data_stages(tmp: Path, given: Input, data_root: Path) -> tuple[pd.DataFrame, dict]:
    """ingest -> clean -> filter -> crop -> split under `tmp`; checks every manifest against its stage's contract
    and returns the split manifest and the split report."""
    cfg = make_cfg(tmp / "out", [*given.overrides, *FAST_STAGES], data_root=data_root)
    for stage in (ingest, clean, filter, crop, split):
        stage.main(cfg)
    for name in ("ingest", "clean", "filter", "crop"):
        manifest.read(Path(cfg.paths[name]) / "manifest.parquet", stage=name)
    df = manifest.read(Path(cfg.paths.split) / "manifest.parquet", stage="split")
    report = json.loads((Path(cfg.paths.reports) / "split" / "report.json").read_text())
    return df, report


def check_split(df: pd.DataFrame, report: dict, given: Input) -> None:
    assert len(df) == given.photos, f"{given.photos - len(df)} photos lost: {report['dropped_by_reason']}"
    assert set(df["class_name"]) == given.classes
    assert set(df["label"]) == given.labels
    assert set(df["split"]) == SPLITS
    assert df.groupby("listing_id")["split"].nunique().max() == 1, "a listing straddles two splits"
    if given.listings:
        assert df["listing_id"].value_counts().to_dict() == given.listings
    assert {k: report["leakage"][k] for k in LEAKAGE_COUNTS} == dict.fromkeys(LEAKAGE_COUNTS, 0)
    assert report["classes"] == len(given.classes)


def test_a_marketplace_folder_export_goes_through_the_data_stages(tmp_path: Path):
    given = write_folder(tmp_path / "folder")
    df, report = run_data_stages(tmp_path, given, tmp_path / "folder")
    check_split(df, report, given)
    g9 = df[df["listing_id"] == "G9"]
    assert len(g9) == 2 and set(g9["class_name"]) == {"volkswagen golf"}  # one listing across two year folders
    assert report["class_policy"]["merge_years"] is True


def test_a_stanford_devkit_goes_through_the_data_stages_keeping_its_test_set(tmp_path: Path):
    given = write_stanford(tmp_path / "stanford")
    df, report = run_data_stages(tmp_path, given, tmp_path / "stanford")
    check_split(df, report, given)
    # The official test rows are the test split, whole; val is carved from the official train rows.
    assert (df.loc[df["source_split"] == "test", "split"] == "test").all()
    assert (df.loc[df["split"] == "test", "source_split"] == "test").all()
    assert report["official_split"]["official"] is True
    assert report["official_split"]["official_test_rows"] == 6
    assert report["class_policy"]["merge_years"] is False


def test_a_scrape_goes_through_the_data_stages(tmp_path: Path, server: FaultServer):
    listings = tmp_path / "listings-urls.csv"
    given = write_listings(listings, server, "fast")
    report = scrape(listings, tmp_path / "scrape", concurrency=4, per_host_rps=0.0, progress=False)
    assert report["images"] == given.photos and report["failed_by_reason"] == {}
    df, split_report = run_data_stages(tmp_path, given, tmp_path / "scrape")
    check_split(df, split_report, given)


# --- slow: DVC runs each reader as the ingest of an experiment --------------------------------------------------


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory, server: FaultServer) -> tuple[Path, dict[str, Input]]:
    """A git + DVC copy of the project with each reader's raw input committed under raw/."""
    root = copy_project(tmp_path_factory.mktemp("dvc") / "project")
    inputs = {
        "folder": write_folder(root / "raw" / "folder"),
        "stanford": write_stanford(root / "raw" / "stanford"),
        "scrape": write_listings(root / "raw" / "listings-urls.csv", server, "dvc"),
    }
    commit_project(root)
    return root, inputs


# The experiment's settings per reader (inputs under raw/; the scrape's data.root is scrape.out, data/raw/scrape).
EXPERIMENTS = {
    "folder": ["data.root=raw/folder"],
    "stanford": ["data.root=raw/stanford"],
    "scrape": ["scrape.listings=raw/listings-urls.csv", "scrape.per_host_rps=0"],
}
SCRAPE_STAGE = "Running stage 'pipelines/scrape/dvc.yaml:scrape'"


@pytest.mark.slow
@pytest.mark.parametrize("reader", list(EXPERIMENTS))
def test_dvc_exp_run_ingests_each_reader(dvc_repo: tuple[Path, dict[str, Input]], reader: str):
    repo, inputs = dvc_repo
    given = inputs[reader]
    overrides = [*given.overrides, *EXPERIMENTS[reader]]
    out = sh(["dvc", "exp", "run", "ingest", *(a for o in overrides for a in ("-S", o))], repo)
    assert "Running stage 'ingest'" in out, out
    assert "Running stage 'sample'" not in out  # ingest reads the experiment's data, not the generated sample
    if reader == "scrape":
        assert SCRAPE_STAGE in out, out
        assert out.index(SCRAPE_STAGE) < out.index("Running stage 'ingest'")
    else:
        assert SCRAPE_STAGE not in out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["source"] == reader
    df = manifest.read(repo / "data" / "ingest" / "manifest.parquet", stage="ingest")
    assert len(df) == given.photos
    assert set(df["label"]) == given.labels
    if given.listings:
        assert df["listing_id"].value_counts().to_dict() == given.listings
    if reader == "stanford":
        assert df["source_split"].value_counts().to_dict() == {"train": 15, "test": 6}
