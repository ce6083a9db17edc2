"""The inference library: every consumer of a trained model goes through it (evaluation, the filter stage,
`carvision predict`, and later the service and export).

    predictor = Predictor.load("models/make_model/model.ckpt")            # a checkpoint file
    predictor = Predictor.load("models:/car-classifier@champion")         # or the registry
    probs = predictor.probs_paths(["photo.jpg"])                          # (n, num_classes)
    predictor.top_k(probs, 5)                                             # [[{"label", "prob"}, ...], ...]

It uses CUDA when present, runs in batches, and preprocesses with `carvision.preprocess`, the definition that
training's evaluation transform uses too. It needs torch and timm only: no Lightning, no Hydra, no config.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvision.images import ImageRejected
from carvision.preprocess import Preprocess, load_rgb
from carvision.training.backbones import create_backbone
from carvision.training.losses import prediction_adjustment


def read_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(the timm network, the hyperparameters) of a training checkpoint, read with `weights_only=True` so that
    loading it cannot run code. The hyperparameters hold the task, label map and preprocessing."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    hp = dict(ckpt["hyper_parameters"])
    net = create_backbone(hp["backbone"], len(hp["class_names"]))
    # The LightningModule keeps the network under `model.`; its loss (class weights) is not needed to predict.
    net.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    return net.eval(), hp


def weights_sha256(model: torch.nn.Module) -> str:
    """The identity of a model: a hash of its weights (names, dtypes, shapes and bytes, in name order).

    Unlike the checkpoint file's hash it does not change with the folder the model was trained in, or with
    Lightning's bookkeeping, so the same weights trained in two clones are one model. The memory layout
    (channels_last or not) does not change it either.
    """
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class ImageFiles(Dataset):
    """Image files as model inputs; with `skip_errors`, a file that cannot be read gives a NaN input (its logits
    come out NaN) instead of stopping the whole run."""

    def __init__(
        self, paths: Sequence[str | Path], preprocess: Preprocess, min_side: int | None, skip_errors: bool
    ) -> None:
        self.paths, self.preprocess = list(paths), preprocess
        self.min_side, self.skip_errors = min_side, skip_errors

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            return self.preprocess(load_rgb(self.paths[i], min_side=self.min_side))
        except ImageRejected as e:
            if not self.skip_errors:
                raise ImageRejected(e.reason, f"{self.paths[i]}: {e.detail}") from e
            return torch.full((3, self.preprocess.size, self.preprocess.size), float("nan"))


class _AdjustedLogits(torch.nn.Module):
    """A network followed by a constant (num_classes,) shift of its logits (posthoc's -tau * log(prior))."""

    def __init__(self, net: torch.nn.Module, adjustment: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("adjustment", adjustment.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + self.adjustment


def usable_device(device: str | torch.device | None) -> torch.device:
    """`device`, or CUDA when there is one and the CPU otherwise (None).

    Raises:
        ValueError: CUDA asked for where torch sees none, said before any model moves there (torch's own error
            comes at the first `.to()`, as a RuntimeError about drivers).
    """
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device}: torch sees no CUDA device on this machine; use cpu")
    return chosen


class Answers:
    """What a predictor answers from its logits, whatever runs the network (PyTorch here, onnxruntime in
    `carvision.onnx_predictor`): a subclass gives `logits`, `logits_paths` and `class_names`."""

    def probs(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.logits(images).softmax(1)

    def probs_paths(
        self, paths: Sequence[str | Path], num_workers: int = 0, progress: str | None = None, **kwargs
    ) -> torch.Tensor:
        """Softmax of `logits_paths` (same arguments)."""
        return self.logits_paths(paths, num_workers, progress, **kwargs).softmax(1)

    def top_k(self, probs: torch.Tensor, k: int = 5) -> list[list[dict]]:
        """For each row of `probs`, the k most likely labels with their probabilities, most likely first."""
        k = min(k, len(self.class_names))
        values, indices = probs.topk(k, dim=1)
        return [
            [{"label": self.class_names[i], "prob": round(float(p), 6)} for p, i in zip(ps, ix, strict=True)]
            for ps, ix in zip(values.tolist(), indices.tolist(), strict=True)
        ]


class Predictor(Answers):
    """A trained classifier ready to answer: its task, label map, preprocessing and device.

    Args:
        model: the network: (batch, 3, size, size) normalised images -> (batch, num_classes) logits.
        hparams: what the checkpoint says of it: task, class_names, positive_class, img_size, mean, std.
        source: where the model came from (a path, or a models:/ URI), for reports and answers.
        version: the registry version, when it came from the registry.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        hparams: dict,
        source: str = "",
        version: str | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
    ) -> None:
        self.device = usable_device(device)
        # channels_last, as in training: the same arithmetic, and faster convolutions on CPU and GPU.
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.hparams = hparams
        self.preprocess = Preprocess(hparams["img_size"], tuple(hparams["mean"]), tuple(hparams["std"]))
        self.task: str = hparams["task"]
        self.class_names: list[str] = list(hparams["class_names"])
        self.positive_class: str | None = hparams.get("positive_class")
        self.source, self.version, self.batch_size = source, version, batch_size
        # (num_classes,) added to every row of logits, or None: imbalance.strategy posthoc removes tau * log(prior)
        # of the train split here, so evaluation, the filter, predict and the service all answer balanced.
        # Checkpoints from before the strategy existed have no `logit_tau` and are not posthoc.
        self.logit_adjustment: torch.Tensor | None = prediction_adjustment(
            hparams.get("imbalance", "none"), hparams.get("class_counts"), float(hparams.get("logit_tau", 1.0))
        )

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        tracking_uri: str = "sqlite:///mlflow.db",
        device: str | torch.device | None = None,
        batch_size: int = 64,
    ) -> Predictor:
        """From a checkpoint file, or from the registry: `models:/<name>@<alias>` or `models:/<name>/<version>`."""
        source = str(source)
        if not source.startswith("models:/"):
            if not Path(source).is_file():
                raise FileNotFoundError(f"no model checkpoint at {source}")
            return cls(*read_checkpoint(source), source, None, device, batch_size)
        from carvision.registry import download_checkpoint, resolve_version
        from carvision.tracking import connect

        client = connect(tracking_uri)
        mv = resolve_version(client, source)
        with tempfile.TemporaryDirectory(prefix="carvision-model-") as tmp:
            model, hparams = read_checkpoint(download_checkpoint(client, mv, Path(tmp)))
        return cls(model, hparams, source, str(mv.version), device, batch_size)

    @property
    def positive_index(self) -> int | None:
        return None if self.positive_class is None else self.class_names.index(self.positive_class)

    def served_network(self) -> torch.nn.Module:
        """The network whose outputs are what `logits()` returns: `model` itself, or `model` followed by the post-hoc
        logit adjustment. An export (ONNX) must trace this one, not `model`, so that it answers as the Predictor does;
        `model` stays the identity that `weights_sha256` hashes."""
        if self.logit_adjustment is None:
            return self.model
        return _AdjustedLogits(self.model, self.logit_adjustment.to(self.device)).eval()

    def describe(self) -> dict:
        """What answered: task, source, registry version, classes."""
        return {"task": self.task, "source": self.source, "version": self.version, "classes": len(self.class_names)}

    @torch.inference_mode()
    def _run(self, batches, progress: str | None = None, total: int | None = None) -> torch.Tensor:
        if progress:  # long runs (a whole scrape through the filter) show how far they are
            batches = tqdm(batches, desc=progress, total=total, unit="batch", mininterval=1.0)
        out = [
            self.model(x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)).float().cpu()
            for x in batches
        ]
        logits = torch.cat(out) if out else torch.empty(0, len(self.class_names))
        return logits if self.logit_adjustment is None else logits + self.logit_adjustment

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
        """(n, num_classes) logits of image files, decoded (upright, sRGB) and batched by a DataLoader.

        Args:
            progress: a label for a progress bar, or None for none.
            min_side: decode large JPEGs reduced, to the smallest scale whose shorter side is at least this (px);
                None decodes at full resolution, as training does.
            skip_errors: a file that cannot be read gets a row of NaN logits; otherwise it raises ImageRejected.
        """
        loader = DataLoader(
            ImageFiles(paths, self.preprocess, min_side, skip_errors),
            batch_size=self.batch_size,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
        )
        return self._run(loader, progress, len(loader))
