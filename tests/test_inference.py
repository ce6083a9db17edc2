"""The inference library against the trained tiny models of every task: it gives the training path's logits,
loads the same model from a file or the registry, and the checkpoints are self-contained."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from carvision import settings, tasks
from carvision.inference import Predictor, read_checkpoint, weights_sha256
from carvision.preprocess import Preprocess, load_rgb
from carvision.stages import train
from carvision.tracking import connect
from carvision.training.data import TaskDataModule, class_counts
from carvision.training.module import Classifier, load_classifier
from conftest import TASKS


def checkpoint(cfg, task: str) -> Path:
    return Path(cfg.paths.models) / task / tasks.CHECKPOINT


@pytest.fixture(scope="module")
def make_model_test(trained_tasks):
    """(the make_model test rows, the logits the training code computes for them, the class names)."""
    s = settings.parse(trained_tasks)
    task = s.tasks["make_model"]
    # The DataModule exactly as stages/train.py builds it: its rows, and the preprocessing of a fresh module.
    rows, class_names, _ = train.task_rows(s, task)
    counts = class_counts(rows.loc[rows["split"] == "train", "target"], len(class_names))
    fresh = train.build_classifier(s, task, class_names, counts)
    data = TaskDataModule(
        rows,
        len(class_names),
        Preprocess(s.backbone.img_size, fresh.hparams.mean, fresh.hparams.std),
        batch_size=s.train.batch_size,
        num_workers=s.train.num_workers,
        balanced_sampling=s.imbalance.strategy == "weighted_sampler",
        seed=s.seed,
    )
    model = load_classifier(checkpoint(trained_tasks, "make_model"))
    with torch.no_grad():
        batches = list(data.test_dataloader())
        logits = torch.cat([model(x) for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    test = data.rows("test")
    assert targets.tolist() == test["target"].tolist()  # the loader kept the rows' order
    return test, logits, class_names


# --- parity with training ---------------------------------------------------------------------------------------


def test_predictor_gives_the_training_paths_logits(trained_tasks, make_model_test):
    test, expected, class_names = make_model_test
    assert len(test) > 10
    predictor = Predictor.load(checkpoint(trained_tasks, "make_model"), device="cpu", batch_size=7)
    assert predictor.class_names == class_names  # the label map of the data is the model's
    got = predictor.logits_paths(test[tasks.IMAGE_COLUMN].tolist())
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    # Decoded images (a service's input) go through the same preprocessing as files.
    images = [load_rgb(p) for p in test[tasks.IMAGE_COLUMN]]
    assert torch.allclose(predictor.logits(images), expected, atol=1e-5)
    assert torch.allclose(predictor.probs(images), expected.softmax(1), atol=1e-6)


def test_predictor_reads_photos_upright_and_in_any_mode(trained_tasks, make_model_test, tmp_path: Path):
    test, expected, _ = make_model_test
    predictor = Predictor.load(checkpoint(trained_tasks, "make_model"), device="cpu")
    upright = load_rgb(test[tasks.IMAGE_COLUMN].iloc[0])
    # The same pixels stored sideways with an EXIF orientation tag, as phones write them (PNG: lossless).
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = tmp_path / "sideways.png"
    upright.rotate(90, expand=True).save(sideways, exif=exif)
    assert torch.allclose(predictor.logits_paths([sideways]), expected[:1], atol=1e-5)
    # An RGBA image whose alpha is opaque is the same photo.
    rgba = upright.convert("RGBA")
    assert torch.allclose(predictor.logits([rgba]), expected[:1], atol=1e-5)


def test_predictor_loads_the_same_model_from_the_registry(trained_tasks, make_model_test):
    test, expected, _ = make_model_test
    uri = trained_tasks.mlflow.tracking_uri
    by_alias = Predictor.load("models:/car-classifier@champion", tracking_uri=uri, device="cpu")
    champion = connect(uri).get_model_version_by_alias("car-classifier", "champion")
    assert by_alias.version == str(champion.version) and by_alias.task == "make_model"
    paths = test[tasks.IMAGE_COLUMN].tolist()
    assert torch.allclose(by_alias.logits_paths(paths), expected, atol=1e-5)
    by_number = Predictor.load(f"models:/car-classifier/{champion.version}", tracking_uri=uri, device="cpu")
    assert torch.equal(by_number.logits_paths(paths[:4]), by_alias.logits_paths(paths[:4]))
    assert by_alias.describe() == {
        "task": "make_model",
        "source": "models:/car-classifier@champion",
        "version": str(champion.version),
        "classes": len(by_alias.class_names),
    }


def test_top_k_is_sorted_has_k_entries_and_matches_the_probabilities(trained_tasks, make_model_test):
    test, expected, class_names = make_model_test
    predictor = Predictor.load(checkpoint(trained_tasks, "make_model"), device="cpu")
    probs = expected.softmax(1)
    for k in (1, 3, 5):
        tops = predictor.top_k(probs, k)
        assert len(tops) == len(test)
        for row, top in zip(probs, tops, strict=True):
            assert len(top) == k
            ps = [t["prob"] for t in top]
            assert ps == sorted(ps, reverse=True)
            assert sum(ps) <= 1 + 1e-5
            assert len({t["label"] for t in top}) == k
            for t in top:
                assert t["prob"] == pytest.approx(float(row[class_names.index(t["label"])]), abs=1e-6)
            # The first is the arg-max: what top-1 accuracy counts.
            assert top[0]["label"] == class_names[int(row.argmax())]
    # More than there are classes: every class, once, and the probabilities sum to 1.
    (everything,) = predictor.top_k(probs[:1], 1000)
    assert sorted(t["label"] for t in everything) == sorted(class_names)
    assert sum(t["prob"] for t in everything) == pytest.approx(1, abs=1e-4)


def test_empty_input_gives_an_empty_answer(trained_tasks):
    predictor = Predictor.load(checkpoint(trained_tasks, "viewpoint"), device="cpu")
    assert predictor.logits_paths([]).shape == (0, 5)
    assert predictor.probs([]).shape == (0, 5)


# --- loading errors ---------------------------------------------------------------------------------------------


def test_missing_checkpoint_raises_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no model checkpoint at .*nowhere"):
        Predictor.load(tmp_path / "nowhere" / "model.ckpt")
    with pytest.raises(FileNotFoundError):
        Predictor.load(tmp_path)  # a folder is not a checkpoint


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("models:/car-classifier@nope", LookupError, "no version of 'car-classifier' holds alias 'nope'"),
        ("models:/no-such-model@champion", LookupError, "no version of 'no-such-model' holds alias 'champion'"),
        ("models:/car-classifier/99", LookupError, "no such model version"),
        ("models:/car-classifier", ValueError, "is not models:/<name>@<alias>"),
    ],
)
def test_unknown_registry_model_raises_a_clear_error(trained_tasks, uri, error, message):
    with pytest.raises(error, match=message):
        Predictor.load(uri, tracking_uri=trained_tasks.mlflow.tracking_uri)


# --- the checkpoint is self-contained ---------------------------------------------------------------------------


def _plain(value) -> bool:
    """Only values that need no code of ours (or Hydra's) to rebuild."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


@pytest.mark.parametrize("task", TASKS)
def test_checkpoint_of_every_task_reloads_without_hydra_and_carries_what_inference_needs(trained_tasks, task):
    s = settings.parse(trained_tasks)
    path = checkpoint(trained_tasks, task)
    # weights_only=True refuses any pickled object (a DictConfig, a dataclass): the file is plain data.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert _plain(ckpt["hyper_parameters"])

    model = load_classifier(path)
    hp = model.hparams
    labels = json.loads((path.parent / tasks.LABELS_FILE).read_text())
    assert hp.task == task
    assert model.class_names == labels
    assert hp.img_size == s.backbone.img_size == 32
    assert hp.positive_class == s.tasks[task].positive_class
    assert hp.threshold == s.filter.threshold
    if task == "viewpoint":
        assert labels == ["front", "front-side", "side", "back-side", "back"]
    if task == "car_filter":
        assert labels == ["no_car", "car"] and hp.positive_class == "car"
    # The backbone's own normalisation, as training resolved it.
    from timm.data import resolve_model_data_config

    data_cfg = resolve_model_data_config(model.model)
    assert tuple(hp.mean) == pytest.approx(data_cfg["mean"]) and tuple(hp.std) == pytest.approx(data_cfg["std"])

    # Lightning's own loader rebuilds the same model from the same file.
    again = Classifier.load_from_checkpoint(path, map_location="cpu").eval()
    assert again.hparams.task == task and again.class_names == labels
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x))
        assert model(x).shape == (3, len(labels))


@pytest.mark.parametrize("task", TASKS)
def test_weights_hash_is_the_models_identity(trained_tasks, task):
    path = checkpoint(trained_tasks, task)
    a, b = load_classifier(path), load_classifier(path)
    assert weights_sha256(a) == weights_sha256(b)
    # The memory layout (the model runs channels_last) is not part of the identity: the same numbers are one model.
    standard = copy.deepcopy(a).to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in standard.parameters())
    assert weights_sha256(standard) == weights_sha256(a)
    with torch.no_grad():
        first = next(iter(b.parameters()))
        first[(0,) * first.dim()] += 1e-3
    assert weights_sha256(a) != weights_sha256(b)
    # It is the identity the registry keeps, of the network that predicts: the registered version carries it.
    s = settings.parse(trained_tasks)
    mv = connect(trained_tasks.mlflow.tracking_uri).get_model_version_by_alias(s.tasks[task].registry_name, "champion")
    assert mv.tags["weights_sha256"] == weights_sha256(read_checkpoint(path)[0]) == weights_sha256(a.model)


def test_weights_hash_sees_dtype_and_buffers(trained_tasks):
    model = load_classifier(checkpoint(trained_tasks, "viewpoint"))
    base = weights_sha256(model)
    # BatchNorm running statistics are part of what the model computes, so part of its identity.
    buffers = [name for name, _ in model.named_buffers() if name.endswith("running_mean")]
    assert buffers
    changed = load_classifier(checkpoint(trained_tasks, "viewpoint"))
    with torch.no_grad():
        changed.get_buffer(buffers[0]).add_(1.0)
    assert weights_sha256(changed) != base
    assert weights_sha256(load_classifier(checkpoint(trained_tasks, "viewpoint")).double()) != base
