"""carvision predict IMAGE... [--json] [--models DIR] [--crop auto|detector|full] [--detector-weights FILE]

For each photo: the car filter's probability that it shows a car, the make/model top-5, the viewpoint, and the car's
box. Models come from the registry aliases (`models:/car-filter@champion`, ...) by default, or from a folder of
checkpoints (`--models models`, as `dvc repro` writes it: models/<task>/model.ckpt).

Each model sees the photo cut as its training images were: when the make/model model learnt from detector crops,
the crop stage's detector and box policy find the car first, and the answer carries its "box" and "box_score".

A file that cannot be used (missing, not an image, too large, broken) gets an "error" and the other files are still
answered; the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from carvision.images import ImageRejected, read_image_bytes
from carvision.recognise import DEFAULT_REGISTRY, TASKS, Options, Recogniser, exits_on_load_errors

CHUNK = 64  # photos read and held in memory at a time


@dataclass(frozen=True)
class Defaults:
    tracking_uri: str = "sqlite:///mlflow.db"
    alias: str = "champion"
    threshold: float = 0.7
    max_pixels: int = 40_000_000
    registry: tuple[tuple[str, str], ...] = tuple(DEFAULT_REGISTRY.items())


def project_defaults(params: Path = Path("params.yaml")) -> Defaults:
    """The project's own settings when run inside a carvision folder, else the built-in ones."""
    if not params.is_file():
        return Defaults()
    from carvision import settings
    from carvision.config import load_params

    s = settings.parse(load_params(params))
    names = {t: s.tasks[t].registry_name for t in TASKS if t in s.tasks}
    return Defaults(
        s.mlflow.tracking_uri,
        s.evaluate.champion_alias,
        s.filter.threshold,
        s.clean.max_pixels,
        tuple((DEFAULT_REGISTRY | names).items()),
    )


def add_arguments(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("images", nargs="+", type=Path, help="photo files")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--models", type=Path, help="folder with <task>/model.ckpt (default: the registry aliases)")
    p.add_argument("--tracking-uri", default=d.tracking_uri, help="MLflow store holding the registry")
    p.add_argument("--alias", default=d.alias, help="registry alias of each task's model")
    p.add_argument("--threshold", type=float, default=d.threshold, help="car probability below which is_car is false")
    p.add_argument("--top-k", type=int, default=5, help="make/model labels per photo")
    p.add_argument("--max-bytes", type=int, default=25_000_000, help="refuse larger files")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="refuse images with more pixels")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument(
        "--crop",
        choices=("auto", "detector", "full"),
        default="auto",
        help="auto: find the car with the detector when the models were trained on detector crops; detector: always; "
        "full: classify whole photos",
    )
    p.add_argument("--detector-weights", help="local detector weights file (offline machines)")


def load(args: argparse.Namespace, registry: dict[str, str]) -> Recogniser:
    return Recogniser.load(
        args.models,
        crop=args.crop,
        detector_weights=args.detector_weights,
        options=Options(args.threshold, args.top_k, args.max_pixels),
        device=args.device,
        registry=registry,
        alias=args.alias,
        tracking_uri=args.tracking_uri,
    )


def predict_files(paths: list[Path], rec: Recogniser, max_bytes: int) -> list[dict]:
    """One answer per path, in order: `{"path": ...}` and the predictions, or an `error` with its reason."""
    answers: list[dict] = []
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        photos, slots = [], []
        for path in chunk:
            answers.append({"path": str(path)})
            try:
                photos.append(read_image_bytes(path, max_bytes=max_bytes))
                slots.append(answers[-1])
            except ImageRejected as e:
                answers[-1]["error"] = e.reason + (f": {e.detail}" if e.detail else "")
        for slot, answer in zip(slots, rec.answer(photos), strict=True):
            slot.update(answer)
    return answers


def human(a: dict) -> str:
    """One line per file, whatever its name holds (newlines, bytes that are not UTF-8)."""
    path = a["path"].encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")
    if "error" in a:
        return f"{path}: error: {a['error']}"
    tops = ", ".join(f"{t['label']} {t['prob']:.2f}" for t in a["make_model"])
    car = "car" if a["is_car"] else "NOT a car photo"
    if a.get("car_box_note"):
        car += f" ({a['car_box_note']})"
    v = a["viewpoint"]
    box = ""
    if a.get("box") is not None:
        box = f" | box {[round(x) for x in a['box']]} ({a['box_score']:.2f})"
    return f"{path}: {car} ({a['car_prob']:.2f}) | {tops} | viewpoint {v['label']} {v['prob']:.2f}{box}"


def run(args: argparse.Namespace, registry: dict[str, str]) -> int:
    with exits_on_load_errors("carvision predict"):
        rec = load(args, registry)
    answers = predict_files(list(args.images), rec, args.max_bytes)
    for a in answers:
        # ASCII JSON: a file name that is not valid UTF-8 (surrogate escapes) still makes a valid line.
        print(json.dumps(a) if args.json else human(a))
    failed = sum("error" in a for a in answers)
    if failed:
        print(f"carvision predict: {failed} of {len(answers)} files failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    d = project_defaults()
    parser = argparse.ArgumentParser(prog="carvision predict", description=__doc__.split("\n\n", 1)[1])
    add_arguments(parser, d)
    return run(parser.parse_args(argv), dict(d.registry))


if __name__ == "__main__":
    sys.exit(main())
