"""The training recipe: each option changes what it should, on timm's tiny test model and 32 px random tensors.

Each fit below is a real `Trainer.fit` of the real `Classifier` (a few steps, CPU); a callback records what the
optimizer saw. Validation is off (the monitor metrics are tested in tests/stages/test_train_evaluate.py)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from carvision import settings
from carvision.config import compose
from carvision.inference import read_checkpoint
from carvision.stages.train import build_classifier, build_trainer
from carvision.training import recipe
from carvision.training.backbones import create_backbone, input_config
from carvision.training.module import Classifier, load_classifier
from conftest import CONF

NAME = "test_efficientnet"  # timm's tiny test model: stem, 5 stages, head
CLASSES = ["a", "b", "c"]
BATCH = 8


def loader(batches: int, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    n = batches * BATCH
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, len(CLASSES), (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=BATCH)


class Record(L.Callback):
    """Per training batch: every param group's lr, which parameters train; per epoch end: the stem's weights."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []
        self.trainable: dict[int, set[str]] = {}
        self.stem_after: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])
        names = {n for n, p in pl_module.optimized.named_parameters() if p.requires_grad}
        self.trainable.setdefault(trainer.current_epoch, names)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.stem_after[trainer.current_epoch] = pl_module.optimized.conv_stem.weight.detach().clone()


def fit(epochs: int = 1, batches: int = 4, accumulate: int = 1, clip: float | None = None, **hparams):
    """(the fitted module, its trainer, the recording, the module's weights before the fit)."""
    torch.manual_seed(0)
    hparams = {"lr": 0.01, "epochs": epochs, "img_size": 32, **hparams}
    module = Classifier(NAME, CLASSES, **hparams)
    before = {k: v.clone() for k, v in module.optimized.state_dict().items()}
    record = Record()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=clip,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
    )
    trainer.fit(module, loader(batches))
    return module, trainer, record, before


# ---- schedule: warmup, cosine to min_lr, layer decay (one fit: 2 epochs of 4 steps) ------------------------------


@pytest.fixture(scope="module")
def scheduled():
    return fit(epochs=2, batches=4, warmup_epochs=1, min_lr=1e-4, layer_decay=0.5)


def test_warmup_ramps_the_lr_over_the_first_steps_to_the_peak(scheduled):
    _, _, record, _ = scheduled
    head = [lrs[-1] for lrs in record.lrs]  # the last group is the top layer's, lr_scale 1
    assert len(head) == 8
    assert head[0] == pytest.approx(1e-5)  # warmup starts at timm's 1e-5 ...
    assert all(a < b for a, b in zip(head[:4], head[1:5], strict=True))  # ... rises each step of epoch 0 ...
    assert head[4] == pytest.approx(0.01)  # ... and reaches lr when the warmup epoch ends


def test_cosine_decays_to_min_lr_on_the_last_step(scheduled):
    _, trainer, record, _ = scheduled
    head = [lrs[-1] for lrs in record.lrs]
    assert all(a > b for a, b in zip(head[4:], head[5:], strict=False))
    final = max(g["lr"] for g in trainer.optimizers[0].param_groups)
    assert final == pytest.approx(1e-4) and head[-1] > final


def test_layer_decay_gives_lower_layers_smaller_learning_rates(scheduled):
    module, trainer, _, _ = scheduled
    opt = trainer.optimizers[0]
    net = module.optimized
    group_of = {id(p): i for i, g in enumerate(opt.param_groups) for p in g["params"]}
    lr_of = {n: opt.param_groups[group_of[id(p)]]["lr"] for n, p in net.named_parameters()}
    # test_efficientnet's fine layers (group_matcher(coarse=False)): stem, 5 blocks, head: 7, so the stem's scale
    # is 0.5^6 of the head's
    assert lr_of["conv_stem.weight"] == pytest.approx(lr_of["classifier.weight"] * 0.5**6)
    assert lr_of["conv_stem.weight"] < lr_of["blocks.2.0.conv_exp.weight"] < lr_of["classifier.weight"]
    # weight decay stays off biases and norm layers
    decay_of = {n: opt.param_groups[group_of[id(p)]]["weight_decay"] for n, p in net.named_parameters()}
    assert decay_of["classifier.weight"] > 0 and decay_of["classifier.bias"] == 0 and decay_of["bn1.weight"] == 0


# ---- accumulation and clipping ----------------------------------------------------------------------------------


def test_accumulation_steps_the_optimizer_and_the_schedule_once_per_k_batches():
    module, trainer, record, _ = fit(batches=8, accumulate=4, min_lr=1e-4)
    assert trainer.global_step == 2  # 8 batches / 4
    assert module.schedule_length() == (1, 2)
    # the cosine spans the 2 optimizer steps, not the 8 batches: it has reached min_lr
    assert max(g["lr"] for g in trainer.optimizers[0].param_groups) == pytest.approx(1e-4)
    assert len({round(lrs[-1], 9) for lrs in record.lrs}) == 2  # the lr changed once, after the first step


def update_norm(clip: float | None) -> float:
    """L2 norm of one step's update with plain SGD at lr 1 (no momentum, no decay): the gradient after clipping."""
    module, _, _, before = fit(
        batches=1, clip=clip, optimizer="momentum", momentum=0.0, weight_decay=0.0, sched="none", lr=1.0
    )
    after = dict(module.optimized.named_parameters())
    return torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in after)).item()


def test_clipping_bounds_the_gradient_norm():
    clip = 1e-3
    assert update_norm(None) > 10 * clip  # the raw gradient is well above the bound ...
    assert update_norm(clip) == pytest.approx(clip, rel=1e-3)  # ... and clipped to it


# ---- EMA and mixup (one fit) --------------------------------------------------------------------------------------


class SpyLoss(torch.nn.Module):
    """The module's own criterion, with the targets it was called with recorded."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.targets = inner, []

    def forward(self, logits, target):
        self.targets.append(target.detach().clone())
        return self.inner(logits, target)


@pytest.fixture(scope="module")
def averaged(tmp_path_factory):
    torch.manual_seed(0)
    module = Classifier(NAME, CLASSES, lr=0.01, epochs=1, img_size=32, ema=True, mixup_alpha=0.4, cutmix_alpha=1.0)
    before = {k: v.clone() for k, v in module.raw_model.state_dict().items()}
    spy = module.criterion = SpyLoss(module.criterion)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, loader(6))
    module.criterion = spy.inner  # the checkpoint holds the module's own loss
    path = tmp_path_factory.mktemp("ema") / "model.ckpt"
    trainer.save_checkpoint(path, weights_only=True)
    return module, before, path, spy.targets


def test_ema_weights_differ_from_the_raw_ones_and_from_the_start(averaged):
    module, before, _, _ = averaged
    ema, raw = module.model.state_dict(), module.raw_model.state_dict()
    key = "blocks.2.0.conv_exp.weight"
    assert not torch.equal(ema[key], raw[key]) and not torch.equal(ema[key], before[key])
    # an average of the steps' weights: closer to the end than the start is, after 6 steps of warmed-up decay
    assert (ema[key] - raw[key]).norm() < (before[key] - raw[key]).norm()
    assert all(not p.requires_grad for p in module.model.parameters())


def test_the_checkpoint_holds_the_ema_as_the_model_that_inference_reads(averaged):
    module, _, path, _ = averaged
    ema = module.model.state_dict()
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert {k.split(".")[0] for k in state} == {"model", "raw_model"}
    net, hp = read_checkpoint(path)  # the inference library, unchanged: it reads `model.*`
    assert hp["ema"] is True
    assert all(torch.equal(v, ema[k]) for k, v in net.state_dict().items())
    reloaded = load_classifier(path)  # the exported network (`.model`) is the average too, and the raw one returns
    assert all(torch.equal(v, ema[k]) for k, v in reloaded.model.state_dict().items())
    assert all(torch.equal(v, module.raw_model.state_dict()[k]) for k, v in reloaded.raw_model.state_dict().items())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(reloaded(x), net(x.contiguous(memory_format=torch.channels_last)))


def test_mixup_trains_on_soft_targets_that_sum_to_one(averaged):
    *_, targets = averaged  # what the criterion was called with, batch by batch
    assert len(targets) == 6
    for t in targets:
        assert t.shape == (BATCH, len(CLASSES)) and t.dtype.is_floating_point
        assert torch.allclose(t.sum(1), torch.ones(BATCH))
    assert any(((t > 0) & (t < 1)).any() for t in targets)  # mixed labels, not one-hot ones
    mixup = recipe.build_mixup(0.4, 1.0, 1.0, len(CLASSES))
    x, y = torch.randn(BATCH, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mixed, soft = mixup(x.clone(), y)
    assert not torch.equal(mixed, x) and torch.allclose(soft.sum(1), torch.ones(BATCH))  # the images mix too
    assert recipe.build_mixup(0.0, 0.0, 1.0, 3) is None and recipe.build_mixup(0.4, 0.0, 0.0, 3) is None


# ---- transfer modes ---------------------------------------------------------------------------------------------


def test_linear_probe_trains_the_head_and_leaves_the_backbone_as_it_was():
    module, _, _, before = fit(batches=3, transfer="linear_probe")
    after = module.optimized.state_dict()
    head = {k for k in after if k.startswith("classifier.")}
    assert head == {"classifier.weight", "classifier.bias"}
    assert all(not torch.equal(after[k], before[k]) for k in head)
    # weights and the batch-norm statistics of every other layer: untouched
    assert all(torch.equal(after[k], before[k]) for k in after if k not in head)


def test_gradual_unfreezing_opens_the_body_from_the_top_at_the_listed_epochs():
    module, _, record, before = fit(epochs=3, batches=1, transfer="gradual", unfreeze_epochs=[1, 2])
    net = module.optimized
    every = {n for n, _ in net.named_parameters()}
    top_part = {n for n, p in net.named_parameters() if any(p is q for q in recipe.body_parts(net, 2)[0])}
    assert record.trainable[0] == {"classifier.weight", "classifier.bias"}  # epoch 0: a linear probe
    assert record.trainable[1] == record.trainable[0] | top_part  # epoch 1: + the upper half of the body
    assert "blocks.4.0.conv_pw.weight" in top_part and "conv_stem.weight" not in top_part
    assert record.trainable[2] == every  # epoch 2: everything
    # the stem was frozen through epochs 0 and 1 (no update, no weight decay), and trained in epoch 2
    assert torch.equal(record.stem_after[1], before["conv_stem.weight"])
    assert not torch.equal(record.stem_after[2], before["conv_stem.weight"])


def test_body_parts_cover_the_body_once_top_first():
    net = create_backbone(NAME, 3)
    parts = recipe.body_parts(net, 3)
    names = {id(p): n for n, p in net.named_parameters()}
    flat = [names[id(p)] for part in parts for p in part]
    assert sorted(flat) == sorted(n for n in names.values() if not n.startswith("classifier."))
    assert parts[0] and names[id(parts[-1][-1])].startswith(("conv_stem", "bn1"))  # the stem is in the last part


def test_a_bad_recipe_fails_at_construction():
    with pytest.raises(ValueError, match="no optimizer 'adamww'"):
        Classifier(NAME, CLASSES, optimizer="adamww")
    with pytest.raises(ValueError, match="unfreeze_epochs"):
        Classifier(NAME, CLASSES, transfer="gradual")


# ---- the input size and normalisation from the pretrained config; the train stage's wiring ----------------------


def test_input_size_and_normalisation_come_from_the_pretrained_config_unless_overridden():
    net = create_backbone("test_resnet", 3)  # its pretrained config: 160 px, mean = std = 0.5
    assert input_config(net) == (160, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert input_config(net, 48)[0] == 48


def stage_settings(overrides: list[str]) -> tuple[settings.Settings, settings.TaskSettings]:
    s = settings.parse(compose(overrides, conf_dir=CONF))
    return s, s.tasks["make_model"]


def test_build_classifier_records_the_pretrained_input_size_when_img_size_is_null():
    s, task = stage_settings(["backbone.name=test_resnet", "backbone.img_size=null"])
    module = build_classifier(s, task, CLASSES, [5, 5, 5])
    assert module.hparams.img_size == 160 and module.hparams.mean == (0.5, 0.5, 0.5)
    s, task = stage_settings(["backbone.name=test_resnet", "backbone.img_size=40"])
    assert build_classifier(s, task, CLASSES, [5, 5, 5]).hparams.img_size == 40


def test_build_classifier_and_trainer_take_the_recipe_from_the_train_settings(tmp_path):
    overrides = [
        "backbone.name=test_efficientnet",
        "train.optimizer=sgd",
        "train.ema=true",
        "train.transfer=gradual",
        "train.unfreeze_epochs=[1,3]",
        "train.accumulate_grad_batches=3",
        "train.gradient_clip_val=2.0",
        "trainer.strategy=ddp",
    ]
    s, task = stage_settings(overrides)
    module = build_classifier(s, task, CLASSES, [5, 5, 5])
    hp = module.hparams
    assert (hp.optimizer, hp.ema, hp.transfer, hp.unfreeze_epochs) == ("sgd", True, "gradual", [1, 3])
    assert any(isinstance(c, recipe.GradualUnfreezing) for c in module.configure_callbacks())
    trainer, _ = build_trainer(s, s.train, "val_top1", False, tmp_path)
    assert trainer.accumulate_grad_batches == 3 and trainer.gradient_clip_val == 2.0
    # gradual freezes after DDP wrapped the model: DDP must expect parameters without gradients
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True


@pytest.mark.slow
def test_compile_trains_the_compiled_network_and_keeps_the_state_dict_names(tmp_path):
    # slow: inductor compiles C++ kernels for the CPU on the first steps (3.4 min on 2 shared cores)
    module, trainer, _, before = fit(batches=2, compile=True)
    assert module.optimized._compiled_call_impl is not None  # nn.Module.compile(): in place, no wrapper module
    after = module.optimized.state_dict()
    assert set(after) == set(before) and not torch.equal(after["classifier.weight"], before["classifier.weight"])
    trainer.save_checkpoint(tmp_path / "c.ckpt", weights_only=True)
    net, _ = read_checkpoint(tmp_path / "c.ckpt")  # no `_orig_mod.` names: inference reads it as any other
    assert torch.equal(net.state_dict()["classifier.weight"], after["classifier.weight"])
