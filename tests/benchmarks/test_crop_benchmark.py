"""benchmarks/crop.py's CI smoke run: the benchmark itself keeps working (its figures are read by people, not here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_crop_benchmark_runs_end_to_end_on_the_cpu(capsys):
    spec = importlib.util.spec_from_file_location("crop_benchmark", REPO / "benchmarks" / "crop.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--smoke"])
    out = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in out  # nothing was downloaded
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"decode", "model", "policy", "write", "sum of phases"} <= set(rows)
    assert "end to end, crop(method='detector')" in out
    assert "4 kept" in out  # every photo written (car-less ones whole), none lost
