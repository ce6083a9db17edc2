"""carvision export --task make_model [--int8] [--quantize static|dynamic] [--source URI|CKPT] [--models DIR]
                 [--out exports] [--calibration N] [--no-check] [--params params.yaml]

Exports one task's model to ONNX for phones and onnxruntime, and measures that it still gives the same answers:

- `exports/<task>/model.onnx`: fp32, opset `export.opset`, input `images` (batch, 3, size, size) with a free batch
  size, output `logits`; the label map, the preprocessing, the source and the weights' hash in its metadata
  (`carvision.onnx_predictor.export_metadata`), so that `OnnxPredictor` (and an app) needs nothing else.
- with `--int8`, `model.int8.onnx`: onnxruntime's static quantisation (QDQ, per-channel weights), its activation
  ranges calibrated on up to `--calibration` images of the task's val split; `--quantize dynamic` instead.
- `parity.json`, printed as a table: on the task's test split, top-1 of PyTorch, fp32 and int8 against the labels,
  top-1 agreement with PyTorch, the largest probability difference, file sizes (MB = 10^6 bytes).

The folder is built beside `exports/<task>` and swapped in whole: a killed export leaves the previous one, and the
next run removes the leftovers. It is published only when the bars hold (`export.min_fp32_agreement`,
`export.max_int8_top1_drop`); otherwise nothing changes and the exit code is 1 (`--no-check` publishes anyway).
Source errors exit with 2.

The model comes from the registry (`models:/<registry_name>@<alias>`, the task's champion) by default, `--models DIR`
takes DIR/<task>/model.ckpt, `--source` names either. A registry version gets the files and parity.json in its run's
artifacts (`export/`) and `export.*` tags; a checkpoint file is not in the registry, so nothing is logged.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from carvision import manifest, settings, tasks
from carvision.atomic import atomic_dir
from carvision.images import ImageRejected
from carvision.inference import Predictor, weights_sha256
from carvision.onnx_predictor import FP32_FILE, INPUT, INT8_FILE, OUTPUT, OnnxPredictor, export_metadata
from carvision.preprocess import Preprocess, load_rgb
from carvision.safe_names import safe_name
from carvision.settings import ExportSettings, Settings, TaskSettings
from carvision.tracking import file_sha256

PARITY_FILE = "parity.json"
ARTIFACT_PATH = "export"  # the run artifact folder of the exported files
CHUNK = 128  # test images decoded and held at a time (each answered by every runtime before the next chunk)
# Images per calibration run: one, so that a moving-average range weighs every image alike, and because
# onnxruntime's histogram calibration (percentile) needs batches of one size.
CALIBRATION_BATCH = 1


class ExportError(Exception):
    """A source, task or data problem the user must fix; the message says what."""


@dataclass(frozen=True)
class Int8Options:
    """How the int8 file is made (ExportSettings' fields, with the command line's overrides)."""

    method: str = "static"  # static | dynamic
    calibration_images: int = 256
    calibrate_method: str = "moving_average"
    per_channel: bool = True
    seed: int = 0

    def describe(self, n_calibration: int | None = None) -> str:
        if self.method == "dynamic":
            return f"dynamic int8 (weights int8, activations quantised per input){self._channel()}"
        return (
            f"static int8, QDQ, {self.calibrate_method} ranges over {n_calibration} val images{self._channel()}"
            if n_calibration is not None
            else f"static int8, QDQ, {self.calibrate_method}{self._channel()}"
        )

    def _channel(self) -> str:
        return ", per-channel weights" if self.per_channel else ", per-tensor weights"


# --- the ONNX files ---------------------------------------------------------------------------------------------


def export_fp32(model: torch.nn.Module, img_size: int, path: Path, opset: int, metadata: dict[str, str]) -> None:
    """Writes `model` ((batch, 3, img_size, img_size) -> (batch, classes) logits) as ONNX with `metadata`."""
    import onnx

    # A CPU copy in the default memory layout: the graph gets plain NCHW weights whatever layout the model ran in.
    net = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()
    # Two images, so that nothing specialises on a batch of 1; the batch axis is declared free anyway.
    example = torch.zeros(2, 3, img_size, img_size)
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) and not torch.export's: on timm CNNs on the CPU it takes ~2 s where
        # the dynamo exporter takes ~9 s (mobilenetv3_small_050), writes one self-contained file (the dynamo one
        # splits weights into a .onnx.data file by default), folds BatchNorm into the convolutions, and gives the
        # plain Conv/Gemm graph that onnxruntime's quantisation tooling expects. torch 2.9+ marks it deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            do_constant_folding=True,
        )
    set_metadata(path, metadata)
    onnx.checker.check_model(str(path))


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Replaces the ONNX file's metadata_props with `metadata` (the quantiser's own notes are dropped)."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in metadata.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over preprocessed image batches."""

    def __init__(self, batches: Iterator[np.ndarray]) -> None:
        self.batches, self.seen = batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self.batches, None)
        if x is None:
            return None
        self.seen += len(x)
        return {INPUT: x}


def image_batches(paths: Sequence[str | Path], preprocess: Preprocess, batch: int) -> Iterator[np.ndarray]:
    """(batch, 3, size, size) float32 model inputs of the readable files among `paths`, preprocessed as
    inference does (`carvision.preprocess`); unreadable files are skipped."""
    xs = []
    for p in paths:
        try:
            xs.append(preprocess(load_rgb(p)).numpy())
        except ImageRejected:
            continue
        if len(xs) == batch:
            yield np.stack(xs)
            xs = []
    if xs:
        yield np.stack(xs)


def quantize(fp32: Path, out: Path, options: Int8Options, calibration: Iterator[np.ndarray] | None = None) -> int:
    """Writes the int8 model of `fp32` to `out`; returns how many images calibrated it (0 for dynamic).

    Static: the activation ranges come from running the fp32 model on the `calibration` batches ((n, 3, size,
    size) float32 model inputs), QDQ format (QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into int8
    kernels, and that phone runtimes read).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    pre = out.with_name(out.stem + ".pre.onnx")
    # onnxruntime's recommended pre-processing: graph optimisation (fusions) and shape inference, so that the
    # quantiser sees the fused graph it will run. The symbolic shape inference is skipped: ~5 s on a small CNN, and
    # ONNX's own shape inference types every tensor of a fixed-size image model.
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    try:
        if options.method == "dynamic":
            quantize_dynamic(str(pre), str(out), per_channel=options.per_channel, weight_type=QuantType.QInt8)
            return 0
        batches = iter(calibration or ())
        first = next(batches, None)
        if first is None:
            raise ExportError("no calibration image could be read")
        reader = _Batches(itertools.chain([first], batches))
        method, extra = {
            # Each activation's range is the mean over the calibration images of its per-image min and max, so a
            # rare extreme image clips instead of stretching the range of every image: on the demo's viewpoint model
            # the plain min/max over all images lost 4 to 10 points of test top-1, the moving average none
            # (docs/export.md).
            "moving_average": (CalibrationMethod.MinMax, {"CalibMovingAverage": True}),
            "minmax": (CalibrationMethod.MinMax, {}),
            "percentile": (CalibrationMethod.Percentile, {"CalibPercentile": 99.99}),
        }[options.calibrate_method]
        quantize_static(
            str(pre),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=options.per_channel,
            # uint8 activations with a zero point, int8 weights (U8S8): onnxruntime's fast int8 convolutions on x86
            # and ARM take this pair. With int8 activations (S8S8) the same graph ran 4 to 6 times slower on this
            # machine's CPU (AVX-512 VNNI): 0.99 ms against 0.26 ms for the demo's 64 px model, 123 ms against 45 ms
            # for efficientnet_b2 at 288 px. Asymmetric ranges suit activations after a ReLU or hard-swish (nearly
            # all positive); with symmetric ones the demo's viewpoint model agreed with PyTorch less often.
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            extra_options=extra,
        )
        return reader.seen
    finally:
        pre.unlink(missing_ok=True)


# --- parity -----------------------------------------------------------------------------------------------------


def _chunks(seq: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def parity(
    reference: Predictor, exported: dict[str, OnnxPredictor], paths: Sequence[str | Path], targets: Sequence[int]
) -> dict:
    """How the exported models answer the images at `paths` next to the PyTorch model.

    Every image is decoded once and preprocessed by each predictor itself, so the exported metadata's
    preprocessing is under test too. A target of -1 (a label the model does not know) counts as an error.

    Returns {"images", "unreadable", "rows": {"pytorch" | name: {"top1", "agreement", "max_abs_prob_diff"}}}.
    """
    preds: dict[str, list[torch.Tensor]] = {"pytorch": [], **{k: [] for k in exported}}
    diffs = dict.fromkeys(exported, 0.0)
    kept, unreadable = [], 0
    for chunk in _chunks(list(zip(paths, targets, strict=True)), CHUNK):
        images = []
        for path, target in chunk:
            try:
                images.append(load_rgb(path))
                kept.append(target)
            except ImageRejected:
                unreadable += 1
        if not images:
            continue
        ref = reference.probs(images)
        preds["pytorch"].append(ref.argmax(1))
        for name, p in exported.items():
            probs = p.probs(images)
            preds[name].append(probs.argmax(1))
            diffs[name] = max(diffs[name], float((probs - ref).abs().max()))
    if not kept:
        raise ExportError("no test image could be read")
    y = torch.tensor(kept)
    top = {k: torch.cat(v) for k, v in preds.items()}
    rows = {}
    for name, pred in top.items():
        rows[name] = {
            "top1": float((pred == y).float().mean()),
            "agreement": float((pred == top["pytorch"]).float().mean()),
            "max_abs_prob_diff": 0.0 if name == "pytorch" else diffs[name],
        }
    return {"images": len(kept), "unreadable": unreadable, "rows": rows}


def checks(result: dict, bars: ExportSettings) -> list[dict]:
    """The issue's bars on a parity result: fp32 agrees with PyTorch, int8 loses at most a point of top-1."""
    rows = result["rows"]
    out = [
        {
            "check": "fp32 top-1 agreement with PyTorch",
            "value": rows["onnx_fp32"]["agreement"],
            "bar": f">= {bars.min_fp32_agreement}",
            "passed": rows["onnx_fp32"]["agreement"] >= bars.min_fp32_agreement,
        }
    ]
    if "onnx_int8" in rows:
        drop = rows["pytorch"]["top1"] - rows["onnx_int8"]["top1"]
        out.append(
            {
                "check": "int8 top-1 drop against PyTorch",
                "value": drop,
                "bar": f"<= {bars.max_int8_top1_drop}",
                # A hair of tolerance: top-1 is a ratio of counts, and 1 point must pass at exactly 1 point.
                "passed": drop <= bars.max_int8_top1_drop + 1e-9,
            }
        )
    return out


def table(report: dict) -> str:
    """parity.json as a short markdown table, with the checks below it."""
    names = {"pytorch": "PyTorch", "onnx_fp32": "ONNX fp32", "onnx_int8": "ONNX int8"}
    lines = [
        f"{report['task']} from {report['source']}"
        + (f" (version {report['version']})" if report["version"] else "")
        + f": {report['test_images']} test images"
        + (f" ({report['unreadable_test_images']} unreadable, left out)" if report["unreadable_test_images"] else ""),
        "",
        "| model | top-1 | top-1 agreement with PyTorch | max abs prob diff | size MB |",
        "|---|---|---|---|---|",
    ]
    for key, row in report["rows"].items():
        size = f"{report['size_mb'][key]:.2f}" + (" (weights)" if key == "pytorch" else "")
        diff = "-" if key == "pytorch" else f"{row['max_abs_prob_diff']:.2e}"
        agree = "-" if key == "pytorch" else f"{row['agreement']:.4f}"
        lines.append(f"| {names[key]} | {row['top1']:.4f} | {agree} | {diff} | {size} |")
    if report.get("quantization"):
        lines.append(f"\nint8: {report['quantization']}")
    for c in report["checks"]:
        lines.append(f"{'ok  ' if c['passed'] else 'FAIL'} {c['check']}: {c['value']:.4f} (bar {c['bar']})")
    return "\n".join(lines)


# --- data -------------------------------------------------------------------------------------------------------


def split_rows(s: Settings, task: TaskSettings, split: str) -> pd.DataFrame:
    """The task's labelled rows of one split of its split manifest (as training and evaluation select them)."""
    path = tasks.manifest_path(s.paths, task)
    try:
        rows = tasks.select_rows(manifest.read(path, stage="split"), task)
    except FileNotFoundError as e:
        raise ExportError(f"{e} (export calibrates and checks on the task's data: run inside the project)") from e
    rows = rows[rows["split"] == split]
    if rows.empty:
        raise ExportError(f"task {task.name}: {path} has no labelled {split} rows")
    return rows


def targets_of(rows: pd.DataFrame, task: TaskSettings, class_names: list[str]) -> list[int]:
    """Each row's class index; -1 for a label the model was not trained on (it then counts as an error)."""
    index = {c: i for i, c in enumerate(class_names)}
    return [index.get(v, -1) for v in rows[task.label_column].astype(str)]


# --- the registry -----------------------------------------------------------------------------------------------


def log_to_registry(tracking_uri: str, registry_name: str, version: str, folder: Path, report: dict) -> dict:
    """Logs the exported files and parity.json into the run of model version `version` (`export/`), and tags the
    version with the files' hashes and the parity figures. Returns the tags."""
    from carvision.tracking import connect

    client = connect(tracking_uri)
    mv = client.get_model_version(registry_name, version)
    client.log_artifacts(mv.run_id, str(folder), artifact_path=ARTIFACT_PATH)
    rows = report["rows"]
    tags = {
        "export.time": report["time"],
        "export.onnx_sha256": report["sha256"][FP32_FILE],
        "export.onnx_mb": f"{report['size_mb']['onnx_fp32']:.3f}",
        "export.fp32_agreement": f"{rows['onnx_fp32']['agreement']:.6f}",
        "export.fp32_top1": f"{rows['onnx_fp32']['top1']:.6f}",
        "export.pytorch_top1": f"{rows['pytorch']['top1']:.6f}",
        "export.test_images": str(report["test_images"]),
        "export.passed": str(report["passed"]).lower(),
    }
    if "onnx_int8" in rows:
        tags |= {
            "export.int8_sha256": report["sha256"][INT8_FILE],
            "export.int8_mb": f"{report['size_mb']['onnx_int8']:.3f}",
            "export.int8_top1": f"{rows['onnx_int8']['top1']:.6f}",
            "export.int8_agreement": f"{rows['onnx_int8']['agreement']:.6f}",
            "export.int8_quantization": report["quantization"],
        }
    for key, value in tags.items():
        client.set_model_version_tag(registry_name, version, key, value)
    # An fp32-only export after an int8 one: the version's int8 tags described files that are no longer current.
    for key in set(mv.tags) - set(tags):
        if key.startswith("export.int8_"):
            client.delete_model_version_tag(registry_name, version, key)
    return tags


# --- the command ------------------------------------------------------------------------------------------------


def default_source(s: Settings, task: TaskSettings, models: Path | None) -> str:
    if models is not None:
        return str(tasks.model_dir(models, task) / tasks.CHECKPOINT)
    return f"models:/{task.registry_name}@{s.evaluate.champion_alias}"


def load_source(source: str, tracking_uri: str, task: TaskSettings) -> Predictor:
    try:
        predictor = Predictor.load(source, tracking_uri=tracking_uri, device="cpu")
    except (FileNotFoundError, LookupError, ValueError) as e:
        raise ExportError(
            f"no {task.name} model at {source} ({e}). Run `make demo` (or `dvc repro`) so that the registry holds "
            f"one, or pass --models DIR with {task.name}/model.ckpt inside, or --source path/to/model.ckpt."
        ) from e
    if predictor.task != task.name:
        raise ExportError(f"{source} is a '{predictor.task}' model, not {task.name}")
    return predictor


def export(
    s: Settings,
    task: TaskSettings,
    source: str,
    out: Path,
    int8: Int8Options | None,
    check: bool = True,
) -> tuple[dict, bool]:
    """Exports the model at `source` into `out/<task>/`; returns (the parity report, whether it was published)."""
    bars = s.export
    predictor = load_source(source, s.mlflow.tracking_uri, task)
    test = split_rows(s, task, "test")
    calibration: list[str] = []
    if int8 is not None and int8.method == "static":
        val = split_rows(s, task, "val")
        n = min(int8.calibration_images, len(val))
        calibration = val.sample(n=n, random_state=int8.seed)[tasks.IMAGE_COLUMN].tolist()
    sha = weights_sha256(predictor.model)
    meta = dict(source=source, version=predictor.version, weights_sha256=sha)
    target = out / safe_name(task.name)
    t0 = time.perf_counter()
    published = False
    try:
        with atomic_dir(target) as staging:
            fp32 = staging / FP32_FILE
            fp32_meta = export_metadata(predictor.hparams, precision="fp32", **meta)
            # The network whose outputs are Predictor.logits(): with a post-hoc logit adjustment (imbalance posthoc)
            # it is folded into the graph, so the file answers as the Predictor does. The weights' hash stays the
            # model's own, the registry's identity.
            network = predictor.served_network()
            export_fp32(network, predictor.preprocess.size, fp32, bars.opset, fp32_meta)
            exported = {"onnx_fp32": OnnxPredictor.load(fp32)}
            quantization = ""
            if int8 is not None:
                q = staging / INT8_FILE
                batches = image_batches(calibration, predictor.preprocess, CALIBRATION_BATCH)
                n_cal = quantize(fp32, q, int8, batches)
                quantization = int8.describe(n_cal if int8.method == "static" else None)
                set_metadata(q, export_metadata(predictor.hparams, precision="int8", quantization=quantization, **meta))
                exported["onnx_int8"] = OnnxPredictor.load(q)
            result = parity(
                predictor, exported, test[tasks.IMAGE_COLUMN].tolist(), targets_of(test, task, predictor.class_names)
            )
            files = {FP32_FILE: fp32} | ({INT8_FILE: staging / INT8_FILE} if int8 is not None else {})
            report = {
                "task": task.name,
                "source": source,
                "version": predictor.version,
                "weights_sha256": sha,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "test_images": result["images"],
                "unreadable_test_images": result["unreadable"],
                "quantization": quantization,
                "rows": result["rows"],
                # MB = 10^6 bytes; PyTorch's is its weights' bytes (fp32), the files carry little else.
                "size_mb": {
                    "pytorch": sum(t.numel() * t.element_size() for t in predictor.model.state_dict().values()) / 1e6,
                    **{k: f.stat().st_size / 1e6 for k, f in zip(exported, files.values(), strict=True)},
                },
                "sha256": {name: file_sha256(f) for name, f in files.items()},
                "export_seconds": round(time.perf_counter() - t0, 2),
            }
            report["checks"] = checks(result, bars)
            report["passed"] = all(c["passed"] for c in report["checks"])
            (staging / PARITY_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            if check and not report["passed"]:
                raise _Rejected(report)
        published = True
    except _Rejected as r:
        report = r.report
    return report, published


class _Rejected(Exception):
    """Raised inside the staging folder so that a failed check publishes nothing."""

    def __init__(self, report: dict) -> None:
        super().__init__("parity check failed")
        self.report = report


def parse_args(argv: list[str] | None, defaults: ExportSettings) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="carvision export",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True, help="the task whose model to export (make_model, viewpoint, car_filter)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx")
    p.add_argument(
        "--quantize",
        choices=["static", "dynamic"],
        default=None,
        help=f"int8 method (implies --int8); default {defaults.quantize}",
    )
    p.add_argument("--source", help="models:/<name>@<alias>, models:/<name>/<version> or a model.ckpt")
    p.add_argument("--models", type=Path, help="folder with <task>/model.ckpt (default: the registry's champion)")
    p.add_argument("--out", type=Path, default=None, help=f"exports folder (default {defaults.out})")
    p.add_argument(
        "--calibration",
        type=int,
        default=None,
        help=f"val images that calibrate static int8 (default {defaults.calibration_images})",
    )
    p.add_argument("--no-check", action="store_true", help="publish even when a parity bar fails")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the project's params.yaml")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from carvision.config import load_params

    params = argv_params(argv)
    s = settings.parse(load_params(params)) if params.is_file() else None
    args = parse_args(argv, s.export if s is not None else ExportSettings())
    if s is None:
        print(f"carvision export: no {params}: run it in a carvision project folder, or pass --params", file=sys.stderr)
        return 2
    try:
        task = settings.task_named(s, args.task)
    except settings.ConfigError as e:
        print(f"carvision export: {e}", file=sys.stderr)
        return 2
    e = s.export
    if args.calibration is not None and args.calibration < 1:
        print("carvision export: --calibration must be at least 1", file=sys.stderr)
        return 2
    int8 = None
    if args.int8 or args.quantize:
        method = args.quantize or e.quantize
        n = args.calibration or e.calibration_images
        int8 = Int8Options(method, n, e.calibrate_method, e.per_channel, s.seed)
    source = args.source or default_source(s, task, args.models)
    out = args.out or Path(e.out)
    try:
        report, published = export(s, task, source, out, int8, check=not args.no_check)
    except ExportError as err:
        print(f"carvision export: {err}", file=sys.stderr)
        return 2
    print(table(report))
    folder = out / safe_name(task.name)
    if not published:
        print(
            f"carvision export: a parity bar failed, so {folder} was left as it was. Re-run with --no-check to "
            "publish these files anyway.",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {', '.join(sorted(p.name for p in folder.iterdir()))} to {folder}")
    if report["version"] is None:
        print(f"not logged to MLflow: {source} is a checkpoint file, not a registry version")
    else:
        from mlflow.exceptions import MlflowException

        name = registered_name(source)
        try:
            log_to_registry(s.mlflow.tracking_uri, name, report["version"], folder, report)
        except (MlflowException, OSError) as err:  # the files are published; only the record is missing
            print(f"carvision export: {folder} is written, but logging it to MLflow failed: {err}", file=sys.stderr)
            return 1
        print(f"logged to MLflow: {name} version {report['version']} (run artifacts {ARTIFACT_PATH}/, tags export.*)")
    return 0


def registered_name(uri: str) -> str:
    """The registered model's name in models:/<name>@<alias> or models:/<name>/<version>."""
    return uri.removeprefix("models:/").split("@")[0].split("/")[0]


def argv_params(argv: list[str] | None) -> Path:
    """--params from the command line before the full parse (the other defaults come from that file)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    return p.parse_known_args(argv)[0].params


if __name__ == "__main__":
    sys.exit(main())
