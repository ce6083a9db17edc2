"""Where the results of the last pipeline run are: metrics, the registered model, and how to look at them.

python -m carvision.summary            # `make demo` and `make evaluate` end with it
"""

from __future__ import annotations

import json
from pathlib import Path

from carvision.config import load_params


def main() -> None:
    cfg = load_params()
    reports = Path(cfg.paths.reports)
    metrics_file = reports / "evaluate" / "metrics.json"
    print("\n== carvision results ==")
    for stage in ("ingest", "clean", "crop", "split"):
        f = reports / stage / "report.json"
        if f.exists():
            r = json.loads(f.read_text())
            print(f"{stage:>8}: {r['rows_kept']:>6} of {r['rows_in']:>6} rows kept  ({f.parent}/drops.png)")
    if metrics_file.exists():
        m = json.loads(metrics_file.read_text())
        print(
            f"test metrics ({metrics_file}): top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f}, "
            f"balanced accuracy {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f} on {m['n_images']} images"
        )
        print(
            f"confusion matrix: {reports / 'evaluate' / 'confusion_matrix.png'}; "
            f"per-class accuracy: {reports / 'evaluate' / 'per_class_accuracy.csv'}"
        )
    from carvision.registry import champion_version
    from carvision.tracking import connect

    name, alias = cfg.evaluate.model_name, cfg.evaluate.champion_alias
    client = connect(cfg.mlflow.tracking_uri)
    versions = client.search_model_versions(f"name='{name}'")
    if versions:
        champ = getattr(champion_version(client, name, alias), "version", "none")
        print(
            f"registry ({cfg.mlflow.tracking_uri}): '{name}' has versions "
            f"{sorted(int(v.version) for v in versions)}; '{alias}' is version {champ}"
        )
    else:
        print(f"registry ({cfg.mlflow.tracking_uri}): no version of '{name}' yet (the gate decides)")
    print("open the MLflow UI with `make ui` (http://127.0.0.1:5000); compare DVC runs with `dvc metrics show`")


if __name__ == "__main__":
    main()
