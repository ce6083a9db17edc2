"""The API of a real `carvision serve` process (the console script, models from the registry) over HTTP on
127.0.0.1: good photos get the library's answers, mixed requests get per-photo errors, and the page and health
check are served. The settings merge (params.yaml, then flags) is checked in this process."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from omegaconf import OmegaConf

from carvision import serve
from carvision.settings import ServeSettings
from conftest import REPO

from .live_server import MAX_FILES, MAX_PIXELS, MAX_UPLOAD_BYTES

GOOD = ["good0.jpg", "good1.jpg", "good2.jpg", "good3.jpg"]


def post(url: str, files: list[tuple[str, bytes]], **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", files=[("files", f) for f in files], timeout=60, **kwargs)


def assert_same_answer(got: dict, expected: dict) -> None:
    """The service's answer is the library's: same fields, labels and boxes; probabilities to float noise."""
    assert set(got) == set(expected)
    assert got["is_car"] == expected["is_car"] and got["crop"] == expected["crop"] and got["box"] == expected["box"]
    assert got["car_prob"] == pytest.approx(expected["car_prob"], abs=2e-6)
    assert [t["label"] for t in got["make_model"]] == [t["label"] for t in expected["make_model"]]
    assert [t["prob"] for t in got["make_model"]] == pytest.approx(
        [t["prob"] for t in expected["make_model"]], abs=2e-6
    )
    assert got["viewpoint"]["label"] == expected["viewpoint"]["label"]
    assert got["viewpoint"]["prob"] == pytest.approx(expected["viewpoint"]["prob"], abs=2e-6)


@pytest.mark.usefixtures("cli_server_launch")  # the server boots while these run in this process
def test_settings_come_from_params_yaml_and_flags_override_them(tmp_path):
    params = tmp_path / "params.yaml"
    cfg = OmegaConf.load(REPO / "params.yaml")
    cfg.serve.port, cfg.serve.max_files, cfg.serve.runtime = 9123, 3, "onnx"
    cfg.mlflow.tracking_uri = "sqlite:///elsewhere.db"
    OmegaConf.save(cfg, params)
    s, args = serve.parse_args(["--max-files", "7", "--int8"], params)
    assert (s.port, s.max_files, s.runtime, s.int8, s.host) == (9123, 7, "onnx", True, "127.0.0.1")
    assert args.tracking_uri == "sqlite:///elsewhere.db" and args.exports == cfg.export.out
    s, _ = serve.parse_args([], tmp_path / "absent.yaml")  # outside a project: the built-in defaults
    assert s == ServeSettings()
    assert (s.max_upload_bytes, s.max_pixels) > (MAX_UPLOAD_BYTES, MAX_PIXELS)  # the tests' server is stricter


@pytest.mark.usefixtures("cli_server_launch")  # the server boots while these run in this process
def test_a_folder_without_models_exits_before_listening_and_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        serve.main(["--models", str(tmp_path), "--port", "0"])
    assert "no car_filter model" in str(e.value.code) and "car_filter/model.ckpt" in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        serve.main(["--models", str(tmp_path), "--runtime", "onnx", "--port", "0"])
    assert "car_filter/model.onnx" in str(e.value.code)
    with pytest.raises(SystemExit, match="--int8 is an ONNX export"):
        serve.main(["--models", str(tmp_path), "--int8"])


@pytest.mark.slow  # three ONNX exports: 5-17 s on 2 shared cores; the default run checks the onnx loader's wiring
def test_the_onnx_runtime_loads_exports_and_answers_as_torch_does(trained_tasks, recogniser, photos, tmp_path):
    """`--runtime onnx` on a folder of <task>/model.onnx files, as `carvision export` writes them."""
    from carvision.export import export_fp32
    from carvision.inference import read_checkpoint, weights_sha256
    from carvision.onnx_predictor import export_metadata

    for task in ("car_filter", "make_model", "viewpoint"):
        source = Path(trained_tasks.paths.models) / task / "model.ckpt"
        net, hp = read_checkpoint(source)
        meta = export_metadata(
            hp, source=str(source), version=None, weights_sha256=weights_sha256(net), precision="fp32"
        )
        (tmp_path / task).mkdir()
        export_fp32(net, hp["img_size"], tmp_path / task / "model.onnx", 17, meta)
    s, args = serve.parse_args(["--runtime", "onnx", "--models", str(tmp_path), "--threads", "1"], tmp_path / "no.yaml")
    rec = serve.load_recogniser(s, args)
    assert {m["runtime"] for t, m in rec.describe().items()} == {"onnx"}
    assert rec.specs == recogniser.specs  # each model's photos cut as its checkpoint's training images were
    data = [photos[n] for n in GOOD]
    for got, expected in zip(rec.answer(data), recogniser.answer(data), strict=True):
        assert [t["label"] for t in got["make_model"]] == [t["label"] for t in expected["make_model"]]
        assert got["car_prob"] == pytest.approx(expected["car_prob"], abs=1e-4)
        assert got["viewpoint"]["label"] == expected["viewpoint"]["label"]


def test_good_photos_get_the_librarys_answers_in_order(cli_server, photos, recogniser):
    data = [photos[n] for n in GOOD]
    r = post(cli_server.url, [(n, photos[n], "image/jpeg") for n in GOOD])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"results", "models"}
    expected = recogniser.answer(data)
    assert len(body["results"]) == len(GOOD)
    for got, exp in zip(body["results"], expected, strict=True):
        assert "error" not in exp
        assert_same_answer(got, exp)
        assert len(got["make_model"]) == 5
    # One photo per request gives the same answers as several in one: batching does not change them.
    single = post(cli_server.url, [("x.jpg", photos["good3.jpg"], "image/jpeg")]).json()["results"][0]
    assert_same_answer(single, expected[3])


def test_the_models_that_answered_are_the_registrys_champions(cli_server, photos):
    models = post(cli_server.url, [("a.jpg", photos["good0.jpg"], "image/jpeg")]).json()["models"]
    for task, name in [("car_filter", "car-filter"), ("make_model", "car-classifier"), ("viewpoint", "car-viewpoint")]:
        assert models[task]["task"] == task
        assert models[task]["source"] == f"models:/{name}@champion"
        assert models[task]["version"] == "1"


def test_health_says_the_models_are_loaded(cli_server):
    r = httpx.get(f"{cli_server.url}/healthz")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["models_loaded"] is True
    assert set(h["models"]) == {"car_filter", "make_model", "viewpoint"}
    assert h["queue"]["max_concurrent"] == ServeSettings().max_concurrent  # the default, no flag given
    assert {"batches", "photos", "requests", "photos_per_batch"} <= set(h["batching"])


def test_a_request_with_good_and_bad_photos_answers_each_in_its_place(cli_server, photos):
    names = ["good0.jpg", "text.jpg", "truncated.jpg", "bomb.png"]
    assert len(names) <= MAX_FILES
    r = post(cli_server.url, [(n, photos[n], "image/jpeg") for n in names])
    assert r.status_code == 200, r.text
    good, text, truncated, bomb = r.json()["results"]
    assert good["make_model"] and "error" not in good
    assert text["error"] | {"message": ""} == {"code": "not_an_image", "status": 415, "message": ""}
    assert truncated["error"]["code"] == "truncated_image" and truncated["error"]["status"] == 422
    assert bomb["error"]["code"] == "too_many_pixels" and bomb["error"]["status"] == 413
    assert "20000x20000" in bomb["error"]["message"]


def test_a_request_whose_photos_all_fail_fails_with_the_first_ones_status(cli_server, photos):
    r = post(cli_server.url, [("t.jpg", photos["truncated.jpg"], "image/jpeg"), ("x.jpg", photos["text.jpg"], "")])
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["code"] == "truncated_image" and "none of the 2 files" in body["error"]["message"]
    assert [x["error"]["code"] for x in body["results"]] == ["truncated_image", "not_an_image"]


def test_the_page_and_its_assets_are_served_with_nothing_from_elsewhere(cli_server):
    page = httpx.get(cli_server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/static/app.js", "/static/style.css"]
    for text in [page.text, *(httpx.get(cli_server.url + a).text for a in assets)]:
        assert not re.search(r"(?:src|href|url\()\s*=?\s*[\"']?(?:https?:)?//", text)  # no CDN, no other origin
    assert 'id="file"' in page.text and 'role="alert"' in page.text
