"""data.format=litdata: streaming a task's packed shards gives the same batches as reading its crop files, and one
epoch of training from either gives the same weights ("trains the same as files")."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from litdata import StreamingDataset

from carvision import settings
from carvision.config import to_params_yaml
from carvision.preprocess import Preprocess
from carvision.settings import ConfigError
from carvision.stages import pack, train
from carvision.training.data import TaskDataModule, class_counts, open_pack, packed_location, task_rows
from carvision.training.module import load_classifier
from conftest import reuse_prepared

TASK = "make_model"
PRE = Preprocess(32, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def packed_cfg(prepared, tmp_path_factory: pytest.TempPathFactory):
    """The session's data packed for make_model in 100 kB chunks (several per split, written by 2 workers)."""
    root = tmp_path_factory.mktemp("litdata")
    cfg = reuse_prepared(
        prepared,
        root,
        [f"paths.packed={root / 'packed'}", "data.chunk_bytes=100000", "data.pack_workers=2", "train.epochs=1"],
    )
    pack.main(cfg, TASK)
    return cfg


def _modules(cfg, shuffle: bool, batch_size: int = 32) -> tuple[TaskDataModule, TaskDataModule, list]:
    """(files, litdata) DataModules of the task, alike but for their source; and the task's rows."""
    s = settings.parse(cfg)
    task = s.tasks[TASK]
    rows, names, _ = task_rows(s, task)
    files = TaskDataModule(rows, len(names), PRE, batch_size, 0, False, s.seed, pin_memory=False, shuffle=shuffle)
    litdata = TaskDataModule(
        rows, len(names), PRE, batch_size, 0, False, s.seed, pin_memory=False, shuffle=shuffle,
        packed=packed_location(s, task),
    )  # fmt: skip
    return files, litdata, rows


@pytest.mark.parametrize("split", ["val", "test", "train"])
def test_files_and_litdata_give_the_same_batches(packed_cfg, split: str):
    # Train: augmented (seeded), in manifest order (shuffle off), its last partial batch dropped by both.
    files, litdata, rows = _modules(packed_cfg, shuffle=False)
    loaders = {"val": "val_dataloader", "test": "test_dataloader", "train": "train_dataloader"}[split]
    a, b = list(getattr(files, loaders)()), list(getattr(litdata, loaders)())
    n = int((rows["split"] == split).sum())
    assert len(a) == len(b) == (n // 32 if split == "train" else -(-n // 32)) and len(a) > 1
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert xa.shape == xb.shape and torch.equal(xa, xb)  # identical pixels: the same bytes, the same decode
        assert torch.equal(ya, yb)


def test_a_shuffled_epoch_streams_every_train_image_once_in_a_new_order(packed_cfg):
    s = settings.parse(packed_cfg)
    rows, _, _ = task_rows(s, s.tasks[TASK])
    train_ids = rows.loc[rows["split"] == "train", "image_id"].tolist()
    # The train split as TaskDataModule streams it (shuffle, seed), read without decoding to see the image ids.
    stream = StreamingDataset(f"{packed_location(s, s.tasks[TASK])}/train", shuffle=True, seed=s.seed)
    epochs = []
    for epoch in (1, 2):
        stream.set_epoch(epoch)
        epochs.append([x["image_id"].decode() for x in stream])
    for ids in epochs:
        assert Counter(ids) == Counter(train_ids)  # the same multiset: every image once
    assert epochs[0] != train_ids and epochs[1] != epochs[0]
    # The DataModule's shuffled loader: as many batches as the files path's, targets drawn from the train split.
    files, litdata, _ = _modules(packed_cfg, shuffle=True)
    streamed = torch.cat([y for _, y in litdata.train_dataloader()])
    assert len(streamed) == len(torch.cat([y for _, y in files.train_dataloader()])) == len(train_ids) // 32 * 32
    counts = Counter(rows.loc[rows["split"] == "train", "target"].tolist())
    assert all(counts[k] >= v for k, v in Counter(streamed.tolist()).items())


def _fit(cfg, data_format: str, root: Path) -> tuple[dict, dict]:
    """(weights, validation metrics) after one epoch, unshuffled, built as the train stage builds it (its
    classifier, data module and trainer) but without MLflow (see the slow test for the whole stage)."""
    cfg = cfg.copy()
    cfg.data.format, cfg.train.shuffle = data_format, False
    s = settings.parse(cfg)
    task = s.tasks[TASK]
    backbone, _, t = s.training_of(task)
    L.seed_everything(s.seed, workers=True)
    rows, names, manifest_file = task_rows(s, task)
    module = train.build_classifier(
        s, task, names, class_counts(rows.loc[rows["split"] == "train", "target"], len(names))
    )
    pre = Preprocess(backbone.img_size, module.hparams.mean, module.hparams.std)
    packed = packed_location(s, task) if data_format == "litdata" else None
    if packed is not None:
        open_pack(packed, TASK, manifest_file, names)
    data = TaskDataModule(rows, len(names), pre, t.batch_size, 0, False, s.seed, shuffle=t.shuffle, packed=packed)
    trainer, _ = train.build_trainer(s, t, f"val_{task.monitor}", False, root / data_format)
    trainer.fit(module, datamodule=data)
    return module.state_dict(), {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_one_epoch_from_litdata_trains_the_same_weights_as_from_files(packed_cfg, tmp_path):
    files_weights, files_metrics = _fit(packed_cfg, "files", tmp_path)
    litdata_weights, litdata_metrics = _fit(packed_cfg, "litdata", tmp_path)
    assert files_weights.keys() == litdata_weights.keys()
    for name, w in files_weights.items():
        assert torch.allclose(w.float(), litdata_weights[name].float(), atol=1e-6), name
    assert "val_top1" in files_metrics and files_metrics == pytest.approx(litdata_metrics, abs=1e-6)
    fresh = train.build_classifier(*_classifier_args(packed_cfg)).state_dict()
    assert any(not torch.equal(fresh[k], w) for k, w in files_weights.items())  # it did train


def _classifier_args(cfg) -> tuple:
    s = settings.parse(cfg)
    rows, names, _ = task_rows(s, s.tasks[TASK])
    return s, s.tasks[TASK], names, class_counts(rows.loc[rows["split"] == "train", "target"], len(names))


@pytest.mark.slow
def test_the_train_stage_from_litdata_trains_and_logs_the_same_model_as_from_files(packed_cfg, tmp_path):
    def stage(data_format: str) -> tuple[dict, dict]:
        cfg = packed_cfg.copy()
        cfg.data.format, cfg.train.shuffle = data_format, False
        cfg.paths.models, cfg.train.state_dir = str(tmp_path / data_format), str(tmp_path / f"{data_format}-state")
        result = train.main(cfg, TASK)
        run = json.loads((Path(cfg.paths.models) / TASK / "run.json").read_text())
        return load_classifier(result.checkpoint).model.state_dict(), run

    (files_weights, files_run), (litdata_weights, litdata_run) = stage("files"), stage("litdata")
    for name, w in files_weights.items():
        assert torch.allclose(w.float(), litdata_weights[name].float(), atol=1e-6), name
    assert files_run["optimizer_steps"] == litdata_run["optimizer_steps"] > 0
    assert files_run["best_val"] == pytest.approx(litdata_run["best_val"], abs=1e-6)
    assert files_run["run_id"] != litdata_run["run_id"]


def test_weighted_sampler_is_refused_with_litdata_naming_the_loss_based_strategies():
    from carvision.config import compose
    from conftest import CONF

    with pytest.raises(ConfigError, match=r"^imbalance\.strategy: weighted_sampler .*weighted_loss, class_balanced"):
        settings.parse(compose(["data.format=litdata", "imbalance=weighted_sampler"], conf_dir=CONF))
    settings.parse(compose(["data.format=files", "imbalance=weighted_sampler"], conf_dir=CONF))
    settings.parse(compose(["data.format=litdata", "imbalance=balanced_softmax"], conf_dir=CONF))
    with pytest.raises(ConfigError, match=r"^data\.packed_uri: 'gs://b/p': .*under s3://"):
        settings.parse(compose(["data.packed_uri=gs://b/p"], conf_dir=CONF))


@pytest.mark.slow  # two training processes, one killed: ~1 min on 2 cores
def test_a_litdata_run_killed_mid_epoch_resumes_to_the_same_steps(prepared, tmp_path):
    """The resume checkpoints carry the StreamingDataLoader's position (Lightning saves a stateful loader's
    state_dict), so the resumed run continues the epoch in the stream and ends on the uninterrupted step count."""
    from test_resume import BATCH, EPOCHS, config, kill_mid_epoch, runs_of, steps_per_epoch

    cfg = config(prepared, tmp_path)
    cfg.paths.packed, cfg.data.format = str(tmp_path / "packed"), "litdata"
    pack.main(cfg, "viewpoint")
    per_epoch = steps_per_epoch(cfg)
    killed_at = kill_mid_epoch(cfg, tmp_path, per_epoch)
    assert per_epoch < killed_at < EPOCHS * per_epoch
    (last,) = (tmp_path / "state").glob("*/last.ckpt")
    checkpoint = torch.load(last, weights_only=True)  # the newest: written at or after the step it was killed at
    position = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    in_epoch = checkpoint["global_step"] % per_epoch
    assert position["num_samples_yielded"] == (in_epoch or per_epoch) * BATCH, position  # where the stream resumes
    result = train.main(cfg)
    done = json.loads((Path(cfg.paths.models) / "viewpoint" / "run.json").read_text())
    assert done["optimizer_steps"] == EPOCHS * per_epoch
    _, runs = runs_of(cfg)
    assert [r.info.run_id for r in runs] == [result.run_id] and runs[0].info.status == "FINISHED"


@pytest.mark.slow  # two DDP processes (gloo, CPU) started by Lightning: ~1 min on 2 cores
def test_ddp_ranks_stream_their_own_shares_of_the_shards(packed_cfg, tmp_path):
    cfg = packed_cfg.copy()
    cfg.data.format, cfg.train.epochs = "litdata", 2
    cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy = "cpu", 2, "ddp"
    cfg.paths.models, cfg.train.state_dir = str(tmp_path / "models"), str(tmp_path / "state")
    (tmp_path / "params.yaml").write_text(to_params_yaml(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "carvision.stages.train", "--task", TASK],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = settings.parse(cfg)
    rows, _, _ = task_rows(s, s.tasks[TASK])
    n_train = int((rows["split"] == "train").sum())
    run = json.loads((tmp_path / "models" / TASK / "run.json").read_text())
    # LitData splits the whole batches between the ranks: each steps n_train // 32 // 2 times an epoch (on this data
    # as many as a DistributedSampler's ceil(n_train / 2) // 32 on the files path).
    assert run["optimizer_steps"] == 2 * (n_train // 32 // 2) == 2 * (-(-n_train // 2) // 32)
