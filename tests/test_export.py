"""`carvision export` on a tiny random-weights make_model checkpoint and the session's generated split: ONNX files
with their metadata, int8 (static and dynamic), parity against PyTorch, a real sqlite MLflow registry, atomic
publishing, and the latency benchmark's smoke mode."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import onnx
import pytest
import torch
from omegaconf import OmegaConf
from timm.data import resolve_model_data_config

from carvision import cli, export, manifest, settings, tasks
from carvision.inference import Predictor, read_checkpoint, weights_sha256
from carvision.onnx_predictor import FP32_FILE, INT8_FILE, NotAnExport, OnnxPredictor, load_predictor, read_metadata
from carvision.registry import CHECKPOINT_ARTIFACT, register
from carvision.tracking import connect, file_sha256
from carvision.training.module import Classifier
from conftest import REPO, reuse_prepared

REGISTRY_NAME = "car-classifier"


def random_checkpoint(
    path: Path, task: str, class_names: list[str], img_size: int, crop: dict | None = None, seed: int = 0, **hparams
) -> Path:
    """A checkpoint as training writes it (Lightning's hyper_parameters + state_dict), with random weights."""
    torch.manual_seed(seed)
    model = Classifier(
        backbone="mobilenetv3_small_050", class_names=class_names, task=task, img_size=img_size, **hparams
    )
    data = resolve_model_data_config(model.model)
    model.hparams.mean, model.hparams.std = tuple(data["mean"]), tuple(data["std"])
    if crop is not None:  # how its training images were cut, as stages/train.py records it
        model.hparams.crop = crop
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, path)
    return path


def run_export(project: Path, *args: str) -> tuple[int, str, str]:
    """`carvision export ...` in the project folder, in this process; (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(project)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = export.main(list(args))
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def project(prepared, tmp_path_factory) -> dict:
    """A project folder (params.yaml, the session's split, its own MLflow store) whose registry holds a random
    make_model checkpoint as car-classifier@champion, exported once with --int8 from the registry."""
    root = tmp_path_factory.mktemp("export")
    cfg = reuse_prepared(prepared, root, ["export.calibration_images=32"])
    OmegaConf.save(cfg, root / "params.yaml")
    s = settings.parse(cfg)
    task = s.tasks["make_model"]
    rows = tasks.select_rows(manifest.read(tasks.manifest_path(s.paths, task)), task)
    class_names = tasks.label_map(rows, task)
    crop = tasks.crop_spec(s.crop, task).to_hparams()
    ckpt = random_checkpoint(root / "models" / "make_model" / tasks.CHECKPOINT, "make_model", class_names, 32, crop)

    # Register it as training and evaluation do: a run holding the checkpoint, a version of that run.
    client = connect(s.mlflow.tracking_uri)
    exp = client.create_experiment("export-test", artifact_location=(root / "mlartifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifact(str(ckpt), CHECKPOINT_ARTIFACT)
    reg = register(
        client,
        name=REGISTRY_NAME,
        model_uri=f"runs:/{run.info.run_id}/{CHECKPOINT_ARTIFACT}",
        run_id=run.info.run_id,
        weights_sha256=weights_sha256(read_checkpoint(ckpt)[0]),
        scores={"top1": 0.1, "top5": 0.5},
        rank_by=["top1", "top5"],
        test_sha256="t",
        tags={"task": "make_model"},
    )
    rc, out, err = run_export(root, "--task", "make_model", "--int8")
    assert rc == 0, out + err
    folder = root / "exports" / "make_model"
    test = rows[rows["split"] == "test"]
    return {
        "root": root,
        "cfg": cfg,
        "ckpt": ckpt,
        "folder": folder,
        "out": out,
        "version": reg.version,
        "run_id": run.info.run_id,
        "test_paths": test[tasks.IMAGE_COLUMN].tolist(),
        "class_names": class_names,
    }


# --- the files --------------------------------------------------------------------------------------------------


def test_export_writes_fp32_int8_and_parity(project):
    folder = project["folder"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([FP32_FILE, INT8_FILE, export.PARITY_FILE])
    assert [p.name for p in folder.parent.iterdir()] == ["make_model"]  # no staging folder left beside it
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
    m = onnx.load(str(fp32))
    onnx.checker.check_model(m)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = m.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "images" and dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    # Static int8: QDQ pairs around int8 weights.
    q = onnx.load(str(int8))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in q.graph.initializer)

    report = json.loads((folder / export.PARITY_FILE).read_text())
    assert report["passed"] is True and report["version"] == project["version"]
    assert report["test_images"] == len(project["test_paths"]) and report["unreadable_test_images"] == 0
    assert report["rows"]["onnx_fp32"]["agreement"] == 1.0
    assert report["rows"]["onnx_fp32"]["max_abs_prob_diff"] < 1e-4
    assert report["rows"]["onnx_fp32"]["top1"] == report["rows"]["pytorch"]["top1"]
    assert report["sha256"] == {FP32_FILE: file_sha256(fp32), INT8_FILE: file_sha256(int8)}
    assert report["size_mb"]["onnx_int8"] == pytest.approx(int8.stat().st_size / 1e6)
    assert report["quantization"] == ("static int8, QDQ, moving_average ranges over 32 val images, per-channel weights")
    assert [c["passed"] for c in report["checks"]] == [True, True]
    # The table printed is the report's.
    assert "| ONNX fp32 |" in project["out"] and "| ONNX int8 |" in project["out"]
    assert f"{report['rows']['pytorch']['top1']:.4f}" in project["out"]


def test_metadata_carries_everything_inference_needs(project):
    hp = read_checkpoint(project["ckpt"])[1]
    for name, precision in ((FP32_FILE, "fp32"), (INT8_FILE, "int8")):
        props = {p.key: p.value for p in onnx.load(str(project["folder"] / name)).metadata_props}
        meta = read_metadata(props)
        assert meta["task"] == "make_model" and meta["class_names"] == project["class_names"]
        assert meta["img_size"] == 32 and meta["positive_class"] is None
        assert meta["mean"] == pytest.approx(hp["mean"]) and meta["std"] == pytest.approx(hp["std"])
        assert meta["source"] == f"models:/{REGISTRY_NAME}@champion" and meta["version"] == project["version"]
        assert meta["weights_sha256"] == weights_sha256(read_checkpoint(project["ckpt"])[0])
        assert meta["precision"] == precision
        assert "letterbox" in json.loads(props["preprocess"])["resize"]
        # How photos are cut before the model sees them: the service reads it from either predictor's hparams.
        assert meta["crop"] == hp["crop"] and meta["crop"]["method"] == "boxes"
        assert OnnxPredictor.load(project["folder"] / name).hparams["crop"] == hp["crop"]


# --- the ONNX predictor -----------------------------------------------------------------------------------------


def test_onnx_predictor_gives_pytorchs_answers(project):
    paths = project["test_paths"]
    torch_p = Predictor.load(project["ckpt"], device="cpu")
    # A folder (its model.onnx), in batches of another size than PyTorch's: the same answers.
    onnx_p = OnnxPredictor.load(project["folder"], threads=1, batch_size=16)
    assert onnx_p.task == torch_p.task and onnx_p.class_names == torch_p.class_names
    assert onnx_p.positive_index is None and onnx_p.version == project["version"]
    expected = torch_p.logits_paths(paths)
    got = onnx_p.logits_paths(paths)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    probs = onnx_p.probs_paths(paths[:5])
    assert [[t["label"] for t in row] for row in onnx_p.top_k(probs, 3)] == [
        [t["label"] for t in row] for row in torch_p.top_k(torch_p.probs_paths(paths[:5]), 3)
    ]
    from carvision.preprocess import load_rgb

    images = [load_rgb(p) for p in paths[:4]]
    assert torch.allclose(onnx_p.logits(images), expected[:4], atol=1e-4)
    assert onnx_p.logits([]).shape == (0, len(project["class_names"]))
    assert onnx_p.describe() == {
        "task": "make_model",
        "source": str(project["folder"] / FP32_FILE),
        "version": project["version"],
        "classes": len(project["class_names"]),
        "runtime": "onnx",
        "precision": "fp32",
        "exported_from": f"models:/{REGISTRY_NAME}@champion",
    }


def test_int8_predictor_stays_close_and_bad_files_are_nan(project, tmp_path):
    paths = project["test_paths"][:8]
    int8 = load_predictor(project["folder"], runtime="onnx", int8=True, threads=1)
    assert int8.precision == "int8" and int8.source.endswith(INT8_FILE)
    fp32 = load_predictor(project["folder"], runtime="onnx")
    diff = (int8.probs_paths(paths) - fp32.probs_paths(paths)).abs().max()
    assert 0 < diff < 0.1  # quantised: not identical, but close
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    for p in (int8, fp32):
        logits = p.logits_paths([paths[0], bad], skip_errors=True)
        assert not logits[0].isnan().any() and logits[1].isnan().all()  # int8 too: NaN is not an int8 value
        with pytest.raises(Exception, match="not_an_image"):
            p.logits_paths([bad])


def test_load_predictor_picks_the_runtime(project):
    torch_p = load_predictor(str(project["ckpt"]), runtime="torch", device="cpu", threads=2)
    assert isinstance(torch_p, Predictor)
    assert isinstance(load_predictor(project["folder"] / FP32_FILE, runtime="onnx", tracking_uri="x"), OnnxPredictor)
    with pytest.raises(ValueError, match="runtime 'tflite'"):
        load_predictor(project["folder"], runtime="tflite")
    with pytest.raises(ValueError, match="is a file already"):
        load_predictor(project["folder"] / FP32_FILE, runtime="onnx", int8=True)


def test_onnx_predictor_refuses_what_is_not_an_export(project, tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        OnnxPredictor.load(tmp_path / "nowhere.onnx")
    with pytest.raises(FileNotFoundError):
        OnnxPredictor.load(tmp_path)  # a folder without model.onnx
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage")
    with pytest.raises(NotAnExport, match="not a readable"):
        OnnxPredictor.load(junk)
    bare = tmp_path / "bare.onnx"
    shutil.copy(project["folder"] / FP32_FILE, bare)
    export.set_metadata(bare, {"task": "make_model"})
    with pytest.raises(ValueError, match=r"not a carvision export: its metadata lacks \['format'"):
        OnnxPredictor.load(bare)
    props = {p.key: p.value for p in onnx.load(str(project["folder"] / FP32_FILE)).metadata_props}
    with pytest.raises(ValueError, match="is not one of its classes"):
        read_metadata(props | {"positive_class": '"unicorn"'})
    with pytest.raises(ValueError, match="unreadable metadata"):
        read_metadata(props | {"class_names": "[not json"})


# --- the registry -----------------------------------------------------------------------------------------------


def test_export_is_logged_to_the_models_run_and_version(project):
    client = connect(project["cfg"].mlflow.tracking_uri)
    names = sorted(a.path for a in client.list_artifacts(project["run_id"], export.ARTIFACT_PATH))
    assert names == sorted(f"export/{n}" for n in (FP32_FILE, INT8_FILE, export.PARITY_FILE))
    mv = client.get_model_version(REGISTRY_NAME, project["version"])
    folder = project["folder"]
    assert mv.tags["export.onnx_sha256"] == file_sha256(folder / FP32_FILE)
    assert mv.tags["export.int8_sha256"] == file_sha256(folder / INT8_FILE)
    report = json.loads((folder / export.PARITY_FILE).read_text())
    assert float(mv.tags["export.fp32_agreement"]) == pytest.approx(report["rows"]["onnx_fp32"]["agreement"])
    assert float(mv.tags["export.int8_top1"]) == pytest.approx(report["rows"]["onnx_int8"]["top1"], abs=1e-6)
    assert mv.tags["export.passed"] == "true"
    assert "logged to MLflow: car-classifier version" in project["out"]
    # The logged file is the exported file.
    local = client.download_artifacts(project["run_id"], f"export/{FP32_FILE}", str(folder.parent.parent / "dl"))
    assert file_sha256(local) == file_sha256(folder / FP32_FILE)
    # An fp32-only export of the same version: the version no longer claims an int8 file.
    fp32_only = {**report, "rows": {k: v for k, v in report["rows"].items() if k != "onnx_int8"}}
    tags = export.log_to_registry(
        project["cfg"].mlflow.tracking_uri, REGISTRY_NAME, project["version"], folder, fp32_only
    )
    after = client.get_model_version(REGISTRY_NAME, project["version"]).tags
    assert (
        not any(k.startswith("export.int8_") for k in after)
        and after["export.onnx_sha256"] == tags["export.onnx_sha256"]
    )


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_other_calibration_methods_quantise_too(project, tmp_path, method):
    pred = OnnxPredictor.load(project["folder"])
    batches = export.image_batches(project["test_paths"][:6], pred.preprocess, export.CALIBRATION_BATCH)
    out = tmp_path / "q.onnx"
    assert (
        export.quantize(project["folder"] / FP32_FILE, out, export.Int8Options(calibrate_method=method), batches) == 6
    )
    assert not list(tmp_path.glob("*.pre.onnx"))  # the pre-processed intermediate is not left behind
    export.set_metadata(out, {p.key: p.value for p in onnx.load(str(project["folder"] / FP32_FILE)).metadata_props})
    got = OnnxPredictor.load(out).probs_paths(project["test_paths"][:6])
    assert got.shape == (6, len(project["class_names"])) and torch.allclose(got.sum(1), torch.ones(6), atol=1e-4)


# --- other sources, dynamic int8, failures ----------------------------------------------------------------------


def test_a_checkpoint_source_with_dynamic_int8_is_exported_and_not_logged(project):
    root = project["root"]
    rc, out, err = run_export(
        root, "--task", "make_model", "--models", "models", "--quantize", "dynamic", "--out", "exports-dynamic"
    )
    assert rc == 0, out + err
    folder = root / "exports-dynamic" / "make_model"
    ops = {n.op_type for n in onnx.load(str(folder / INT8_FILE)).graph.node}
    assert "DynamicQuantizeLinear" in ops and "ConvInteger" in ops
    meta = OnnxPredictor.load(folder / INT8_FILE).meta
    assert meta["version"] is None and meta["source"] == "models/make_model/model.ckpt"
    assert meta["quantization"].startswith("dynamic int8")
    assert "not logged to MLflow: models/make_model/model.ckpt is a checkpoint file" in out
    report = json.loads((folder / export.PARITY_FILE).read_text())
    assert report["rows"]["onnx_fp32"]["agreement"] == 1.0 and "onnx_int8" in report["rows"]


def test_a_failed_bar_publishes_nothing_and_leftovers_are_swept(project, tmp_path):
    root = project["root"]
    out_dir = tmp_path / "exports"
    shutil.copytree(project["folder"], out_dir / "make_model")
    before = {p.name: p.read_bytes() for p in (out_dir / "make_model").iterdir()}
    # What a killed export leaves: a staging folder and a moved-aside old folder, of a process that is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    staged = out_dir / f".make_model.{dead.pid}.abc123.tmp"
    staged.mkdir()
    (staged / FP32_FILE).write_bytes(b"half")
    old = out_dir / f".make_model.old-{dead.pid}"
    old.mkdir()
    params = root / "strict.yaml"
    OmegaConf.save(OmegaConf.merge(project["cfg"], {"export": {"min_fp32_agreement": 1.01}}), params)

    rc, out, err = run_export(root, "--task", "make_model", "--params", str(params), "--out", str(out_dir))
    assert rc == 1, out + err
    assert "FAIL fp32 top-1 agreement with PyTorch: 1.0000 (bar >= 1.01)" in out
    assert "left as it was" in err and "--no-check" in err
    assert {p.name: p.read_bytes() for p in (out_dir / "make_model").iterdir()} == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["make_model"]  # leftovers swept, own staging removed

    # --no-check publishes it anyway (fp32 only now: the int8 file of the previous export goes with it).
    rc, out, err = run_export(
        root, "--task", "make_model", "--params", str(params), "--out", str(out_dir), "--no-check"
    )
    assert rc == 0, out + err
    assert sorted(p.name for p in (out_dir / "make_model").iterdir()) == [FP32_FILE, export.PARITY_FILE]
    assert json.loads((out_dir / "make_model" / export.PARITY_FILE).read_text())["passed"] is False


def test_a_posthoc_adjusted_model_exports_with_its_adjustment(project, tmp_path):
    """imbalance posthoc: Predictor adds -tau * log(prior) to the network's logits; the ONNX file must too."""
    names = project["class_names"]
    counts = [5 * (i + 1) ** 2 for i in range(len(names))]  # long-tailed: the shift differs per class
    ckpt = random_checkpoint(
        tmp_path / "posthoc.ckpt", "make_model", names, 32, imbalance="posthoc", class_counts=counts, seed=1
    )
    torch_p = Predictor.load(ckpt, device="cpu")
    assert torch_p.logit_adjustment is not None
    rc, out, err = run_export(project["root"], "--task", "make_model", "--source", str(ckpt), "--out", str(tmp_path))
    assert rc == 0, out + err
    paths = project["test_paths"][:16]
    expected = torch_p.logits_paths(paths)
    assert not torch.allclose(expected, torch_p.logits_paths(paths) - torch_p.logit_adjustment)  # the shift matters
    assert torch.allclose(OnnxPredictor.load(tmp_path / "make_model").logits_paths(paths), expected, atol=1e-4)
    # The weights' identity is the network's own, as the registry keeps it.
    meta = OnnxPredictor.load(tmp_path / "make_model").meta
    assert meta["weights_sha256"] == weights_sha256(read_checkpoint(ckpt)[0])


def test_bad_sources_and_tasks_exit_2_with_a_clear_message(project, tmp_path):
    root = project["root"]
    other = random_checkpoint(tmp_path / "viewpoint.ckpt", "viewpoint", ["front", "side"], 32)
    cases = [
        (["--source", "nowhere/model.ckpt"], "no make_model model at nowhere/model.ckpt"),
        (["--source", f"models:/{REGISTRY_NAME}@nope"], "holds alias 'nope'"),
        (["--source", "models:/no-such-model/3"], "no such model version"),
        (["--source", str(other)], "is a 'viewpoint' model, not make_model"),
        (["--models", str(tmp_path)], "pass --models DIR with make_model/model.ckpt inside"),
        (["--int8", "--calibration", "0"], "--calibration must be at least 1"),
    ]
    for args, message in cases:
        rc, out, err = run_export(root, "--task", "make_model", "--out", str(tmp_path / "x"), *args)
        assert rc == 2 and message in err, (args, out, err)
    rc, _, err = run_export(root, "--task", "wheels")
    assert rc == 2 and "unknown task 'wheels'" in err
    rc, _, err = run_export(tmp_path, "--task", "make_model")  # no params.yaml here
    assert rc == 2 and "no params.yaml" in err
    assert not (tmp_path / "x").exists()


def test_the_cli_dispatches_export(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["export", "--help"])
    assert e.value.code == 0 and "--quantize {static,dynamic}" in capsys.readouterr().out


# --- the benchmark ----------------------------------------------------------------------------------------------


def test_latency_benchmark_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("export_latency", REPO / "benchmarks" / "export_latency.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--smoke", "--rounds", "2", "--calls", "3", "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(results))
    assert list(results["runtimes"]) == ["PyTorch", "ONNX fp32", "ONNX int8"]
    for r in results["runtimes"].values():
        assert r["calls"] == 6 and 0 < r["p50_ms"] <= r["p99_ms"]
    assert results["runtimes"]["ONNX int8"]["file_mb"] < results["runtimes"]["ONNX fp32"]["file_mb"]
    assert results["top1_of_the_input"]["ONNX fp32"] == results["top1_of_the_input"]["PyTorch"]
    assert "| ONNX int8 |" in capsys.readouterr().out
