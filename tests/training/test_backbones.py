"""Pretrained weights: a local file when configured, the hub by default, and a clear error offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from carvision.training.backbones import PretrainedWeightsUnavailable, create_backbone, load_pretrained_

NAME = "test_efficientnet"  # timm's tiny test model: the real code path in milliseconds


def test_scratch_model_has_the_requested_head():
    model = create_backbone(NAME, num_classes=7)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_local_weights_file_is_loaded_and_the_head_replaced(tmp_path: Path, fmt: str):
    source = create_backbone(NAME, num_classes=1000)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    weights = tmp_path / f"weights.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(weights))
    else:
        torch.save({"state_dict": state}, weights)
    model = create_backbone(NAME, num_classes=5, pretrained=True, weights_file=str(weights))
    loaded = model.state_dict()
    body = [k for k in state if not k.startswith(model.default_cfg["classifier"])]
    assert body and all(torch.equal(loaded[k], state[k]) for k in body)
    assert model.get_classifier().out_features == 5


def test_load_pretrained_in_place_copies_the_body(tmp_path: Path):
    source = create_backbone(NAME, num_classes=1000)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    target = create_backbone(NAME, num_classes=3)
    first = next(k for k in source.state_dict() if k.endswith("weight"))
    assert not torch.equal(target.state_dict()[first], source.state_dict()[first])
    load_pretrained_(target, NAME, str(tmp_path / "w.safetensors"))
    assert torch.equal(target.state_dict()[first], source.state_dict()[first])


def test_missing_weights_file_names_both_ways_out(tmp_path: Path):
    with pytest.raises(PretrainedWeightsUnavailable) as e:
        create_backbone(NAME, 3, pretrained=True, weights_file=str(tmp_path / "nope.safetensors"))
    assert "does not exist" in str(e.value)
    assert "backbone.weights_file=" in str(e.value) and "backbone.pretrained=false" in str(e.value)


def test_offline_hub_gives_a_clear_error():
    # conftest sets HF_HUB_OFFLINE=1, as on CI and on machines without internet.
    with pytest.raises(PretrainedWeightsUnavailable) as e:
        create_backbone(NAME, 3, pretrained=True)
    msg = str(e.value)
    assert "from the hub" in msg and "backbone.weights_file=" in msg and "backbone.pretrained=false" in msg
