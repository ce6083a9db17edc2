"""timm backbones by name, and where their pretrained weights come from: the hub, a local file, or nowhere."""

from __future__ import annotations

from pathlib import Path

import timm
from timm.data import resolve_model_data_config
from torch import nn


class PretrainedWeightsUnavailable(RuntimeError):
    """The pretrained weights could not be loaded; the message names both ways out."""


def _ways_out(name: str) -> str:
    return (
        f"Either download the weights where the hub is reachable and point to the file with "
        f"backbone.weights_file=/path/to/{name}.safetensors (or .pth/.bin), "
        f"or train from scratch with backbone.pretrained=false."
    )


def create_backbone(
    name: str, num_classes: int, *, pretrained: bool = False, weights_file: str | None = None
) -> nn.Module:
    """A timm model with a fresh `num_classes` head.

    Args:
        pretrained: load ImageNet weights, from `weights_file` when given, else from the Hugging Face hub.
        weights_file: a local state dict (safetensors, or a torch file with `state_dict`/`model` inside).
    """
    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    if weights_file:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise PretrainedWeightsUnavailable(f"backbone.weights_file {path} does not exist. " + _ways_out(name))
        # timm drops the pretrained classifier when num_classes differs, so any ImageNet head is fine here.
        return timm.create_model(
            name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay={"file": str(path)}
        )
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes)
    except Exception as e:  # offline: huggingface_hub and urllib raise many different error types
        raise PretrainedWeightsUnavailable(
            f"Could not fetch pretrained weights for '{name}' from the hub ({type(e).__name__}: {e}). "
            + _ways_out(name)
        ) from e


def load_pretrained_(model: nn.Module, name: str, weights_file: str | None) -> None:
    """Copies pretrained backbone weights into `model` in place (its head stays freshly initialised)."""
    source = create_backbone(name, model.num_classes, pretrained=True, weights_file=weights_file)
    model.load_state_dict(source.state_dict())


def input_config(model: nn.Module, img_size: int | None = None) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(input side in px, mean, std) that `model` expects, from timm's pretrained config
    (`resolve_model_data_config`), so that they are never repeated in YAML; `img_size` overrides the side.

    A non-square pretrained input (rare) gives its longer side: the letterbox makes a square of it."""
    cfg = resolve_model_data_config(model)
    size = img_size if img_size is not None else max(cfg["input_size"][1:])
    return int(size), tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"])
