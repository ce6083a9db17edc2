"""A classifier exported by `carvision export`, answered by onnxruntime: the `inference.Predictor` interface,
with everything read from the ONNX file's metadata (no checkpoint, no config, no torch model).

    predictor = OnnxPredictor.load("exports/make_model/model.onnx", threads=2)   # or model.int8.onnx
    probs = predictor.probs_paths(["photo.jpg"])                                 # (n, num_classes)
    predictor.top_k(probs, 5)                                                    # [[{"label", "prob"}, ...], ...]
    predictor = load_predictor("exports/make_model", runtime="onnx", int8=True)  # what `carvision serve` calls

The metadata (`metadata_props`, written by `export_metadata`, read by `read_metadata`) is also the contract with
an app on a phone: it says how to preprocess a photo and what the outputs mean, see `PREPROCESS`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from carvision.images import GREY

# The file-reading dataset of the PyTorch predictor: both runtimes read files identically (NaN rows for bad files).
from carvision.inference import Answers, ImageFiles
from carvision.preprocess import PAD_VALUE, Preprocess

FORMAT = "carvision-onnx/1"  # bump when a key changes meaning
INPUT, OUTPUT = "images", "logits"
FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
# What an app must do to a photo before the model sees it: `carvision.preprocess`, in words.
PREPROCESS = {
    "decode": f"upright (EXIF orientation applied), 8-bit sRGB, RGB channel order; transparency on grey {GREY}",
    "resize": "letterbox: scale so that the longer side is img_size (bilinear; the shorter side round(side * scale), "
    "at least 1 px), paste at ((img_size - w) // 2, (img_size - h) // 2) on an img_size square",
    "pad": f"{PAD_VALUE} (black), before normalisation",
    "normalise": "x / 255, then (x - mean) / std per channel",
    "input": f"'{INPUT}': float32, NCHW, shape (batch, 3, img_size, img_size); the batch size is free",
    "output": f"'{OUTPUT}': float32, shape (batch, num_classes), in class_names order; softmax gives probabilities",
}
REQUIRED = ("format", "task", "class_names", "img_size", "mean", "std")


class NotAnExport(ValueError):
    """The ONNX file does not carry carvision's metadata (or it cannot be read); the message says what is missing."""


def export_metadata(
    hparams: dict, *, source: str, version: str | None, weights_sha256: str, precision: str, quantization: str = ""
) -> dict[str, str]:
    """The ONNX `metadata_props` of an export: plain strings, lists and numbers as JSON.

    Args:
        hparams: the checkpoint's: task, class_names, positive_class, img_size, mean, std (and crop, when the
            checkpoint says how its images were cut).
        source: where the model came from (a checkpoint path or a models:/ URI).
        version: its registry version, None for a checkpoint file.
        weights_sha256: `inference.weights_sha256` of the PyTorch model: the registry's identity of the weights.
        precision: fp32 or int8.
        quantization: how the int8 file was made (method, format, calibration), empty for fp32.
    """
    props = {
        "format": FORMAT,
        "task": str(hparams["task"]),
        "class_names": json.dumps(list(hparams["class_names"])),
        "positive_class": json.dumps(hparams.get("positive_class")),
        "img_size": json.dumps(int(hparams["img_size"])),
        "mean": json.dumps([float(v) for v in hparams["mean"]]),
        "std": json.dumps([float(v) for v in hparams["std"]]),
        "preprocess": json.dumps(PREPROCESS),
        "source": source,
        "registry_version": version or "",
        "weights_sha256": weights_sha256,
        "precision": precision,
        "quantization": quantization,
    }
    if hparams.get("crop") is not None:  # how the training images were cut from the photo (a crop spec)
        props["crop"] = json.dumps(hparams["crop"])
    return props


def read_metadata(props: dict[str, str], where: str = "the model") -> dict:
    """`export_metadata`'s strings back as values: task, class_names, positive_class, img_size, mean, std (the
    keys `inference.Predictor` reads from a checkpoint), and source, version, weights_sha256, precision."""
    missing = [k for k in REQUIRED if k not in props]
    if missing:
        raise NotAnExport(f"{where} is not a carvision export: its metadata lacks {missing} (run carvision export)")
    if props["format"] != FORMAT:
        raise NotAnExport(f"{where}: metadata format '{props['format']}' is not {FORMAT}: re-export it")
    try:
        meta = {
            "task": props["task"],
            "class_names": list(json.loads(props["class_names"])),
            "positive_class": json.loads(props.get("positive_class", "null")),
            "img_size": int(json.loads(props["img_size"])),
            "mean": tuple(float(v) for v in json.loads(props["mean"])),
            "std": tuple(float(v) for v in json.loads(props["std"])),
            "crop": json.loads(props["crop"]) if "crop" in props else None,
        }
    except (ValueError, TypeError) as e:
        raise NotAnExport(f"{where}: unreadable metadata ({e})") from e
    if len(meta["mean"]) != 3 or len(meta["std"]) != 3 or not meta["class_names"]:
        raise NotAnExport(f"{where}: metadata needs 3 means, 3 stds and at least one class")
    if meta["positive_class"] is not None and meta["positive_class"] not in meta["class_names"]:
        raise NotAnExport(f"{where}: positive_class '{meta['positive_class']}' is not one of its classes")
    return meta | {
        "source": props.get("source", ""),
        "version": props.get("registry_version") or None,
        "weights_sha256": props.get("weights_sha256", ""),
        "precision": props.get("precision", ""),
        "quantization": props.get("quantization", ""),
    }


def session_options(threads: int | None):
    """onnxruntime options: `threads` intra-op threads (None: onnxruntime's default, one per physical core); one
    inter-op thread, since a classifier is one chain of operators and a second pool only competes for cores."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3  # errors only: a quantized graph's optimiser notes are not the user's business
    return opts


class OnnxPredictor(Answers):
    """An exported classifier in an onnxruntime session: its task, label map and preprocessing from the metadata.

    Args:
        session: the onnxruntime InferenceSession of the file.
        meta: `read_metadata` of the file.
        source: the file it was loaded from.
        batch_size: images per session run.
    """

    runtime = "onnx"

    def __init__(self, session, meta: dict, source: str, batch_size: int = 64) -> None:
        self.session, self.meta, self.source, self.batch_size = session, meta, source, batch_size
        # The checkpoint keys, as Predictor.hparams has them, for code that reads either predictor (the service
        # cuts photos by hparams["crop"]).
        keys = ("task", "class_names", "positive_class", "img_size", "mean", "std", "crop")
        self.hparams = {k: meta[k] for k in keys}
        self.preprocess = Preprocess(meta["img_size"], meta["mean"], meta["std"])
        self.task: str = meta["task"]
        self.class_names: list[str] = list(meta["class_names"])
        self.positive_class: str | None = meta["positive_class"]
        self.version: str | None = meta["version"]
        self.precision: str = meta["precision"]
        self.device = torch.device("cpu")  # where the answers (tensors) live, as for Predictor
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    @classmethod
    def load(
        cls, path: str | Path, *, threads: int | None = None, batch_size: int = 64, device: str | None = None
    ) -> OnnxPredictor:
        """From an exported file, or an export folder (`exports/<task>`: its model.onnx).

        Args:
            threads: onnxruntime intra-op threads; None: its default (one per physical core).
            device: None or cpu; cuda uses onnxruntime's CUDA provider where this onnxruntime has one.
        """
        import onnxruntime as ort

        path = Path(path)
        if path.is_dir():
            path = path / FP32_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}: run `carvision export --task <task>` first")
        providers = ["CPUExecutionProvider"]
        if device is not None and str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"device {device}: this onnxruntime has no CUDA provider (onnxruntime-gpu)")
            providers.insert(0, "CUDAExecutionProvider")
        elif device is not None and str(device) != "cpu":
            raise ValueError(f"device {device}: the ONNX runtime runs on cpu or cuda")
        try:
            session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for a bad file
            raise NotAnExport(f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:300]})") from e
        meta = read_metadata(session.get_modelmeta().custom_metadata_map, str(path))
        return cls(session, meta, str(path), batch_size)

    @property
    def positive_index(self) -> int | None:
        return None if self.positive_class is None else self.class_names.index(self.positive_class)

    def describe(self) -> dict:
        """What answered: task, source (the ONNX file), registry version, classes, and the runtime, precision and
        the model the file was exported from."""
        return {
            "task": self.task,
            "source": self.source,
            "version": self.version,
            "classes": len(self.class_names),
            "runtime": self.runtime,
            "precision": self.precision,
            "exported_from": self.meta["source"],
        }

    def _run(self, batches) -> torch.Tensor:
        out = []
        for x in batches:
            x = x.numpy() if isinstance(x, torch.Tensor) else x
            x = np.ascontiguousarray(x, dtype=np.float32)
            logits = self.session.run([self._output], {self._input: x})[0]
            # An unreadable file's input is NaN (skip_errors). Float graphs carry NaN through, but quantisation
            # turns NaN into some integer, so the row is set to NaN here: never an answer made of nothing.
            bad = np.isnan(x).any(axis=(1, 2, 3))
            if bad.any():
                logits = logits.copy()
                logits[bad] = np.nan
            out.append(torch.from_numpy(logits).float())
        return torch.cat(out) if out else torch.empty(0, len(self.class_names))

    def logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(n, num_classes) logits of decoded images (any size and mode)."""
        xs = [self.preprocess(im) for im in images]
        return self._run(torch.stack(xs[i : i + self.batch_size]) for i in range(0, len(xs), self.batch_size))

    def logits_paths(
        self,
        paths: Sequence[str | Path],
        num_workers: int = 0,
        progress: str | None = None,
        *,
        min_side: int | None = None,
        skip_errors: bool = False,
    ) -> torch.Tensor:
        """(n, num_classes) logits of image files; the arguments are `Predictor.logits_paths`'s."""
        files = ImageFiles(paths, self.preprocess, min_side, skip_errors)
        loader = DataLoader(files, batch_size=self.batch_size, num_workers=num_workers)
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc=progress, total=len(loader), unit="batch", mininterval=1.0)
        return self._run(loader)


def load_predictor(source: str | Path, runtime: str = "torch", *, int8: bool = False, **kwargs):
    """A predictor of either runtime, for the service and scripts that offer both.

    Args:
        source: torch: a checkpoint file or models:/ URI; onnx: an ONNX file, or an export folder (exports/<task>).
        runtime: torch (`inference.Predictor`) or onnx (`OnnxPredictor`).
        int8: onnx with a folder: its model.int8.onnx instead of model.onnx.
        kwargs: torch: tracking_uri, device, batch_size; onnx: threads, device, batch_size (tracking_uri is
            accepted and unused: an export needs no registry).
    """
    if runtime == "torch":
        if int8:
            raise ValueError("int8 is an ONNX export: use runtime='onnx'")
        kwargs.pop("threads", None)
        from carvision.inference import Predictor

        return Predictor.load(source, **kwargs)
    if runtime == "onnx":
        kwargs.pop("tracking_uri", None)
        path = Path(source)
        if path.is_dir():
            path = path / (INT8_FILE if int8 else FP32_FILE)
        elif int8:
            raise ValueError(f"int8=True picks {INT8_FILE} in an export folder; {source} is a file already")
        return OnnxPredictor.load(path, **kwargs)
    raise ValueError(f"runtime '{runtime}': must be torch or onnx")
