"""`carvision predict`, the installed console script, run as a user runs it: on good photos and on every kind of bad
file, from a folder of checkpoints and from the registry, and with no model at all."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from carvision import cli, predict
from carvision.cropping import CropSpec, cut
from carvision.inference import Predictor

VIEWPOINTS = {"front", "front-side", "side", "back-side", "back"}
MAX_BYTES = 200_000  # the photos are a few kB; big.jpg is more than this
MAX_PIXELS = 4_000_000  # the photos are 128x96 at most; huge.png is 2500x2500
ODD_NAME = "my car é ☃ (1).jpg"
NON_UTF8_NAME = os.fsdecode(b"scan \xff\xfe.jpg")  # bytes that are not UTF-8, as an old camera or Windows zip writes
# name -> the reason the file is refused
BAD = {
    "text.jpg": "not_an_image",
    "page.jpg": "not_an_image",
    "empty.jpg": "empty_file",
    "truncated.jpg": "truncated_image",
    "missing.jpg": "missing_file",
    "folder.jpg": "not_a_file",
    "big.jpg": "file_too_large",
    "huge.png": "too_many_pixels",
}


def carvision_script() -> str:
    script = Path(sys.executable).parent / "carvision"
    assert script.is_file(), f"the console script is not installed beside {sys.executable}: pip install -e ."
    return str(script)


def make_photos(cfg, folder: Path) -> tuple[list[str], list[str]]:
    """(good photo names, every input name in command-line order) under `folder`, which becomes the cwd."""
    crops = pd.read_parquet(Path(cfg.paths.crop) / "manifest.parquet")
    good = []
    for i, src in enumerate([*crops["crop_path"].head(3), crops["path"].iloc[0]]):  # 3 crops and 1 whole photo
        good.append(f"good{i}.jpg")
        shutil.copyfile(src, folder / good[-1])
    shutil.copyfile(folder / "good0.jpg", folder / ODD_NAME)
    shutil.copyfile(folder / "good1.jpg", folder / NON_UTF8_NAME)
    whole = (folder / "good3.jpg").read_bytes()

    (folder / "text.jpg").write_text("this is not a photo\n")
    (folder / "page.jpg").write_text("<!doctype html><html><body>403 Forbidden</body></html>")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "folder.jpg").mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "big.jpg", quality=95)
    assert (folder / "big.jpg").stat().st_size > MAX_BYTES
    Image.new("L", (2500, 2500)).save(folder / "huge.png")  # few bytes, many pixels
    assert (folder / "huge.png").stat().st_size < MAX_BYTES

    order = ["good0.jpg", "text.jpg", "good1.jpg", ODD_NAME, *list(BAD)[1:], NON_UTF8_NAME, "good2.jpg", "good3.jpg"]
    return [*good, ODD_NAME, NON_UTF8_NAME], order


@pytest.fixture(scope="module")
def photos(trained_tasks, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("predict")  # no params.yaml here: the built-in defaults apply
    good, order = make_photos(trained_tasks, folder)
    return {"folder": folder, "good": good, "order": order}


@pytest.fixture(scope="module")
def runs(trained_tasks, photos) -> dict:
    """The installed console script run once as a user runs it, on every input, with models from --models.

    Only this run is a subprocess: starting one costs ~15 s of imports, so the other ways of calling it run
    `carvision.cli.main`, the console script's entry point, in this process."""
    limits = [f"--max-bytes={MAX_BYTES}", f"--max-pixels={MAX_PIXELS}"]
    # A fixed output encoding, so that the test does not depend on the locale it runs in.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:surrogateescape"}
    args = [*photos["order"], "--json", "--models", trained_tasks.paths.models, *limits]
    p = subprocess.run(
        [carvision_script(), "predict", *args], cwd=photos["folder"], env=env, capture_output=True, timeout=300
    )
    return {**photos, "json": (p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))}


def json_answers(runs) -> list[dict]:
    rc, stdout, stderr = runs["json"]
    return [json.loads(line) for line in stdout.decode("utf-8", "surrogateescape").splitlines()]


def test_json_gives_one_answer_per_input_in_order(runs):
    rc, _, stderr = runs["json"]
    answers = json_answers(runs)
    assert [a["path"] for a in answers] == runs["order"], stderr
    assert rc == 1  # some files failed
    assert f"{len(BAD)} of {len(runs['order'])} files failed" in stderr


def test_good_photos_get_every_prediction(runs, trained_tasks):
    labels = json.loads((Path(trained_tasks.paths.models) / "make_model" / "labels.json").read_text())
    good = [a for a in json_answers(runs) if a["path"] in runs["good"]]
    assert len(good) == len(runs["good"])
    for a in good:
        assert "error" not in a
        assert 0 <= a["car_prob"] <= 1
        assert isinstance(a["is_car"], bool) and a["is_car"] == (a["car_prob"] >= 0.7)  # the default threshold
        top = a["make_model"]
        assert len(top) == 5 and all(set(t) == {"label", "prob"} for t in top)
        assert [t["prob"] for t in top] == sorted((t["prob"] for t in top), reverse=True)
        assert {t["label"] for t in top} <= set(labels) and sum(t["prob"] for t in top) <= 1 + 1e-5
        assert set(a["viewpoint"]) == {"label", "prob"} and a["viewpoint"]["label"] in VIEWPOINTS
    # A copy of a photo under an odd name gets the same answer as the photo.
    by_path = {a["path"]: a for a in good}
    assert {**by_path[ODD_NAME], "path": ""} == {**by_path["good0.jpg"], "path": ""}
    assert {**by_path[NON_UTF8_NAME], "path": ""} == {**by_path["good1.jpg"], "path": ""}


def test_answers_are_the_models_answers(runs, trained_tasks):
    # The script wires each task's model and class to the right field, and feeds each model the photo cut as its
    # training images were: compare with the library in this process.
    models = Path(trained_tasks.paths.models)
    data = (runs["folder"] / "good3.jpg").read_bytes()
    (a,) = [a for a in json_answers(runs) if a["path"] == "good3.jpg"]
    # The sample's models learnt from annotation boxes, which an unlabelled photo lacks, and no detector was asked
    # for: every model sees the whole photo, shrunk as the crop stage shrinks it.
    assert (a["crop"], a["box"], a["box_score"]) == ("full", None, None)

    def answer(task: str, k: int):
        p = Predictor.load(models / task / "model.ckpt", device="cpu")
        spec = CropSpec.from_hparams(p.hparams)
        assert spec.max_side == trained_tasks.crop.max_side
        return p, p.probs([cut(data, None, None, spec.max_side, max_pixels=MAX_PIXELS)])

    car, probs = answer("car_filter", 1)
    assert CropSpec.from_hparams(car.hparams).method == "full"  # the filter set is cropped whole
    assert a["car_prob"] == pytest.approx(float(probs[0, car.positive_index]), abs=2e-6)
    make, probs = answer("make_model", 5)
    assert CropSpec.from_hparams(make.hparams).method == trained_tasks.crop.method
    assert [t["label"] for t in a["make_model"]] == [t["label"] for t in make.top_k(probs)[0]]
    view, probs = answer("viewpoint", 1)
    assert a["viewpoint"]["label"] == view.top_k(probs, 1)[0][0]["label"]


def test_bad_files_get_an_error_with_the_reason_and_no_predictions(runs):
    bad = {a["path"]: a for a in json_answers(runs) if a["path"] in BAD}
    assert set(bad) == set(BAD)
    for name, reason in BAD.items():
        assert set(bad[name]) == {"path", "error"}, name  # no prediction, no box
        assert isinstance(bad[name]["error"], str) and bad[name]["error"].startswith(reason), (name, bad[name])
    assert str(MAX_BYTES) in bad["big.jpg"]["error"]
    assert "2500x2500" in bad["huge.png"]["error"]


def test_human_output_from_the_registry_has_one_line_per_file_and_exit_code_0(runs, trained_tasks, monkeypatch, capsys):
    monkeypatch.chdir(runs["folder"])
    good = [name for name in runs["good"] if name != NON_UTF8_NAME]  # that one has its own test below
    rc = cli.main(["predict", *good, "--tracking-uri", trained_tasks.mlflow.tracking_uri])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "failed" not in err
    lines = out.splitlines()
    assert len(lines) == len(good)
    # The registry's champions are the checkpoints of --models: the same answers, in the human format.
    expected = {a["path"]: predict.human(a) for a in json_answers(runs)}
    assert lines == [expected[name] for name in good]
    assert all(" | viewpoint " in line for line in lines)


def test_no_model_anywhere_exits_non_zero_naming_both_ways_out(photos, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(photos["folder"])
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", "good0.jpg", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"])
    # A string code: Python prints it to stderr and exits with status 1, without a traceback.
    message = e.value.code
    assert isinstance(message, str)
    assert "no car_filter model" in message
    assert "make demo" in message and "--models" in message
    assert capsys.readouterr().out == ""  # nothing answered with a model that is not there


def test_a_folder_without_checkpoints_exits_non_zero(photos, monkeypatch, tmp_path):
    monkeypatch.chdir(photos["folder"])
    with pytest.raises(SystemExit, match=r"no car_filter model \(no model checkpoint at .*car_filter/model\.ckpt"):
        cli.main(["predict", "good0.jpg", "--models", str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_on_a_machine_without_it_exits_with_a_message_not_a_traceback(photos, trained_tasks, monkeypatch):
    monkeypatch.chdir(photos["folder"])
    models = str(Path(trained_tasks.paths.models))
    with pytest.raises(SystemExit, match="device cuda: torch sees no CUDA device on this machine; use cpu"):
        cli.main(["predict", "good0.jpg", "--models", models, "--device", "cuda"])


def test_a_checkpoint_of_the_wrong_task_is_refused(photos, trained_tasks, monkeypatch, tmp_path):
    # models/car_filter/model.ckpt that holds the viewpoint model: a mix-up that would answer nonsense.
    models = Path(trained_tasks.paths.models)
    for task in ("car_filter", "make_model", "viewpoint"):
        (tmp_path / task).mkdir()
        shutil.copyfile(models / task / "model.ckpt", tmp_path / task / "model.ckpt")
    shutil.copyfile(models / "viewpoint" / "model.ckpt", tmp_path / "car_filter" / "model.ckpt")
    monkeypatch.chdir(photos["folder"])
    with pytest.raises(SystemExit, match="is a 'viewpoint' model, not car_filter"):
        cli.main(["predict", "good0.jpg", "--models", str(tmp_path)])


def test_an_error_line_is_human_readable():
    assert predict.human({"path": "x.jpg", "error": "empty_file"}) == "x.jpg: error: empty_file"


@pytest.mark.parametrize("mode", [["--json"], []])
def test_a_file_name_that_is_not_utf8_is_answered_in_valid_utf8(runs, trained_tasks, monkeypatch, mode):
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.chdir(runs["folder"])
    rc = predict.main([NON_UTF8_NAME, "good0.jpg", *mode, "--models", trained_tasks.paths.models])
    stdout.flush()
    lines = stdout.buffer.getvalue().decode("utf-8").splitlines()
    assert rc == 0 and len(lines) == 2
    if mode:  # JSON can carry the exact name back (as \udcff escapes, which os.fsencode turns into the bytes)
        assert os.fsencode(json.loads(lines[0])["path"]) == os.fsencode(NON_UTF8_NAME)
