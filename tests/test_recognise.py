"""One crop for training and serving (carvision.recognise): models trained on detector crops are answered with the
crop stage's own detector, policy and cut, and `carvision predict` returns the box."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from red_box_detector import SCORE, car_photo, use_red_box_detector

from carvision import cli
from carvision.cropping import CropSpec, cut, margin_box
from carvision.inference import Predictor
from carvision.recognise import Recogniser, detector_settings
from carvision.settings import DetectorSettings

W, H = 800, 600  # px, upright
CAR = (430, 150, 750, 390)  # a 320x240 car: 16% of the photo
FAR = (5, 5, 100, 75)  # 1.4%: under min_box_fraction 0.1, a partial car
MAX_PIXELS = 40_000_000


def detector_trained(models: Path, out: Path, detector: dict, margin: float = 0.1) -> Path:
    """A copy of `models` whose make_model and viewpoint checkpoints say they learnt from detector crops."""
    shutil.copytree(models, out)
    for task in ("make_model", "viewpoint"):
        path = out / task / "model.ckpt"
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["hyper_parameters"]["crop"] = CropSpec("detector", margin, 96, 12, detector).to_hparams()
        torch.save(ckpt, path)
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recognise")
    car_photo(folder / "car.jpg", (W, H), CAR, orientation=6)  # stored turned: the box must come back upright
    car_photo(folder / "far.jpg", (W, H), FAR)
    car_photo(folder / "none.jpg", (W, H), None)
    (folder / "broken.jpg").write_bytes((folder / "car.jpg").read_bytes()[:3000])
    return folder


def predict_json(argv: list[str], capsys) -> tuple[int, dict[str, dict]]:
    rc = cli.main(["predict", *argv, "--json"])
    lines = capsys.readouterr().out.splitlines()
    return rc, {Path(a["path"]).name: a for a in map(json.loads, lines)}


def test_predict_finds_the_car_as_the_crop_stage_does_and_returns_the_box(
    trained_tasks, photos, tmp_path, monkeypatch, capsys
):
    use_red_box_detector(monkeypatch)
    detector = dataclasses.asdict(DetectorSettings(min_box_fraction=0.1))
    models = detector_trained(Path(trained_tasks.paths.models), tmp_path / "models", detector)
    names = ["car.jpg", "far.jpg", "none.jpg", "broken.jpg"]
    rc, a = predict_json([*(str(photos / n) for n in names), "--models", str(models)], capsys)
    assert rc == 1  # broken.jpg

    car = a["car.jpg"]
    assert car["crop"] == "detector" and car["box_score"] == pytest.approx(SCORE)
    assert car["box"] == pytest.approx(CAR, abs=3)  # upright full-resolution px, whatever the EXIF rotation
    assert car["size"] == [W, H] and "car_box_note" not in car
    # The make/model model was fed the crop stage's cut of that box, with its checkpoint's margin and size.
    data = (photos / "car.jpg").read_bytes()
    box, _ = margin_box(car["box"], W, H, 0.1, 12)
    make = Predictor.load(models / "make_model" / "model.ckpt", device="cpu")
    probs = make.probs([cut(data, box, (W, H), 96, max_pixels=MAX_PIXELS)])
    expected = make.top_k(probs)[0]
    assert [t["label"] for t in car["make_model"]] == [t["label"] for t in expected]
    assert [t["prob"] for t in car["make_model"]] == pytest.approx([t["prob"] for t in expected], abs=2e-6)
    # ... and the car filter, trained on whole photos, the whole photo.
    f = Predictor.load(models / "car_filter" / "model.ckpt", device="cpu")
    whole = f.probs([cut(data, None, None, CropSpec.from_hparams(f.hparams).max_side, max_pixels=MAX_PIXELS)])
    assert car["car_prob"] == pytest.approx(float(whole[0, f.positive_index]), abs=2e-6)

    # Photos the crop stage would have dropped are answered, but not as car photos, and say why.
    far, none = a["far.jpg"], a["none.jpg"]
    assert far["car_box_note"] == "partial_car" and far["is_car"] is False and far["crop"] == "full"
    assert far["box"] == pytest.approx(FAR, abs=3)
    assert none["car_box_note"] == "no_car_found" and none["is_car"] is False and none["box"] is None
    assert set(a["broken.jpg"]) == {"path", "error"} and a["broken.jpg"]["error"].startswith("truncated_image")


def test_a_real_detector_from_a_weights_file_answers_every_photo(trained_tasks, photos, tmp_path, capsys):
    """A randomly initialised torchvision detector saved to a file (nothing downloaded), asked for with --crop
    detector on models trained on annotation boxes: every photo gets a box inside it, or none, never a crash."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.manual_seed(0)
    weights = tmp_path / "detector.pt"
    torch.save(fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).state_dict(), weights)
    models = Path(trained_tasks.paths.models)
    argv = [str(photos / "car.jpg"), str(photos / "none.jpg"), "--models", str(models)]
    rc, a = predict_json([*argv, "--crop", "detector", "--detector-weights", str(weights)], capsys)
    assert rc == 0
    for answer in a.values():
        assert {"box", "box_score", "crop", "size"} <= set(answer)
        if answer["box"] is not None:
            x0, y0, x1, y1 = answer["box"]
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H and 0 <= answer["box_score"] <= 1


def test_without_weights_offline_predict_names_both_ways_out(trained_tasks, photos, tmp_path, monkeypatch):
    import urllib.error

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", unreachable)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    argv = ["predict", str(photos / "car.jpg"), "--models", trained_tasks.paths.models, "--crop", "detector"]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert "--detector-weights" in str(e.value.code) and "hub" in str(e.value.code)


def test_the_detector_runs_when_a_model_learnt_from_its_crops():
    d = dataclasses.asdict(DetectorSettings(min_score=0.3))
    full, boxes, det = CropSpec("full"), CropSpec("boxes", 0.05, 128), CropSpec("detector", 0.05, 128, 12, d)
    trained_on_boxes = {"car_filter": full, "make_model": boxes, "viewpoint": boxes}
    assert detector_settings(trained_on_boxes, "auto") is None
    assert detector_settings(trained_on_boxes, "full") is None
    assert detector_settings(trained_on_boxes, "detector") == dataclasses.asdict(DetectorSettings())
    trained_on_detector = {"car_filter": full, "make_model": det, "viewpoint": det}
    assert detector_settings(trained_on_detector, "auto") == d  # the settings it was trained with
    assert detector_settings(trained_on_detector, "full") is None
    with pytest.raises(ValueError, match="auto, detector or full"):
        detector_settings(trained_on_boxes, "yes")


def test_a_checkpoint_from_before_crops_were_recorded_is_answered_whole():
    assert CropSpec.from_hparams({"task": "make_model"}) == CropSpec()
    assert not CropSpec().wants_box
    with pytest.raises(ValueError, match="crop.method 'magic'"):
        CropSpec.from_hparams({"crop": {"method": "magic"}})


def test_models_must_cover_every_task():
    with pytest.raises(ValueError, match="car_filter"):
        Recogniser({"make_model": object(), "viewpoint": object()})
