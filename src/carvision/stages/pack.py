"""Pack: each task's split manifest rows as LitData optimised shards, for training to stream (data.format: litdata).

python -m carvision.stages.pack --task make_model   # one task; every task of the config when --task is not given
dvc repro pipelines/pack/dvc.yaml                    # the same as DVC stages, kept out of the default `dvc repro`

Writes <data.packed_uri or paths.packed>/<task>/{train,val,test}/ (LitData chunks and index.json) and pack.json: the
label map, the manifest's sha256 (training refuses shards packed from another manifest), rows per split, the rows
dropped with their reasons, chunk_bytes. A sample is the crop file's own bytes, its class index and its image_id, in
manifest order: training decodes the bytes with the files path's own code, so both formats give identical pixels.

Atomic. A local pack is built in a staging folder beside its target and swapped in whole; the next run removes the
staging folder of a killed one. An s3:// pack is written in place, pack.json deleted first and uploaded last: a pack
cut short has none, and training refuses it until a run completes. paths.packed/<task>/pack.json holds the record
wherever the shards went (what DVC tracks).
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import litdata
import pandas as pd
from omegaconf import DictConfig

from carvision import settings, tasks
from carvision.atomic import atomic_dir, write_json
from carvision.config import load_params, task_argument
from carvision.images import ImageRejected, decode, read_image_bytes
from carvision.parallel import die_with_parent, resolve_workers
from carvision.preprocess import LOAD_MAX_PIXELS
from carvision.safe_names import safe_name
from carvision.settings import Settings, TaskSettings
from carvision.tasks import IMAGE_COLUMN
from carvision.tracking import file_sha256
from carvision.training.data import (
    PACK_FILE,
    SPLITS,
    is_uri,
    packed_location,
    s3_bucket_key,
    s3_client,
    task_rows,
)

SAMPLE = {
    "image": "the crop file's bytes, as the crop stage wrote them",
    "target": "class index in label_map",
    "image_id": "the manifest's image_id, UTF-8 bytes",
}


class PackSample:
    """optimize's fn: a row's position -> its sample, or None for a row whose file cannot be read or decoded (the
    reason is appended to <drop_dir>/<worker pid>.jsonl: optimize's workers are separate processes)."""

    def __init__(self, rows: pd.DataFrame, drop_dir: Path) -> None:
        self.image_ids = rows["image_id"].astype(str).tolist()
        self.paths = rows[IMAGE_COLUMN].astype(str).tolist()
        self.targets = [int(t) for t in rows["target"]]  # Python ints: LitData's int serializer skips numpy's
        self.drop_dir, self.parent_pid, self.armed_pid = str(drop_dir), os.getpid(), os.getpid()

    def __call__(self, i: int) -> dict | None:
        if self.armed_pid != os.getpid():  # first item in this worker: it must not outlive a killed pack
            die_with_parent(self.parent_pid)
            self.armed_pid = os.getpid()
        try:
            data = read_image_bytes(self.paths[i])
            # The cheapest full check: a 1/8-scale JPEG decode still reads every scan, so a truncated or corrupt
            # file is caught here rather than in the middle of a training epoch.
            decode(data, max_pixels=LOAD_MAX_PIXELS, min_side=1)
        except ImageRejected as e:
            with open(os.path.join(self.drop_dir, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"position": i, "drop_reason": e.reason, "drop_detail": e.detail}) + "\n")
            return None
        return {"image": data, "target": self.targets[i], "image_id": self.image_ids[i].encode("utf-8")}


@contextlib.contextmanager
def confined_optimize(scratch: Path) -> Iterator[None]:
    """Keeps optimize's process-wide side effects inside this run: its chunk caches, which it empties before it
    starts (the default ones are shared by every optimize on the machine), go to `scratch`; the multiprocessing
    start method and SIGINT handler it sets are restored; its chatter on stdout is held back and shown only if it
    fails (its progress bar, on stderr, stays)."""
    env = {"DATA_OPTIMIZER_CACHE_FOLDER": scratch / "chunks", "DATA_OPTIMIZER_DATA_CACHE_FOLDER": scratch / "data"}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_method, saved_sigint = multiprocessing.get_start_method(allow_none=True), signal.getsignal(signal.SIGINT)
    chatter = io.StringIO()
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        with contextlib.redirect_stdout(chatter):
            yield
    except BaseException:
        sys.stderr.write(chatter.getvalue())
        raise
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        multiprocessing.set_start_method(saved_method, force=True)
        signal.signal(signal.SIGINT, saved_sigint)


def write_split(rows: pd.DataFrame, out: str, scratch: Path, chunk_bytes: int, workers: int) -> list[dict]:
    """Writes `rows` (in their order) as shards into `out` (a folder or URI); the dropped rows' positions and reasons.

    keep_data_ordered and no reordering: each worker packs a contiguous slice, and the index lists the slices in
    order, so the stream's order is the manifest's. fork: the workers start at once, with the rows in memory.
    """
    drop_dir = scratch / "drops"
    drop_dir.mkdir(parents=True, exist_ok=True)
    with confined_optimize(scratch):
        litdata.optimize(
            PackSample(rows, drop_dir),
            list(range(len(rows))),
            output_dir=out,
            chunk_bytes=chunk_bytes,
            num_workers=max(1, min(workers, len(rows))),
            start_method="fork",
            reorder_files=False,
            keep_data_ordered=True,
        )
    drops = [json.loads(line) for f in sorted(drop_dir.glob("*.jsonl")) for line in f.read_text().splitlines()]
    shutil.rmtree(drop_dir)
    return sorted(drops, key=lambda d: d["position"])


def clear_remote(location: str) -> None:
    """Deletes a remote pack: its pack.json first, so that a run killed part-way leaves a pack training refuses."""
    client = s3_client()
    bucket, key = s3_bucket_key(location)
    client.delete_object(Bucket=bucket, Key=f"{key}/{PACK_FILE}")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/"):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects})


@contextlib.contextmanager
def shard_folder(location: str, home: Path, staging: Path) -> Iterator[Path | None]:
    """Where the shards are built: the staging folder of `home` (paths.packed/<task>), another local folder's own
    staging folder (data.packed_uri a folder), or None: written in place, under an s3:// URI."""
    if is_uri(location):
        yield None
    elif Path(location).resolve() == home.resolve():
        yield staging
    else:
        with atomic_dir(location) as elsewhere:
            yield elsewhere


def pack_task(s: Settings, task: TaskSettings) -> dict:
    """Packs one task's train, val and test rows; its pack record (also written as pack.json)."""
    # Hashed before it is read: a manifest rewritten in between leaves a pack that training refuses as stale.
    manifest_sha256 = file_sha256(tasks.manifest_path(s.paths, task))
    rows, class_names, manifest_file = task_rows(s, task)
    location = packed_location(s, task)
    home = Path(s.paths.packed) / safe_name(task.name)  # pack.json always lands here too: what DVC tracks
    workers = resolve_workers(s.data.pack_workers)
    kept, dropped = {}, []
    with atomic_dir(home) as staging, shard_folder(location, home, staging) as shards:
        scratch = staging / ".scratch"
        if shards is None:
            clear_remote(location)
        for split in SPLITS:
            split_rows = rows[rows["split"] == split].reset_index(drop=True)
            out = f"{location}/{split}" if shards is None else str(shards / split)
            print(f"pack {task.name}/{split}: {len(split_rows)} rows -> {location}/{split}", flush=True)
            drops = write_split(split_rows, out, scratch, s.data.chunk_bytes, workers) if len(split_rows) else []
            for d in drops:
                row = split_rows.iloc[d.pop("position")]
                dropped.append({"image_id": row["image_id"], "split": split, "crop_path": row[IMAGE_COLUMN], **d})
            kept[split] = len(split_rows) - len(drops)
        shutil.rmtree(scratch, ignore_errors=True)
        if sum(kept.values()) + len(dropped) != len(rows):
            raise RuntimeError(f"pack {task.name}: {len(rows)} rows in, {kept} packed and {len(dropped)} dropped")
        record = {
            "task": task.name,
            "location": location,
            "manifest": str(manifest_file),
            "manifest_sha256": manifest_sha256,
            "label_map": class_names,
            "rows": kept,
            "dropped_by_reason": dict(Counter(d["drop_reason"] for d in dropped)),
            "dropped": dropped,
            "chunk_bytes": s.data.chunk_bytes,
            "sample": SAMPLE,
            "litdata": litdata.__version__,
        }
        write_json(staging / PACK_FILE, record)
        if shards is None:  # last: its presence marks a complete remote pack
            bucket, key = s3_bucket_key(f"{location}/{PACK_FILE}")
            s3_client().upload_file(str(staging / PACK_FILE), bucket, key)
        elif shards != staging:
            write_json(shards / PACK_FILE, record)
    drops = ", ".join(f"{k} {v}" for k, v in record["dropped_by_reason"].items()) or "none"
    print(f"pack {task.name}: {kept} rows packed into {location}; dropped: {drops}")
    return record


def main(cfg: DictConfig, task_name: str | None = None) -> dict[str, dict]:
    """Packs `task_name`, or every task of the config; their pack records by task."""
    s = settings.parse(cfg)
    names = [settings.task_named(s, task_name).name] if task_name else list(s.tasks)
    return {name: pack_task(s, s.tasks[name]) for name in names}


if __name__ == "__main__":
    main(load_params(), task_argument())
