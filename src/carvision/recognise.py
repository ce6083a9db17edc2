"""Answer for photos: is it a car photo, which make/model, which viewpoint, and where the car is.

    rec = Recogniser.load("models")                       # models/<task>/model.ckpt, or None: the registry aliases
    rec.answer([photo_bytes, ...])                        # one dict per photo, the `carvision predict --json` object

Each model is fed the photo cut the way its training images were cut (`carvision.cropping`, with the crop settings
its checkpoint carries): the car filter sees the whole photo, the make/model and viewpoint models see the car crop.
Where they were trained on crops, the car is found by the crop stage's own detector and box policy
(`carvision.detection.run.CarFinder`), so the box at prediction time is made as the box at training time was.

`carvision predict` and the service both answer through this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from carvision.cropping import CropSpec, cut, margin_box
from carvision.images import ImageRejected

TASKS = ("car_filter", "make_model", "viewpoint")
BOX_TASKS = ("make_model", "viewpoint")  # the tasks whose models may have learnt from car crops
# Used when no params.yaml is at hand (outside a carvision project folder); conf/tasks/ declares the same names.
DEFAULT_REGISTRY = {"car_filter": "car-filter", "make_model": "car-classifier", "viewpoint": "car-viewpoint"}
CropMode = Literal["auto", "detector", "full"]


class ModelsUnavailable(RuntimeError):
    """A task's model cannot be loaded; the message says how to get one."""


@dataclass(frozen=True)
class Options:
    """How to answer. threshold: car probability below which `is_car` is false; top_k: make/model labels per
    photo; max_pixels: larger photos are refused before decoding (decompression bombs)."""

    threshold: float = 0.7
    top_k: int = 5
    max_pixels: int = 40_000_000


def load_models(
    models: Path | None,
    *,
    registry: dict[str, str] | None = None,
    alias: str = "champion",
    tracking_uri: str = "sqlite:///mlflow.db",
    device: str | None = None,
    loader: Callable[..., Any] | None = None,
    filename: str = "model.ckpt",
) -> dict[str, Any]:
    """One predictor per task, checked to be the task it is loaded for: from `models/<task>/<filename>` when
    `models` is given, else from the registry (`models:/<registry name>@<alias>`).

    Args:
        loader: `(source, tracking_uri=..., device=...) -> predictor`; default `carvision.inference.Predictor.load`.
        filename: the file in each task's folder: model.ckpt, or model.onnx with an ONNX loader.
    """
    if loader is None:
        from carvision.inference import Predictor

        loader = Predictor.load
    registry = DEFAULT_REGISTRY | (registry or {})
    out = {}
    for task in TASKS:
        source = str(models / task / filename) if models is not None else f"models:/{registry[task]}@{alias}"
        try:
            p = loader(source, tracking_uri=tracking_uri, device=device)
        except (FileNotFoundError, LookupError) as e:
            raise ModelsUnavailable(
                f"no {task} model ({e}). Run `make demo` (or `dvc repro`) so that the registry holds one, "
                f"or pass a models folder (--models DIR) with {task}/{filename} inside."
            ) from e
        if p.task != task:
            raise ModelsUnavailable(f"{source} is a '{p.task}' model, not {task}")
        out[task] = p
    return out


def detector_settings(specs: dict[str, CropSpec], crop: CropMode) -> dict[str, Any] | None:
    """The `crop.detector` settings to find cars with, or None to answer from whole photos.

    auto: the detector when a model was trained on detector crops, with the settings it was trained with.
    detector: always; with those settings, else the defaults (a model trained on annotation boxes is then served
    the detector's box, the nearest thing to an annotation box that an unlabelled photo has).
    full: never.
    """
    if crop not in ("auto", "detector", "full"):
        raise ValueError(f"crop must be auto, detector or full, not '{crop}'")
    if crop == "full":
        return None
    recorded = [specs[t].detector for t in BOX_TASKS if t in specs and specs[t].method == "detector"]
    if recorded:
        return dict(recorded[0])
    if crop == "auto":
        return None
    from carvision.settings import DetectorSettings

    return dataclasses.asdict(DetectorSettings())


class Recogniser:
    """The three task models and, when used, the car finder: photo bytes in, answers out.

    Args:
        models: task -> predictor (`carvision.inference.Predictor`, or one with its interface).
        finder: a `CarFinder` to find the car's box, or None to give the box-trained models whole photos.
        options: threshold, top-k and the pixel limit.
    """

    def __init__(self, models: dict[str, Any], finder=None, options: Options = Options()) -> None:
        missing = [t for t in TASKS if t not in models]
        if missing:
            raise ValueError(f"models for {missing} are missing")
        self.models, self.finder, self.options = models, finder, options
        self.specs = {t: CropSpec.from_hparams(getattr(m, "hparams", {}) or {}) for t, m in models.items()}

    @classmethod
    def load(
        cls,
        models: Path | None = None,
        *,
        crop: CropMode = "auto",
        detector_weights: str | None = None,
        options: Options = Options(),
        device: str | None = None,
        **load_kwargs,
    ) -> Recogniser:
        """Loads the task models (see `load_models`) and, when their crop calls for it, the detector.

        Args:
            crop: auto | detector | full (see `detector_settings`).
            detector_weights: a local detector weights file, replacing the one the checkpoint names (the training
                machine's path rarely exists where the model is served); None: as recorded, else torchvision's hub.
        """
        predictors = load_models(models, device=device, **load_kwargs)
        specs = {t: CropSpec.from_hparams(getattr(m, "hparams", {}) or {}) for t, m in predictors.items()}
        d = detector_settings(specs, crop)
        finder = None
        if d is not None:
            from carvision.detection.run import CarFinder, DetectorRun, policy_from_settings

            if detector_weights is not None:
                d["weights_file"] = detector_weights
            finder = CarFinder(DetectorRun.from_settings(d), policy_from_settings(d), device)
        return cls(predictors, finder, options)

    def describe(self) -> dict:
        """What answers: each task's model (source, registry version, classes) and the crop it is fed."""
        out = {t: m.describe() | {"crop": self.specs[t].method} for t, m in self.models.items()}
        if self.finder is not None:
            out["detector"] = {"name": self.finder.run.name, "weights_file": self.finder.run.weights_file}
        return out

    def answer(self, photos: Sequence[bytes]) -> list[dict]:
        """One answer per photo, in order: the predictions, or `{"error": reason}` for a photo that cannot be used.

        An answer holds car_prob, is_car, make_model (top-k labels with probabilities), viewpoint, crop ("detector"
        when the car models saw the detector's crop, else "full"), box ([x_min, y_min, x_max, y_max] in upright
        full-resolution px, or None), box_score and, when the detector found no usable car, car_box_note
        (no_car_found or partial_car: `is_car` is then false, as the crop stage would have dropped the photo).
        """
        o = self.options
        answers: list[dict] = [{} for _ in photos]
        decisions = self.finder.decide(photos, max_pixels=o.max_pixels) if self.finder else [None] * len(photos)
        inputs: dict[str, list] = {t: [] for t in TASKS}
        ok: list[int] = []
        for i, data in enumerate(photos):
            decision = decisions[i]
            try:
                if isinstance(decision, ImageRejected):
                    raise decision
                images = self._inputs(data, decision)
            except ImageRejected as e:
                answers[i] = {"error": e.reason + (f": {e.detail}" if e.detail else "")}
                continue
            for t in TASKS:
                inputs[t].append(images[t])
            ok.append(i)
            answers[i].update(self._box_fields(decision))
        if not ok:
            return answers
        f, make, view = self.models["car_filter"], self.models["make_model"], self.models["viewpoint"]
        car = f.probs(inputs["car_filter"])[:, f.positive_index].tolist()
        tops = make.top_k(make.probs(inputs["make_model"]), o.top_k)
        views = view.top_k(view.probs(inputs["viewpoint"]), 1)
        for i, c, t, v in zip(ok, car, tops, views, strict=True):
            a = answers[i]
            found = a.pop("_found")
            answers[i] = {"car_prob": round(c, 6), "is_car": bool(c >= o.threshold and found)} | a
            answers[i].update(make_model=t, viewpoint=v[0])
        return answers

    def _inputs(self, data: bytes, decision) -> dict[str, Any]:
        """Each task's input image: the photo cut as its model's training images were (cuts shared between tasks
        that were cut alike). Raises ImageRejected."""
        made: dict[tuple, Any] = {}
        out = {}
        box_found = decision is not None and decision.kept and decision.detected_box is not None
        for t in TASKS:
            spec = self.specs[t]
            box = None
            if spec.wants_box and box_found:
                box, _ = margin_box(decision.detected_box, *decision.size, spec.margin, spec.min_box_side)
            key = (box, spec.max_side)
            if key not in made:
                size = decision.size if box else None
                made[key] = cut(data, box, size, spec.max_side, max_pixels=self.options.max_pixels)
            out[t] = made[key]
        return out

    def _box_fields(self, decision) -> dict:
        if decision is None:
            return {"crop": "full", "box": None, "box_score": None, "_found": True}
        fields = {
            "crop": "detector" if decision.kept and decision.detected_box is not None else "full",
            "box": None if decision.detected_box is None else [round(v, 1) for v in decision.detected_box],
            "box_score": None if decision.score is None else round(decision.score, 4),
            "size": list(decision.size),
            "_found": decision.kept,
        }
        if decision.reason:
            fields["car_box_note"] = decision.reason
        return fields


@contextmanager
def exits_on_load_errors(prog: str) -> Iterator[None]:
    """Turns what stops the models from loading into one line on stderr and exit status 1 (SystemExit with a
    message), for the command-line tools: no model, no detector weights offline, a device that is not here."""
    from carvision.detection.detector import DetectorUnavailable

    try:
        yield
    except ModelsUnavailable as e:
        raise SystemExit(f"{prog}: {e}") from e
    except DetectorUnavailable as e:
        raise SystemExit(f"{prog}: {e} Here: pass --detector-weights FILE.") from e
    except ValueError as e:  # a device that is not here (--device cuda without CUDA, or without onnxruntime's)
        raise SystemExit(f"{prog}: {e}") from e
