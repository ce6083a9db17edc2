"""benchmarks/train_throughput.py's CI smoke run: the benchmark itself keeps working (its figures are read by people,
not here): 20 training steps of the tiny model on the CPU through both training paths, and the loader alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_train_throughput_benchmark_runs_all_three_ways_on_the_cpu(capsys):
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--smoke"])
    out = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in out  # nothing was downloaded
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| mobilenetv3_small_050")]
    assert len(rows) == 1
    model, px, precision, loader, plain, lightning, ratio, headroom = (c.strip() for c in rows[0])
    assert (px, precision) == ("64", "32-true")
    assert min(float(loader), float(plain), float(lightning)) > 0
    # the ratios are of the unrounded medians; the rates are printed rounded to whole images/s
    assert float(ratio) == pytest.approx(float(lightning) / float(plain), rel=0.02)
    assert float(headroom) == pytest.approx(float(loader) / float(lightning), rel=0.02)
    assert "say nothing of the GPU figures" in out
