"""Typed settings: each config section unpacked into a dataclass at the edge, checked, with a doc per field.

A stage calls `parse(cfg)` first. An unknown or misspelled key, a missing required key, or a value of the wrong
type fails there, at start, naming the key (`clean.min_sid: unknown key; did you mean clean.min_side?`).
The dataclasses are the schema and the documentation: `python -m carvision.settings` prints every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from omegaconf import DictConfig, OmegaConf

from carvision.metric_names import metric_names


class ConfigError(ValueError):
    """A config value that the code cannot use; the message names the key."""


def doc(default: Any, text: str) -> Any:
    """A dataclass field with its default and a one-line doc (mutable defaults are copied per instance)."""
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


def required(text: str) -> Any:
    return field(metadata={"doc": text})


@dataclass(frozen=True)
class DataSettings:
    source: Literal["sample", "scrape", "folder", "stanford"] = doc("sample", "how data.root is laid out")
    root: str = doc("data/raw/sample", "the raw scrape, folder-per-class tree or Stanford Cars devkit to ingest")
    listing_pattern: str | None = doc(
        None, "folder: regex with a named group `listing` on the file name; photos of one listing share a split"
    )
    class_pattern: str | None = doc(
        None, "folder: regex with named groups make, model and optionally year on the class folder's name"
    )
    format: Literal["files", "litdata"] = doc(
        "files", "what training reads: the crop files, or the LitData shards that the pack stage wrote from them"
    )
    packed_uri: str | None = doc(
        None, "shards' home for pack and litdata training: a folder or s3://bucket/prefix; null: paths.packed"
    )
    chunk_bytes: int = doc(64_000_000, "pack: bytes per shard; tens of MB stream well from object storage")
    pack_workers: int = doc(0, "pack: processes reading and checking the crop files; 0 = one per CPU core")


@dataclass(frozen=True)
class ScrapeSettings:
    listings: str = doc("raw/listings-urls.csv", "CSV: ad_id, make, model, submodel|year, image_urls|images")
    url_template: str | None = doc(None, "with an `images` column: e.g. https://host/{ad_id}/{image}.jpg")
    out: str = doc("data/raw/scrape", "where listings.csv, images/<ad_id>/<content hash>.jpg and the report go")
    concurrency: int = doc(16, "downloads in flight at once")
    per_host_rps: float = doc(4.0, "requests per second to any one host")
    retries: int = doc(3, "retries of a 5xx, reset or timeout, with exponential backoff")
    backoff_s: float = doc(0.5, "seconds before the first retry; doubles with each retry (plus jitter)")
    timeout_s: float = doc(30.0, "seconds per request (connect and each read)")
    max_bytes: int = doc(50_000_000, "larger bodies are refused (too_large)")


@dataclass(frozen=True)
class BackboneSettings:
    name: str = doc("mobilenetv3_small_050", "timm model name")
    pretrained: bool = doc(False, "start from ImageNet weights: the hub, or weights_file when set")
    weights_file: str | None = doc(None, "local .safetensors/.pth/.bin of the backbone (offline machines)")
    img_size: int | None = doc(
        None, "px, side of the square (letterboxed) model input; null: the model's pretrained config (timm)"
    )


@dataclass(frozen=True)
class ImbalanceSettings:
    """The class-imbalance strategy and its parameters; docs/imbalance.md says when to use each."""

    strategy: Literal[
        "none",
        "weighted_loss",
        "weighted_sampler",
        "focal",
        "logit_adjusted",
        "posthoc",
        "balanced_softmax",
        "class_balanced",
        "label_smoothing",
    ] = doc("none", "class-imbalance strategy (carvision.training.losses)")
    focal_gamma: float = doc(2.0, "focal loss focusing exponent; 0 gives back cross-entropy")
    tau: float = doc(1.0, "logit_adjusted, posthoc: weight of log(prior), added in training / removed at prediction")
    beta: float = doc(0.999, "class_balanced: weights (1 - beta) / (1 - beta^count); 0 = none, -> 1 = 1/count")
    smoothing: float = doc(0.1, "label_smoothing: target share spread uniformly (train.label_smoothing must stay 0)")


@dataclass(frozen=True)
class TrainerSettings:
    accelerator: str = doc("cpu", "Lightning accelerator: cpu, gpu, auto")
    devices: int | str | list[int] = doc(1, "devices per node: a count, -1 for all, or a list of ids")
    strategy: str = doc("auto", "Lightning strategy: auto, ddp, ...")
    precision: str = doc("32-true", "Lightning precision: 32-true, bf16-mixed, 16-mixed")
    num_nodes: int = doc(1, "machines taking part in DDP")


@dataclass(frozen=True)
class SampleSettings:
    seed: int = doc(0, "seed of the generated scrape and filter set")
    listings: int = doc(260, "listings (ads) in the generated scrape")
    filter_photos: int = doc(500, "photos per label (car, no_car) in the generated filter set")


@dataclass(frozen=True)
class PathSettings:
    ingest: str = doc("data/ingest", "manifest of the raw scrape")
    clean: str = doc("data/clean", "manifest of verified photos")
    filter: str = doc("data/filter", "manifest of the photos the car filter kept")
    crop: str = doc("data/crop", "car crops the models train on")
    split: str = doc("data/split", "the scrape's split manifest (make_model, viewpoint)")
    filterset: str = doc("data/filterset", "the hand-labelled car / no_car set, prepared and split (car_filter)")
    models: str = doc("models", "one folder per task: <models>/<task>/model.ckpt")
    packed: str = doc("data/packed", "LitData shards per task and split (the pack stage; data.format: litdata)")
    reports: str = doc("reports", "DVC metrics and plots, one folder per stage")


@dataclass(frozen=True)
class CleanSettings:
    min_side: int = doc(32, "px; smaller photos are thumbnails with no make/model detail")
    max_pixels: int = doc(40_000_000, "refuse larger images before decoding them (decompression bombs)")
    near_duplicate_bits: int = doc(4, "max Hamming distance between 64-bit pHashes of near duplicates")
    decode_side: int = doc(64, "px; verification and the pHash decode JPEGs at the smallest scale at least this")
    workers: int = doc(0, "decode processes; 0 = one per CPU core")


@dataclass(frozen=True)
class FilterSettings:
    model: str = doc("none", "car-filter model: none, a checkpoint path, or models:/car-filter@champion")
    threshold: float = doc(0.7, "photos whose car probability is below this are dropped (not_a_car_photo)")
    batch_size: int = doc(128, "images per inference batch")


@dataclass(frozen=True)
class FilterSetSettings:
    root: str = doc("data/raw/sample-filter", "the hand-labelled tree: <root>/car/*, <root>/no_car/*")


@dataclass(frozen=True)
class DetectorSettings:
    name: Literal["fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn_v2"] = doc(
        "fasterrcnn_mobilenet_v3_large_fpn", "torchvision COCO detector: mobilenet for speed, resnet50 v2 for quality"
    )
    weights_file: str | None = doc(None, "local detector weights (offline machines); null: torchvision's hub")
    detect_side: int = doc(512, "px; photos decode (reduced) to at least this shorter side for the detector")
    min_size: int = doc(512, "px; the detector's own resize of the shorter side")
    max_size: int = doc(853, "px; ... unless the longer side would exceed this")
    score_thresh: float = doc(0.05, "boxes below this score are not returned at all")
    min_score: float = doc(0.5, "car/truck boxes below this score are ignored by the policy")
    rank: Literal["area", "area_score"] = doc("area", "the listing's car: the largest box, or area x score")
    min_box_fraction: float = doc(0.1, "a chosen box smaller than this share of the photo drops it as partial_car")
    include_bus: bool = doc(False, "count buses (COCO 6) as cars too")
    without_car: Literal["drop", "keep"] = doc("drop", "no car found: drop (no_car_found) or keep the whole photo")
    batch_size: int = doc(8, "photos per detector batch")
    half: bool = doc(True, "fp16 autocast on CUDA (ignored on the CPU)")
    num_workers: int = doc(2, "DataLoader processes decoding photos ahead of the detector; 0: in the stage's process")
    accelerator: str = doc("auto", "Lightning accelerator of a distributed run: auto, gpu, cpu")
    devices: int = doc(1, "devices per node; other than 1 (or num_nodes > 1): a Lightning predict under DDP")
    num_nodes: int = doc(1, "nodes (launched by torchrun or SLURM) of a distributed run")
    strategy: Literal["ddp", "ddp_spawn"] = doc(
        "ddp", "ddp: Lightning re-runs the stage's command per extra rank (or torchrun/SLURM started them)"
    )


@dataclass(frozen=True)
class CropSettings:
    method: Literal["boxes", "detector", "full"] = doc(
        "boxes", "boxes: annotation boxes; detector: the largest detected car or truck; full: whole photos"
    )
    detector: DetectorSettings = doc(DetectorSettings(), "the detector and its box policy (method: detector)")
    max_side: int = doc(128, "px; crops are shrunk so that their longer side is at most this")
    margin: float = doc(0.05, "fraction of the box width/height added on each side")
    min_box_side: int = doc(12, "px; smaller boxes are annotation errors or far-away cars")
    without_box: Literal["keep", "drop"] = doc("keep", "photos without a car box: pass the whole photo, or drop")
    jpeg_quality: int = doc(95, "JPEG quality of the crops")
    workers: int = doc(0, "crop processes; 0 = one per CPU core")


@dataclass(frozen=True)
class SplitSettings:
    train: float = doc(0.70, "fraction of each class's images, assigned by whole groups")
    val: float = doc(0.15, "fraction of each class's images for validation")
    test: float = doc(0.15, "fraction of each class's images for the test (and the registry gate)")
    min_images_per_class: int = doc(20, "classes with fewer images are dropped: too few to learn or to score")
    group_near_duplicate_bits: int = doc(10, "photos this close (pHash bits) join one group, even across listings")
    class_merge: dict[str, str] = doc({}, "scraped label -> class, e.g. {'Toyota Corolla Cross': 'Toyota Corolla'}")
    class_merge_file: str | None = doc(None, "a YAML mapping of label -> class, applied before class_merge")
    merge_years: bool = doc(True, "one class per make and model; false: one per make, model and year")
    max_images_per_class: int = doc(0, "cap: larger classes are subsampled (seeded, by whole groups); 0 = no cap")
    official: bool = doc(False, "keep the source's own train/test split (Stanford Cars); val is carved from train")
    workers: int = doc(0, "near-duplicate search processes (worth it from ~500k photos); 0 = one per CPU core")


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = doc(20, "passes over the train split")
    batch_size: int = doc(64, "images per step")
    lr: float = doc(0.003, "peak learning rate, reached after the warmup; layer_decay scales it down per layer")
    weight_decay: float = doc(0.0001, "weight decay of the weight matrices (biases and norm layers get none)")
    label_smoothing: float = doc(0.0, "cross-entropy label smoothing (against scraped-label noise)")
    num_workers: int = doc(0, "DataLoader workers; 0 = load in the training process")
    shuffle: bool = doc(True, "reshuffle the train split each epoch (seeded); false: manifest order (both formats)")
    patience: int = doc(0, "early-stopping patience in epochs on the task's monitor metric; 0 = off")
    resume: bool | str = doc(
        "auto", "auto: continue a killed run of the same config (its MLflow run too); false; or a .ckpt path"
    )
    checkpoint_every_n_steps: int = doc(
        50, "optimizer steps between the checkpoints a killed run resumes from; 0: epochs"
    )
    state_dir: str = doc(".train-state", "where unfinished runs keep their checkpoints (outside DVC's outputs)")
    # The recipe (docs/training.md): timm's create_optimizer_v2 and create_scheduler_v2, stepped per optimizer step.
    optimizer: str = doc("adamw", "timm optimizer name: adamw, sgd (Nesterov), momentum, lamb, lion, ...")
    momentum: float = doc(0.9, "momentum of the optimizers that have one (sgd, momentum, ...)")
    sched: Literal["cosine", "tanh", "poly", "step", "constant", "none"] = doc(
        "cosine", "learning-rate schedule over the epochs, stepped per optimizer step; none: constant, no warmup"
    )
    warmup_epochs: float = doc(0.0, "epochs (fractions allowed) of linear warmup from 1e-5 to lr, counted in steps")
    min_lr: float = doc(0.0, "cosine, tanh, poly: the learning rate at the end")
    decay_epochs: float = doc(30.0, "step: epochs between two decays by decay_rate")
    decay_rate: float = doc(0.1, "step: factor per decay; poly: the power")
    layer_decay: float | None = doc(None, "layer-wise lr decay: layer i of n gets lr x layer_decay^(n-1-i); null: off")
    ema: bool = doc(False, "keep an EMA of the weights; it is validated, checkpointed as model.* and exported")
    ema_decay: float = doc(0.9998, "EMA decay at most; it warms up as 1 - (1 + step)^-3/4, so short runs use less")
    mixup_alpha: float = doc(0.0, "mixup Beta(alpha, alpha) of image pairs with soft targets; 0 = off")
    cutmix_alpha: float = doc(0.0, "cutmix Beta(alpha, alpha) box pasting with soft targets; 0 = off")
    mixup_prob: float = doc(1.0, "share of batches mixed, when an alpha is on (each batch: mixup or cutmix, 50/50)")
    accumulate_grad_batches: int = doc(1, "batches whose gradients add up to one optimizer step")
    gradient_clip_val: float = doc(0.0, "clip the gradients' global L2 norm to this; 0 = off")
    compile: bool = doc(False, "torch.compile the trained network (first steps slower; GPU: faster after)")
    transfer: Literal["full", "linear_probe", "gradual"] = doc(
        "full", "full: train all; linear_probe: only the classifier head; gradual: unfreeze from the head down"
    )
    unfreeze_epochs: list[int] = doc(
        [], "gradual: the body, cut into this many parts, gets its next part from the top trainable at each epoch"
    )


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str = doc("sqlite:///mlflow.db", "tracking store and registry; MLflow 3 refuses the file store")
    experiment: str = doc("carvision", "MLflow experiment of every task's runs")
    artifact_location: str = doc("mlartifacts", "where a new experiment keeps its artifacts")


@dataclass(frozen=True)
class EvaluateSettings:
    champion_alias: str = doc("champion", "registry alias of the best version of each task")
    batch_size: int = doc(128, "images per inference batch")


@dataclass(frozen=True)
class ExportSettings:
    out: str = doc("exports", "one folder per task: <out>/<task>/model.onnx, model.int8.onnx, parity.json")
    opset: int = doc(17, "ONNX opset of the exported graph")
    quantize: Literal["static", "dynamic"] = doc(
        "static", "int8: static (activation ranges calibrated on the val split) or dynamic (measured per input)"
    )
    calibration_images: int = doc(256, "val images that calibrate static int8 (a seeded sample; all when fewer)")
    calibrate_method: Literal["moving_average", "minmax", "percentile"] = doc(
        "moving_average", "activation ranges: mean of per-image min/max, min/max over all, or 99.99th percentile"
    )
    per_channel: bool = doc(True, "int8 weights with one scale per output channel (not one per tensor)")
    min_fp32_agreement: float = doc(0.995, "share of test images on which fp32 ONNX and PyTorch agree on top-1")
    max_int8_top1_drop: float = doc(0.01, "test top-1 that int8 may lose against PyTorch (0.01 = 1 point)")


@dataclass(frozen=True)
class ServeSettings:
    host: str = doc("127.0.0.1", "address to bind; 0.0.0.0 exposes the service to the network")
    port: int = doc(8000, "TCP port; 0 = any free port (the URL is printed)")
    models: str | None = doc(
        None, "folder of <task>/model.ckpt (torch) or <task>/model.onnx (onnx); null: registry aliases / export.out"
    )
    runtime: Literal["torch", "onnx"] = doc("torch", "torch: checkpoints or the registry; onnx: carvision export files")
    int8: bool = doc(False, "onnx: answer with model.int8.onnx")
    crop: Literal["auto", "detector", "full"] = doc("auto", "find the car with the detector: auto, always, never")
    detector_weights: str | None = doc(None, "local detector weights file (offline machines)")
    device: str | None = doc(None, "cpu, cuda, cuda:1; null: cuda when present")
    threads: int = doc(0, "intra-op threads of the inference worker; 0 = the usable cores less one (the event loop's)")
    top_k: int = doc(5, "make/model labels per photo")
    max_upload_bytes: int = doc(20_000_000, "largest request body (all files together); larger: 413")
    max_pixels: int = doc(25_000_000, "larger images are refused from their header (413); 24 MP = 6000x4000")
    max_files: int = doc(16, "photos per request; more: 413")
    max_concurrent: int = doc(32, "requests holding an upload at once (read, queued or answered); bounds memory")
    max_queue: int = doc(512, "requests waiting for one of those slots; more: 429 with Retry-After")
    queue_timeout_s: float = doc(30.0, "seconds a request may wait for a slot; longer: 503 with Retry-After")
    read_timeout_s: float = doc(30.0, "seconds to receive a request's body; longer: 408 (slow or stalled clients)")
    batch_window_ms: float = doc(0.0, "ms to wait for more requests after the first of a batch; 0: no wait")
    max_batch: int = doc(32, "photos per model call at most (a request with more is still answered in one call)")


@dataclass(frozen=True)
class TaskSettings:
    """One task: what it trains on, its labels, its gate and its registry name. See conf/tasks/."""

    name: str = required("the task's name, also its folder under paths.models")
    dataset: Literal["scrape", "filterset"] = required("scrape: paths.split (crops); filterset: paths.filterset")
    label_column: str = required("manifest column holding the label; rows where it is empty are not used")
    registry_name: str = required("MLflow registered model name")
    gate: dict[str, float] = required("metric -> minimum on the test split; all must hold to register")
    classes: list[str] | None = doc(None, "fixed label order; null = every label of the data, sorted")
    positive_class: str | None = doc(None, "binary tasks: the class whose precision/recall the gate reads")
    monitor: str = doc("top1", "validation metric that picks the best epoch")
    description: str = doc("", "one line for the registry")
    # A task may pin its own training, so that sweeping the shared sections (backbone=..., imbalance=...) for
    # make_model experiments neither retrains it nor changes the data it filters.
    backbone: BackboneSettings | None = doc(None, "the task's own backbone; null = the backbone section")
    imbalance: ImbalanceSettings | None = doc(None, "the task's own imbalance strategy; null = the imbalance section")
    train: TrainSettings | None = doc(None, "the task's own training settings; null = the train section")


@dataclass(frozen=True)
class Settings:
    seed: int = doc(0, "one seed for splitting, sampling and weight init")
    task: str = doc("make_model", "the task that `python train.py` trains; DVC trains every entry of `tasks`")
    tasks: dict[str, TaskSettings] = doc({}, "every task the pipeline trains, by name")
    data: DataSettings = doc(DataSettings(), "the raw data")
    backbone: BackboneSettings = doc(BackboneSettings(), "the timm model")
    imbalance: ImbalanceSettings = doc(ImbalanceSettings(), "class-imbalance strategy")
    trainer: TrainerSettings = doc(TrainerSettings(), "Lightning Trainer arguments")
    sample: SampleSettings = doc(SampleSettings(), "the generated sample")
    scrape: ScrapeSettings = doc(ScrapeSettings(), "the scrape stage: listings with image URLs -> a raw scrape")
    paths: PathSettings = doc(PathSettings(), "stage outputs")
    clean: CleanSettings = doc(CleanSettings(), "the clean stage")
    filter: FilterSettings = doc(FilterSettings(), "the filter stage (car / no-car)")
    filterset: FilterSetSettings = doc(FilterSetSettings(), "the car filter's labelled training set")
    crop: CropSettings = doc(CropSettings(), "the crop stage")
    split: SplitSettings = doc(SplitSettings(), "the split stage")
    train: TrainSettings = doc(TrainSettings(), "training")
    mlflow: MlflowSettings = doc(MlflowSettings(), "tracking and registry")
    evaluate: EvaluateSettings = doc(EvaluateSettings(), "evaluation and the registry gate")
    export: ExportSettings = doc(ExportSettings(), "carvision export: ONNX files, int8 quantisation, parity bars")
    serve: ServeSettings = doc(ServeSettings(), "carvision serve: the HTTP API and upload page, its limits, batching")

    @property
    def current_task(self) -> TaskSettings:
        """The task named by `task`."""
        return task_named(self, self.task)

    def training_of(self, task: TaskSettings) -> tuple[BackboneSettings, ImbalanceSettings, TrainSettings]:
        """The backbone, imbalance and train sections that `task` trains with: its own, or the shared ones."""
        return task.backbone or self.backbone, task.imbalance or self.imbalance, task.train or self.train


def task_named(s: Settings, name: str) -> TaskSettings:
    if name not in s.tasks:
        raise ConfigError(f"task: unknown task '{name}'; the config declares {sorted(s.tasks)}")
    return s.tasks[name]


def parse(cfg: DictConfig | dict) -> Settings:
    """The whole config, checked and typed. Raises ConfigError naming the first bad key."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    s = _build(Settings, data, "")
    for name, t in s.tasks.items():
        _check_task(name, t)
        _check_streaming(s, name, t)
    task_named(s, s.task)
    return s


def _check_task(key: str, t: TaskSettings) -> None:
    if t.name != key:
        raise ConfigError(f"tasks.{key}.name: is '{t.name}', must equal its key '{key}'")
    n_classes = len(t.classes) if t.classes else None
    known = metric_names(n_classes, binary=t.positive_class is not None)
    for where, metric in [*((f"gate.{m}", m) for m in t.gate), ("monitor", t.monitor)]:
        if metric not in known:
            raise ConfigError(f"tasks.{key}.{where}: metric '{metric}' is not one of {sorted(known)}")
    if t.positive_class is not None and (not t.classes or t.positive_class not in t.classes):
        raise ConfigError(f"tasks.{key}.positive_class: '{t.positive_class}' must be one of classes {t.classes}")


def _check_streaming(s: Settings, key: str, t: TaskSettings) -> None:
    """A LitData stream is read in order, chunk by chunk: there is no random access by index for a sampler."""
    uri = s.data.packed_uri or ""
    if "://" in uri and not uri.startswith("s3://"):
        raise ConfigError(f"data.packed_uri: '{uri}': shards live in a local folder or under s3://, no other scheme")
    if s.data.format != "litdata":
        return
    if s.training_of(t)[1].strategy == "weighted_sampler":
        where = f"tasks.{key}.imbalance" if t.imbalance else "imbalance"
        raise ConfigError(
            f"{where}.strategy: weighted_sampler needs random access by index, which data.format=litdata does not "
            "have; use a loss-based strategy instead (weighted_loss, class_balanced, focal, logit_adjusted, "
            "balanced_softmax), or data.format=files"
        )


# --------------------------------------------------------------------------------------------------------------
# The checker: walks a plain dict against a dataclass's type hints.
# --------------------------------------------------------------------------------------------------------------


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a section (mapping), got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {sorted(fields)}"
            raise ConfigError(f"{prefix}{key}: unknown key{hint}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _check(data[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: missing required key ({f.metadata.get('doc', '')})")
    return cls(**values)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _check(value, arg, key)
            except ConfigError as e:
                errors.append(e)
        sections = [e for a, e in zip(args, errors, strict=True) if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and sections:  # a section with a bad key inside: say which key
            raise sections[0]
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_check(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _check(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.")
    ok = {
        type(None): value is None,
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"settings: no check for type {tp} of {key}")
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def describe(cls: type = Settings, prefix: str = "") -> list[str]:
    """One line per field: `key: type = default  # doc`, nested sections expanded."""
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            lines.append(f"{prefix}{f.name}:  # {f.metadata.get('doc', '')}")
            lines += describe(tp, prefix + "  ")
            continue
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        lines.append(f"{prefix}{f.name}: {_type_name(tp)} = {default!r}  # {f.metadata.get('doc', '')}")
    if cls is Settings:
        lines.append("task fields (each entry of tasks):")
        lines += describe(TaskSettings, "  ")
    return lines


if __name__ == "__main__":
    print("\n".join(describe()))
    sys.exit(0)
