"""Wall time of the quick synthetic study's runs: serial, local worker pool, and Ray.

    python -m benchmarks.sweep_wall                       # every ratio of params.yaml's synthetic section
    python -m benchmarks.sweep_wall --ratios 4.0          # one ratio (what results/scale-out/ holds)

Builds the final runs of params.yaml's `synthetic` section (its calibrated generator from
results/calibrate/chosen.json, every method at its configured params, no search) and trains
them three times through `mcrlib.sweep.run_all`, each time into a fresh, empty run cache:
in this process (`workers: 1`), in a local pool of `--workers` processes, and as tasks of a
local Ray instance started with `--workers` CPUs (MCR_RAY_ADDRESS=local). The three runs must
give identical test accuracies (the sweep's engine never changes a result); the script checks
that, then writes the wall times side by side (results/scale-out/sweep_wall.{json,md}).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


from mcrlib.atomic import write_text
from mcrlib.profiles import load_stage
from mcrlib.studies import synthetic
from mcrlib.sweep import RAY_ADDRESS_ENV, run_all

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "scale-out"


def study_configs(ratios: list[float] | None) -> list:
    study = synthetic.load_study(load_stage("quick", "synthetic", ROOT)["synthetic"])   # calibrated, as the stage runs
    return [c for labels, c in synthetic.study_runs(study) if ratios is None or labels["ratio"] in ratios]


def timed(configs, mode: str, workers: int) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory(prefix=f"sweep-{mode}-") as cache:
        if mode == "ray":
            os.environ[RAY_ADDRESS_ENV] = "local"
        start = time.perf_counter()
        try:
            results = run_all(configs, cache, workers=1 if mode == "serial" else workers, desc=mode)
        finally:
            os.environ.pop(RAY_ADDRESS_ENV, None)
        seconds = time.perf_counter() - start
        if mode == "ray":
            import ray
            ray.shutdown()
    return seconds, [r.metrics["test_acc_fused"] for r in results]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=float, nargs="*", help="u1/s values (default: every one)")
    parser.add_argument("--workers", type=int, default=2, help="pool processes and Ray CPUs")
    args = parser.parse_args(argv)
    configs = study_configs(args.ratios)
    rows, accuracies = [], {}
    for mode in ("serial", "pool", "ray"):
        seconds, accuracies[mode] = timed(configs, mode, args.workers)
        rows.append({"mode": mode, "workers": 1 if mode == "serial" else args.workers,
                     "runs": len(configs), "wall_s": round(seconds, 1)})
        print(rows[-1], flush=True)
    equal = accuracies["serial"] == accuracies["pool"] == accuracies["ray"]
    for row in rows:
        row["speedup_vs_serial"] = round(rows[0]["wall_s"] / row["wall_s"], 2)
    record = {"ratios": args.ratios or "all", "runs": len(configs), "results_equal_across_modes": equal,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    write_text(json.dumps(record, indent=1), OUT / "sweep_wall.json")
    table = "\n".join(f"| {r['mode']} | {r['workers']} | {r['runs']} | {r['wall_s']:.0f} | {r['speedup_vs_serial']:.2f}x |"
                      for r in rows)
    write_text(f"Quick synthetic study, ratios {record['ratios']}: {len(configs)} runs, each mode into an empty "
               f"run cache ({record['machine']}); identical test accuracies in all modes: {equal}.\n\n"
               "| engine | workers | runs | wall (s) | speed-up |\n|:--|--:|--:|--:|--:|\n" + table + "\n",
               OUT / "sweep_wall.md")
    if not equal:
        raise SystemExit("the three engines gave different results")


if __name__ == "__main__":
    main()
