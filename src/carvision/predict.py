"""carvision predict IMAGE... [--json] [--models DIR]

For each photo: the car filter's probability that it shows a car, the make/model top-5 and the viewpoint.
Models come from the registry aliases (`models:/car-filter@champion`, ...) by default, or from a folder of
checkpoints (`--models models`, as `dvc repro` writes it: models/<task>/model.ckpt).

A file that cannot be used (missing, not an image, too large, broken) gets an "error" and the other files are still
answered; the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from carvision.images import ImageRejected, decode_rgb, read_image_bytes
from carvision.inference import Predictor

TASKS = ("car_filter", "make_model", "viewpoint")
# Used when no params.yaml is at hand (outside a carvision project folder); conf/tasks/ declares the same names.
DEFAULT_REGISTRY = {"car_filter": "car-filter", "make_model": "car-classifier", "viewpoint": "car-viewpoint"}
CHUNK = 64  # images decoded and held in memory at a time


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


def load_models(args: argparse.Namespace, registry: dict[str, str]) -> dict[str, Predictor]:
    """One predictor per task, checked to be the task it is loaded for."""
    out = {}
    for task in TASKS:
        if args.models is not None:
            source = str(args.models / task / "model.ckpt")
        else:
            source = f"models:/{registry[task]}@{args.alias}"
        try:
            p = Predictor.load(source, tracking_uri=args.tracking_uri, device=args.device)
        except (FileNotFoundError, LookupError) as e:
            raise SystemExit(
                f"carvision predict: no {task} model ({e}). Run `make demo` (or `dvc repro`) so that the registry "
                f"holds one, or pass --models DIR with {task}/model.ckpt inside."
            ) from e
        if p.task != task:
            raise SystemExit(f"carvision predict: {source} is a '{p.task}' model, not {task}")
        out[task] = p
    return out


def read_photo(path: Path, max_bytes: int, max_pixels: int):
    """The decoded upright sRGB photo, or raises ImageRejected with the reason (a folder, a loop, too large...)."""
    return decode_rgb(read_image_bytes(path, max_bytes=max_bytes), max_pixels=max_pixels)


def predict_files(paths: list[Path], models: dict[str, Predictor], args: argparse.Namespace) -> list[dict]:
    """One answer per path, in order: predictions, or an `error` with its reason."""
    answers: list[dict] = []
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        images, slots = [], []
        for path in chunk:
            answers.append({"path": str(path)})
            try:
                images.append(read_photo(path, args.max_bytes, args.max_pixels))
                slots.append(answers[-1])
            except ImageRejected as e:
                answers[-1]["error"] = e.reason + (f": {e.detail}" if e.detail else "")
        if not images:
            continue
        f = models["car_filter"]
        car = f.probs(images)[:, f.positive_index].tolist()
        make = models["make_model"]
        view = models["viewpoint"]
        tops = make.top_k(make.probs(images), args.top_k)
        views = view.top_k(view.probs(images), 1)
        for slot, c, t, v in zip(slots, car, tops, views, strict=True):
            slot.update(car_prob=round(c, 6), is_car=c >= args.threshold, make_model=t, viewpoint=v[0])
    return answers


def human(a: dict) -> str:
    """One line per file, whatever its name holds (newlines, bytes that are not UTF-8)."""
    path = a["path"].encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")
    if "error" in a:
        return f"{path}: error: {a['error']}"
    tops = ", ".join(f"{t['label']} {t['prob']:.2f}" for t in a["make_model"])
    car = "car" if a["is_car"] else "NOT a car photo"
    v = a["viewpoint"]
    return f"{path}: {car} ({a['car_prob']:.2f}) | {tops} | viewpoint {v['label']} {v['prob']:.2f}"


def run(args: argparse.Namespace, registry: dict[str, str]) -> int:
    models = load_models(args, registry)
    answers = predict_files(list(args.images), models, args)
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
