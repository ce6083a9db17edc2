"""The imbalance strategies: each loss against a hand computation, with index and soft targets, empty classes,
the decisions they shift toward rare classes, and posthoc's adjustment in validation and in the Predictor."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from carvision import settings, tasks
from carvision.inference import Predictor, weights_sha256
from carvision.metrics import score
from carvision.preprocess import Preprocess, load_rgb
from carvision.stages import train
from carvision.training.data import TaskDataModule, class_counts
from carvision.training.losses import (
    STRATEGIES,
    FocalLoss,
    build_loss,
    class_balanced_weights,
    inverse_frequency_weights,
    log_prior,
    prediction_adjustment,
)
from carvision.training.module import Classifier, load_classifier

# Strategies that change nothing but the loss's targets or scale per image: the loss of a mixed soft target is the
# mix of the losses (weighted ones normalise by the batch's weight instead, checked by hand below).
LINEAR_IN_TARGET = (
    "none",
    "weighted_sampler",
    "focal",
    "logit_adjusted",
    "posthoc",
    "balanced_softmax",
    "label_smoothing",
)


def loss_of(strategy: str, counts: list[int], **kwargs) -> torch.nn.Module:
    return build_loss(strategy, counts, 2.0, 0.0, **kwargs)


# --- the weights ----------------------------------------------------------------------------------------------


def test_inverse_frequency_weights_favour_rare_classes_and_keep_the_mean():
    counts = [500, 50, 5, 0]
    w = inverse_frequency_weights(counts)
    assert w[2] > w[1] > w[0] and w[3] == 0
    n = torch.tensor(counts, dtype=torch.float32)
    assert torch.isclose((w * n).sum() / n.sum(), torch.tensor(1.0))
    assert torch.isclose(w[1] * 50, w[0] * 500)  # every class contributes the same total weight


def test_class_balanced_weights_by_hand():
    counts = [100, 10, 0]
    w = class_balanced_weights(counts, beta=0.9)
    # Effective numbers (1 - 0.9^n) / (1 - 0.9): 100 images count as ~10.0, 10 images as 6.513.
    e0, e1 = (1 - 0.9**100) / 0.1, (1 - 0.9**10) / 0.1
    scale = 110 / (100 / e0 + 10 / e1)  # the weighted mean over the 110 train images is 1
    assert w.tolist() == pytest.approx([scale / e0, scale / e1, 0.0], rel=1e-5)


def test_class_balanced_weights_run_from_none_to_inverse_frequency():
    counts = [500, 50, 5]
    assert class_balanced_weights(counts, 0.0).tolist() == pytest.approx([1.0, 1.0, 1.0])
    w = class_balanced_weights(counts, 0.999)  # between the two: rare classes weigh more, but less than 1/count
    assert 1 < w[2] / w[0] < 100
    assert class_balanced_weights(counts, 1 - 1e-7).tolist() == pytest.approx(
        inverse_frequency_weights(counts).tolist(), rel=1e-3
    )
    with pytest.raises(ValueError, match="imbalance.beta"):
        class_balanced_weights(counts, 1.0)


def test_log_prior_floors_empty_classes():
    lp = log_prior([3, 1, 0])  # counts floored to [3, 1, 1]
    assert lp.tolist() == pytest.approx([math.log(3 / 5), math.log(1 / 5), math.log(1 / 5)])


# --- each loss against a hand computation -----------------------------------------------------------------------

LOGITS = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
TARGET = torch.tensor([0, 2])
COUNTS = [6, 3, 1]


def ce(z: list[float], q: list[float]) -> float:
    """-sum_c q_c log softmax(z)_c, by hand."""
    log_norm = math.log(sum(math.exp(v) for v in z))
    return -sum(qc * (zc - log_norm) for zc, qc in zip(z, q, strict=True))


def one_hot(i: int) -> list[float]:
    return [1.0 if c == i else 0.0 for c in range(3)]


def test_plain_cross_entropy_by_hand():
    expected = (ce([1, 0, -1], one_hot(0)) + ce([0.5, 0.5, 2], one_hot(2))) / 2
    for strategy in ("none", "weighted_sampler", "posthoc"):  # posthoc trains plain; it adjusts at prediction
        assert loss_of(strategy, COUNTS)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_logit_adjusted_by_hand():
    prior = [0.6, 0.3, 0.1]
    for tau in (1.0, 0.5):
        shift = [tau * math.log(p) for p in prior]
        z0 = [v + s for v, s in zip([1, 0, -1], shift, strict=True)]
        z1 = [v + s for v, s in zip([0.5, 0.5, 2], shift, strict=True)]
        expected = (ce(z0, one_hot(0)) + ce(z1, one_hot(2))) / 2
        assert loss_of("logit_adjusted", COUNTS, tau=tau)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_balanced_softmax_by_hand_and_equal_to_logit_adjustment_at_tau_one():
    shift = [math.log(n) for n in COUNTS]
    z0 = [v + s for v, s in zip([1, 0, -1], shift, strict=True)]
    z1 = [v + s for v, s in zip([0.5, 0.5, 2], shift, strict=True)]
    expected = (ce(z0, one_hot(0)) + ce(z1, one_hot(2))) / 2
    assert loss_of("balanced_softmax", COUNTS)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)
    logits, y = torch.randn(32, 3, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 3
    la = loss_of("logit_adjusted", COUNTS, tau=1.0)(logits, y)
    assert torch.isclose(loss_of("balanced_softmax", COUNTS)(logits, y), la, atol=1e-6)


def test_balanced_softmax_and_logit_adjustment_are_cross_entropy_on_balanced_classes():
    logits, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 4
    plain = F.cross_entropy(logits, y)
    for strategy in ("balanced_softmax", "logit_adjusted", "class_balanced", "weighted_loss"):
        assert torch.isclose(loss_of(strategy, [25, 25, 25, 25])(logits, y), plain, atol=1e-6), strategy


def test_weighted_losses_by_hand_and_as_torch_weighs():
    for strategy, w in (
        ("weighted_loss", inverse_frequency_weights(COUNTS)),
        ("class_balanced", class_balanced_weights(COUNTS, 0.5)),
    ):
        w0, w2 = float(w[0]), float(w[2])
        expected = (w0 * ce([1, 0, -1], one_hot(0)) + w2 * ce([0.5, 0.5, 2], one_hot(2))) / (w0 + w2)
        loss = loss_of(strategy, COUNTS, beta=0.5)(LOGITS, TARGET)
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        assert torch.isclose(loss, F.cross_entropy(LOGITS, TARGET, weight=w), atol=1e-6)  # torch's convention


def test_label_smoothing_by_hand():
    q0 = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    q1 = [0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3]
    expected = (ce([1, 0, -1], q0) + ce([0.5, 0.5, 2], q1)) / 2
    loss = loss_of("label_smoothing", COUNTS, smoothing=0.1)(LOGITS, TARGET)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert torch.isclose(loss, F.cross_entropy(LOGITS, TARGET, label_smoothing=0.1), atol=1e-6)
    # One place sets it: the strategy's own smoothing, not train.label_smoothing as well.
    with pytest.raises(ValueError, match="imbalance.smoothing"):
        build_loss("label_smoothing", COUNTS, 2.0, 0.2)
    # train.label_smoothing still smooths the other strategies.
    smoothed = build_loss("logit_adjusted", COUNTS, 2.0, 0.1)(LOGITS, TARGET)
    assert torch.isclose(smoothed, F.cross_entropy(LOGITS + log_prior(COUNTS), TARGET, label_smoothing=0.1))


def test_focal_by_hand():
    def focal(z: list[float], i: int) -> float:
        p = math.exp(-ce(z, one_hot(i)))
        return -((1 - p) ** 2) * math.log(p)

    expected = (focal([1, 0, -1], 0) + focal([0.5, 0.5, 2], 2)) / 2
    assert loss_of("focal", COUNTS)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    assert torch.isclose(FocalLoss(0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)


def test_focal_down_weights_easy_examples():
    y = torch.tensor([0])
    easy, hard = torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    ratio_ce = F.cross_entropy(easy, y) / F.cross_entropy(hard, y)
    ratio_focal = FocalLoss(2.0)(easy, y) / FocalLoss(2.0)(hard, y)
    assert ratio_focal < ratio_ce / 10


def test_build_loss_per_strategy():
    counts = [10, 1]
    assert isinstance(build_loss("focal", counts, 2.0, 0.0), FocalLoss)
    assert build_loss("none", counts, 2.0, 0.0).weight is None
    assert build_loss("weighted_sampler", counts, 2.0, 0.0).weight is None  # the sampler balances instead
    weighted = build_loss("weighted_loss", counts, 2.0, 0.0).weight
    assert weighted[1] > weighted[0]
    balanced = build_loss("class_balanced", counts, 2.0, 0.0).weight
    assert weighted[1] / weighted[0] >= balanced[1] / balanced[0] > 1  # 1/count at most
    assert build_loss("none", counts, 2.0, 0.0).offset is None
    assert build_loss("logit_adjusted", counts, 2.0, 0.0).offset[1] < 0  # log(prior) of the rare class
    with pytest.raises(ValueError, match="unknown imbalance.strategy"):
        build_loss("oversample", counts, 2.0, 0.0)


# --- soft targets (mixup, cutmix) -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_hot_soft_targets_give_the_index_loss(strategy: str):
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(8, 3, generator=g), torch.tensor([0, 1, 2, 0, 0, 1, 0, 2])
    loss = loss_of(strategy, COUNTS)
    assert torch.isclose(loss(logits, F.one_hot(y, 3).float()), loss(logits, y), atol=1e-6)


@pytest.mark.parametrize("strategy", LINEAR_IN_TARGET)
def test_a_mixed_target_gives_the_mixed_loss(strategy: str):
    g = torch.Generator().manual_seed(3)
    logits, a, b, lam = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1] * 6), 0.7
    loss = loss_of(strategy, COUNTS)
    mixed = lam * F.one_hot(a, 3).float() + (1 - lam) * F.one_hot(b, 3).float()  # what mixup makes
    assert torch.isclose(loss(logits, mixed), lam * loss(logits, a) + (1 - lam) * loss(logits, b), atol=1e-6)


def test_soft_targets_by_hand():
    q = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    plain = (ce([1, 0, -1], [0.7, 0.3, 0]) + ce([0.5, 0.5, 2], [0, 0.4, 0.6])) / 2
    assert loss_of("none", COUNTS)(LOGITS, q).item() == pytest.approx(plain, rel=1e-6)
    assert torch.isclose(loss_of("none", COUNTS)(LOGITS, q), F.cross_entropy(LOGITS, q), atol=1e-6)  # torch's too
    # Weighted: each class's share weighed by its weight, normalised by the batch's total weight.
    w = inverse_frequency_weights(COUNTS).tolist()
    wq = [[wc * qc for wc, qc in zip(w, row, strict=True)] for row in q.tolist()]
    num = ce([1, 0, -1], wq[0]) + ce([0.5, 0.5, 2], wq[1])
    assert loss_of("weighted_loss", COUNTS)(LOGITS, q).item() == pytest.approx(num / sum(map(sum, wq)), rel=1e-6)
    # Logit-adjusted: the same soft cross-entropy on the shifted logits.
    shifted = LOGITS + log_prior(COUNTS)
    assert torch.isclose(loss_of("logit_adjusted", COUNTS)(LOGITS, q), F.cross_entropy(shifted, q), atol=1e-6)


# --- classes with no train images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_classes_give_finite_losses_and_gradients(strategy: str):
    counts = [50, 5, 0]
    logits = torch.randn(4, 3, requires_grad=True)
    for target in (torch.tensor([0, 1, 0, 1]), torch.tensor([[0.5, 0.5, 0.0]] * 4)):
        loss = loss_of(strategy, counts)(logits, target)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), strategy
    adjustment = prediction_adjustment(strategy, counts, 1.0)
    assert adjustment is None or torch.isfinite(adjustment).all()


# --- decisions move toward rare classes ---------------------------------------------------------------------------


@functools.cache
def fit_and_predict(strategy: str) -> tuple[float, float]:
    """(recall of the rare class, balanced accuracy) of a 1-feature linear classifier fit with the strategy's loss on
    900 common images (feature ~ N(0, 1)) and 100 rare ones (~ N(2, 1)), then scored on both classes evenly."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(900, 1, generator=g), torch.randn(100, 1, generator=g) + 2])
    y = torch.cat([torch.zeros(900, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    counts = [900, 100]
    model = torch.nn.Linear(1, 2)
    torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
    loss_fn = loss_of(strategy, counts)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small run ~10x slower when spread over busy cores
    try:
        for _ in range(300):  # full batch: close to the loss's own optimum, no sampling noise
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    test_x = torch.cat([torch.randn(2000, 1, generator=g), torch.randn(2000, 1, generator=g) + 2])
    test_y = torch.cat([torch.zeros(2000, dtype=torch.long), torch.ones(2000, dtype=torch.long)])
    with torch.no_grad():
        logits = model(test_x)
    adjustment = prediction_adjustment(strategy, counts, 1.0)
    if adjustment is not None:
        logits = logits + adjustment
    metrics, confusion = score(logits.softmax(1), test_y)
    return float(confusion[1, 1] / confusion[1].sum()), metrics["balanced_accuracy"]


@pytest.mark.parametrize(
    "strategy", ["logit_adjusted", "posthoc", "balanced_softmax", "class_balanced", "weighted_loss"]
)
def test_rebalancing_strategies_move_decisions_toward_the_rare_class(strategy: str):
    plain_recall, plain_balanced = fit_and_predict("none")
    recall, balanced = fit_and_predict(strategy)
    # Cross-entropy puts the boundary near x = 1 + ln(9) / 2 = 2.1 (rare recall ~0.46); a balanced one near 1 (~0.84).
    assert plain_recall < 0.6 and recall > plain_recall + 0.2
    assert balanced > plain_balanced + 0.05


# --- posthoc: validation and the Predictor answer with the adjusted logits ---------------------------------------


@functools.cache
def constant_classifier(strategy: str, tau: float = 1.0) -> Classifier:
    """A real tiny classifier of two classes, 990 and 10 train images, whose head ignores the image and says
    common by one logit: logits (1, 0) for every input. Shared by the tests (cached): do not train it."""
    module = Classifier(
        "mobilenetv3_small_050",
        ["common", "rare"],
        task="viewpoint",
        class_counts=[990, 10],
        imbalance=strategy,
        logit_tau=tau,
        img_size=32,
    ).eval()
    head = module.model.get_classifier()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([1.0, 0.0]))
    return module


def save_checkpoint(module: Classifier, path: Path) -> Path:
    """The two entries of a Lightning checkpoint that loading reads (as `Trainer.save_checkpoint` writes them)."""
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


IMAGES = [Image.new("RGB", (40, 30), c) for c in ("red", "gray", "navy")]


def test_posthoc_predictor_moves_top1_to_the_rare_class(tmp_path: Path):
    plain = Predictor.load(save_checkpoint(constant_classifier("none"), tmp_path / "none.ckpt"), device="cpu")
    posthoc = Predictor.load(save_checkpoint(constant_classifier("posthoc"), tmp_path / "ph.ckpt"), device="cpu")
    assert plain.logit_adjustment is None
    assert plain.logits(IMAGES).flatten().tolist() == pytest.approx([1.0, 0.0] * 3, abs=1e-6)
    assert plain.probs(IMAGES).argmax(1).tolist() == [0, 0, 0]
    # logits - log(prior): 1 - log(0.99) and 0 - log(0.01); the rare class now wins.
    expected = [1 - math.log(0.99), -math.log(0.01)]
    assert posthoc.logits(IMAGES).flatten().tolist() == pytest.approx(expected * 3, rel=1e-5)
    assert posthoc.probs(IMAGES).argmax(1).tolist() == [1, 1, 1]
    assert posthoc.top_k(posthoc.probs(IMAGES[:1]), 1)[0][0]["label"] == "rare"
    files = []
    for i, im in enumerate(IMAGES):
        im.save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    assert torch.allclose(posthoc.logits_paths(files), posthoc.logits(IMAGES))
    # What an export traces answers the same; the model's identity (its weights) is the plain network's.
    x = torch.stack([posthoc.preprocess(im) for im in IMAGES])
    with torch.no_grad():
        assert torch.allclose(posthoc.served_network()(x), posthoc.logits(IMAGES), atol=1e-6)
        assert posthoc.served_network() is not posthoc.model and plain.served_network() is plain.model
    # The registry's identity (evaluate hashes the served network): the same weights, adjusted or not, are two models.
    twin = Predictor(plain.model, dict(plain.hparams, imbalance="posthoc"), device="cpu")  # plain's weights, adjusted
    assert weights_sha256(twin.served_network()) != weights_sha256(plain.served_network())
    assert weights_sha256(plain.served_network()) == weights_sha256(plain.model)  # older models keep their identity


def test_posthoc_tau_scales_the_adjustment(tmp_path: Path):
    half = Predictor.load(save_checkpoint(constant_classifier("posthoc", tau=0.5), tmp_path / "h.ckpt"), device="cpu")
    expected = [1 - 0.5 * math.log(0.99), -0.5 * math.log(0.01)]
    assert half.logits(IMAGES[:1])[0].tolist() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "posthoc"])
def test_only_posthoc_adjusts_at_prediction(strategy: str):
    # The hyperparameters decide it: the network of the "none" classifier, with this strategy's checkpoint hparams.
    module = constant_classifier("none")
    predictor = Predictor(module.model, dict(module.hparams, imbalance=strategy), device="cpu")
    assert predictor.logit_adjustment is None
    assert predictor.logits(IMAGES[:1])[0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)


def test_an_older_checkpoint_without_tau_predicts_unadjusted(tmp_path: Path):
    module = constant_classifier("none")
    hp = {k: v for k, v in module.hparams.items() if k not in ("logit_tau", "cb_beta", "imbalance_smoothing")}
    torch.save({"hyper_parameters": hp, "state_dict": module.state_dict()}, tmp_path / "old.ckpt")
    assert Predictor.load(tmp_path / "old.ckpt", device="cpu").logits(IMAGES[:1]).argmax(1).tolist() == [0]


@pytest.mark.parametrize(("strategy", "top1"), [("none", 0.0), ("posthoc", 1.0)])
def test_posthoc_validation_scores_the_adjusted_logits(strategy: str, top1: float):
    module = constant_classifier(strategy)
    module.val_metrics.reset()
    x, y = torch.zeros(4, 3, 32, 32), torch.ones(4, dtype=torch.long)  # every image is of the rare class
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # self.log outside a Trainer only warns
        module.validation_step((x, y), 0)
    assert module.val_metrics.compute()["top1"] == top1
    module.val_metrics.reset()


# --- every new strategy trains, checkpoints, loads and predicts ----------------------------------------------------

# posthoc, whose checkpoint changes prediction, in the default run; the other new strategies (~5-30 s of training
# each on a busy 2-core machine) with `make test-slow`.
NEW_STRATEGIES = [
    "posthoc",
    *(pytest.param(s, marks=pytest.mark.slow) for s in ("logit_adjusted", "balanced_softmax", "class_balanced")),
    pytest.param("label_smoothing", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def viewpoint_training(prepared, tmp_path_factory):
    """Trains viewpoint (long-tailed, 5 classes) on the session's prepared sample for one epoch with a strategy, by
    the train stage's own module and data code and a Lightning Trainer (no MLflow), and checkpoints it:
    `train(strategy) -> (checkpoint, test image paths)`."""
    import lightning as L

    s = settings.parse(prepared)
    task = s.tasks["viewpoint"]
    rows, class_names, _ = train.task_rows(s, task)
    counts = class_counts(rows.loc[rows["split"] == "train", "target"], len(class_names))
    assert min(counts) < max(counts) / 2  # long-tailed, or the strategies would not differ
    test_paths = rows.loc[rows["split"] == "test", tasks.IMAGE_COLUMN].tolist()
    root = tmp_path_factory.mktemp("imbalance")

    def run(strategy: str) -> tuple[Path, list[str]]:
        s_ = dataclasses.replace(s, imbalance=dataclasses.replace(s.imbalance, strategy=strategy))
        module = train.build_classifier(s_, task, class_names, counts)
        preprocess = Preprocess(s.backbone.img_size, module.hparams.mean, module.hparams.std)
        data = TaskDataModule(rows, len(class_names), preprocess, s.train.batch_size, 0, False, s.seed)
        trainer = L.Trainer(
            max_epochs=1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, datamodule=data)
        assert torch.isfinite(trainer.callback_metrics["val_loss"])
        trainer.save_checkpoint(root / f"{strategy}.ckpt")
        return root / f"{strategy}.ckpt", test_paths

    return run


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_a_checkpoint_of_each_new_strategy_loads_and_predicts(viewpoint_training, strategy: str):
    checkpoint, test_paths = viewpoint_training(strategy)
    predictor = Predictor.load(checkpoint, device="cpu")
    assert predictor.hparams["imbalance"] == strategy and predictor.task == "viewpoint"
    logits = predictor.logits_paths(test_paths)
    assert logits.shape == (len(test_paths), 5) and torch.isfinite(logits).all()
    # The Lightning module rebuilds from the checkpoint alone (its loss and buffers included) ...
    module = load_classifier(checkpoint)
    images = torch.stack([predictor.preprocess(load_rgb(p)) for p in test_paths])
    with torch.no_grad():
        raw = module(images)
    # ... and the Predictor answers with its logits, shifted by -log(prior) only for posthoc.
    expected = raw - log_prior(module.hparams.class_counts) if strategy == "posthoc" else raw
    assert torch.allclose(logits, expected, atol=1e-4)
