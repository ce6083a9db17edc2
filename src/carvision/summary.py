"""Where the results of the last pipeline run are: stage counts, each task's metrics and registered model.

python -m carvision.summary            # `make demo` and `make evaluate` end with it
"""

from __future__ import annotations

import json
from pathlib import Path

from carvision import settings
from carvision.config import load_params


def main() -> None:
    s = settings.parse(load_params())
    reports = Path(s.paths.reports)
    print("\n== carvision results ==")
    for stage in ("ingest", "clean", "filter", "crop", "split", "filterset"):
        f = reports / stage / "report.json"
        if f.exists():
            r = json.loads(f.read_text())
            print(f"{stage:>9}: {r['rows_kept']:>6} of {r['rows_in']:>6} rows kept  ({f.parent}/drops.png)")
            if "truth" in r:
                t = r["truth"]
                print(
                    f"{'':>11}the filter dropped {t['non_car_photos_dropped_share']:.1%} of {t['non_car_photos']} "
                    f"non-car photos and {t['car_photos_dropped_share']:.1%} of {t['car_photos']} car photos"
                )
    from carvision.registry import champion_version
    from carvision.tracking import connect

    client = connect(s.mlflow.tracking_uri)
    alias = s.evaluate.champion_alias
    for task in s.tasks.values():
        metrics_file = reports / "evaluate" / task.name / "metrics.json"
        if metrics_file.exists():
            m = json.loads(metrics_file.read_text())
            numbers = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k != "n_images")
            print(f"{task.name}: {numbers} on {m['n_images']} test images ({metrics_file.parent}/)")
        versions = client.search_model_versions(f"name='{task.registry_name}'")
        champ = getattr(champion_version(client, task.registry_name, alias), "version", "none")
        listed = sorted(int(v.version) for v in versions)
        listed = listed or "none (the gate decides)"
        print(f"  registry: '{task.registry_name}' versions {listed}; '{alias}' is {champ}")
    print(f"registry store: {s.mlflow.tracking_uri}. Open the MLflow UI with `make ui` (http://127.0.0.1:5000)")
    print("predict: `carvision predict PHOTO.jpg` (filter, make/model top-5, viewpoint)")
    print("compare runs: `dvc metrics show`, `dvc plots show`")


if __name__ == "__main__":
    main()
