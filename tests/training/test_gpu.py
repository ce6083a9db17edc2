"""GPU-only checks (`pytest -m gpu`): mixed-precision training with trainer=gpu. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from carvision.stages import train
from carvision.tracking import connect
from conftest import reuse_prepared

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_mixed_precision_training_on_gpu(prepared, tmp_path):
    cfg = reuse_prepared(prepared, tmp_path, ["trainer=gpu", "train.epochs=1"])
    result = train.main(cfg, "make_model")
    run = connect(cfg.mlflow.tracking_uri).get_run(result.run_id)
    assert run.data.params["trainer.precision"] == "bf16-mixed" and run.data.params["trainer.accelerator"] == "gpu"
    assert 0.0 <= result.best_val <= 1.0


def test_the_inference_library_runs_on_the_gpu(prepared, tmp_path):
    from carvision.inference import Predictor

    cfg = reuse_prepared(prepared, tmp_path, ["train.epochs=1"])
    result = train.main(cfg, "make_model")
    gpu, cpu = Predictor.load(result.checkpoint), Predictor.load(result.checkpoint, device="cpu")
    assert gpu.device.type == "cuda"
    x = [Image.new("RGB", (64, 48), (200, 30, 30))]
    assert torch.allclose(gpu.logits(x), cpu.logits(x), atol=1e-3)
