"""A replicate of the AV-Digits primary claims under other CPU kernels (issue 23's sensitivity check).

    ONEDNN_MAX_CPU_ISA=SSE41 python -m benchmarks.replicate_primary

Retrains, into its own run cache, every run the AV-Digits primary claims rest on: the benchmarks
section's unimodal models, Ensemble, joint training and MCR on all its (fold, seed) units, and the
ablations section's Tables 2-4 on AV-Digits, with the quick profile's recipe as the calibrate stage
chose it (results/calibrate/chosen.json: the replicate repeats the claims, not the choice).

The kernel settings come from the environment, read by torch at import (ONEDNN_MAX_CPU_ISA,
ATEN_CPU_CAPABILITY; at least one). They must change the arithmetic: the script computes a
fingerprint of a few operations (the ResNet's two kinds of convolution, a linear layer, a sum) in
a subprocess with and without the settings, refuses settings that leave all of them bit-identical
(they would repeat the main run), and records which ones they change. On this project's machine
(AVX2, no AVX-512, since December 2026):
  * ONEDNN_MAX_CPU_ISA=SSE41 (the default here): oneDNN's SSE4.1 convolution kernels, so every
    convolution of the ResNets rounds differently from its first step, while ATen's element-wise
    kernels, reductions and GEMMs stay native. A ResNet joint step costs about 1.3x the native
    one (benchmarks.cost: 69 against 53 ms, one thread).
  * ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41: also ATen's non-vectorised kernels
    (linear layers and sums round differently too), at about 4.5x the native cost per run (about
    1.5 min on 2 cores), which is why the first attempt (December 7, 25 runs) was given up for the above.
Either way every run diverges from the main run's after its first step, as on another CPU;
primary.md counts the runs whose test accuracy happens to equal the main run's.

Its own cache is the point: a run key covers code, config and data, not the kernels, so the
main cache would hand back the main run's results. The synthetic primary claims are not rerun
(cost); their p-values are the main run's, used only to complete the ten-claim Holm family, so
the replicate speaks for the AV-Digits primaries alone.

Writes, atomically, into --out (default results/other-runs/other-kernels-primary/):
  claims.csv   the replicate's AV-Digits claims (the report shows their verdicts as a
               sensitivity column: params.yaml, report.other_runs);
  primary.md   the primary claims side by side with the main run's, and which verdicts differ;
  run.json     the kernel settings and the operations they change, CPU, commit, wall time;
  benchmark_runs.csv, ablation_runs.csv   the replicate's runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from mcrlib.analysis import report, report_text
from mcrlib.atomic import atomic_path, write_text
from mcrlib.profiles import load_stage
from mcrlib.studies import ablations, benchmarks
from mcrlib.studies.benchmarks import resolve_datasets
from mcrlib.studies.grid import run_grid

ROOT = Path(__file__).resolve().parents[1]
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
PRIMARY_TABLES = ["table2_strategy", "table3_components", "table4_perturbation"]


# A few operations of the replicated runs, hashed: the ResNet's convolutions (one input channel,
# as its first layer, and eight), a linear layer, a sum. Run in a subprocess, because torch reads
# the kernel settings once, at import.
FINGERPRINT = """
import hashlib, json, torch
torch.manual_seed(0); torch.set_num_threads(1)
ops = {"conv 1->8": lambda: torch.nn.functional.conv2d(torch.randn(32, 1, 64, 33), torch.randn(8, 1, 3, 3), padding=1),
       "conv 8->8": lambda: torch.nn.functional.conv2d(torch.randn(32, 8, 32, 17), torch.randn(8, 8, 3, 3), padding=1),
       "linear": lambda: torch.randn(64, 512) @ torch.randn(512, 128),
       "sum": lambda: torch.randn(1000, 100).sum(0)}
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                  **{name: hashlib.md5(op().numpy().tobytes()).hexdigest() for name, op in ops.items()}}))
"""


def kernel_fingerprint(settings: dict[str, str]) -> dict[str, str]:
    """ATen's capability and a hash of each FINGERPRINT operation's result, in a fresh process
    under `settings` (the kernel variables; the others of this environment are removed)."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV} | settings
    out = subprocess.run([sys.executable, "-c", FINGERPRINT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def changed_operations(settings: dict[str, str]) -> list[str]:
    """The FINGERPRINT operations (and ATen's capability) whose result `settings` change on this
    CPU, against the CPU's own kernels: empty means a replicate would repeat the main run."""
    native, other = kernel_fingerprint({}), kernel_fingerprint(settings)
    return [name for name in native if native[name] != other[name]]


def benchmark_study(workers: int):
    """The benchmarks section as the quick profile runs it (calibrated), reduced to the runs the
    primary claims rest on: the Ensemble (its unimodal runs), joint training and MCR."""
    section = load_stage("quick", "benchmarks", ROOT)["benchmarks"]      # calibrated as the stage runs
    methods = ["ensemble", "joint", "mcr"]
    # only these methods' parameters and search grids (the study refuses parameters of a method
    # it does not run)
    search = section.get("search", {})
    section = {**section, "methods": methods, "workers": workers,
               "method_params": {k: v for k, v in section.get("method_params", {}).items() if k in methods},
               "search": {**search, "grid": {k: v for k, v in search.get("grid", {}).items() if k in methods}},
               "datasets": resolve_datasets(section["datasets"], ROOT)}
    return benchmarks.load_study(section)


def ablation_study(workers: int):
    """The ablations section's Tables 2-4 on AV-Digits (its synthetic entry aside)."""
    section = {k: v for k, v in load_stage("quick", "ablations", ROOT)["ablations"].items() if k != "cost"}
    datasets = {label: spec for label, spec in section["datasets"].items() if spec["name"] != "synthetic"}
    return ablations.load_study({**section, "datasets": resolve_datasets(datasets, ROOT), "tables": PRIMARY_TABLES,
                                 "workers": workers})


def benchmark_runs(cache: Path, workers: int) -> pd.DataFrame:
    runs, _ = benchmarks.run_study(benchmark_study(workers), cache)
    return runs


def ablation_runs(cache: Path, workers: int) -> pd.DataFrame:
    return ablations.run_study(ablation_study(workers), cache)


def replicate_claims(bench: pd.DataFrame, abl: pd.DataFrame, main_claims: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The replicate's claims, primary family Holm-adjusted as the report does, completed with the
    main run's synthetic primary rows (not rerun; see the module docstring)."""
    margins, primary = params.get("equivalence_margin", {}), params.get("primary", [])
    rows = report.benchmark_claims(bench, margins)[0] + report.ablation_claims(abl, margins)[0]
    claims = pd.DataFrame(rows)
    borrowed = main_claims[main_claims["id"].isin(primary) & ~main_claims["id"].isin(claims["id"])]
    claims = pd.concat([claims, borrowed[[c for c in claims.columns if c in borrowed]].assign(borrowed=True)],
                       ignore_index=True)
    claims, _ = report_text.finalise(claims, primary)
    return claims[claims["borrowed"] != True].drop(columns="borrowed")   # noqa: E712 (NaN for own rows)


def side_by_side(replicate: pd.DataFrame, main_claims: pd.DataFrame) -> pd.DataFrame:
    main = main_claims[main_claims["family"] == "primary (Holm)"].set_index("id")
    rep = replicate.set_index("id")
    rows = []
    for claim_id in main.index:
        if claim_id not in rep.index:
            continue
        m, r = main.loc[claim_id], rep.loc[claim_id]
        moved = m["verdict"] != r["verdict"]
        flip = {m["verdict"], r["verdict"]} == {"holds", "contradicted"}
        rows.append({"claim": claim_id, "main run": f"{m['verdict']} {m['95% interval']} (p_holm {m['p_holm']:.3f})",
                     "other-kernel replicate": f"{r['verdict']} {r['95% interval']} (p_holm {r['p_holm']:.3f})",
                     "differs": "FLIP holds/contradicted" if flip else ("moved" if moved else "same")})
    return pd.DataFrame(rows)


def runs_equal_to_main(bench: pd.DataFrame, abl: pd.DataFrame) -> tuple[int, int]:
    """(runs whose test accuracy equals the main run's, runs compared): the trained runs of the
    replicate matched to results/benchmarks/runs.csv and results/ablations/runs.csv by their unit
    and method (or table row). Many equal ones would mean the settings changed little."""
    same = total = 0
    for mine, path, keys in ((bench, "benchmarks", ["dataset", "fold", "seed", "method"]),
                             (abl, "ablations", ["dataset", "fold", "seed", "table", "variant"])):
        main_runs = pd.read_csv(ROOT / "results" / path / "runs.csv")
        keys = [k for k in keys if k in mine and k in main_runs]
        pairs = mine.merge(main_runs, on=keys, suffixes=("", "_main"))
        pairs = pairs[pairs["method"] != "ensemble"] if "method" in pairs else pairs
        same += int((pairs["test_acc"] == pairs["test_acc_main"]).sum())
        total += len(pairs)
    return same, total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "other-runs" / "other-kernels-primary")
    parser.add_argument("--cache", type=Path, default=ROOT / ".mcr-cache" / "replicate-onednn-sse41",
                        help="its own run cache (never the main one: a run key does not cover the kernels)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    settings = {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}
    if not settings:
        parser.error(f"set the kernel settings to replicate under ({' or '.join(KERNEL_ENV)}), "
                     "e.g. ONEDNN_MAX_CPU_ISA=SSE41")
    if args.cache.resolve() == (ROOT / ".mcr-cache" / "runs").resolve():
        parser.error("--cache must not be the main run cache: its runs were trained under other kernels")
    changed = changed_operations(settings)
    if not changed:
        parser.error(f"{' '.join(f'{k}={v}' for k, v in settings.items())} gives this CPU's own kernels (every "
                     "operation of the fingerprint bit-identical): the replicate would repeat the main run; "
                     "use ONEDNN_MAX_CPU_ISA=SSE41 (or add ATEN_CPU_CAPABILITY=default)")
    print(f"replicate under {settings}: these operations round differently from the native kernels: {changed}")
    params = load_stage("quick", "report", ROOT, calibrated=False)["report"]
    main_claims = pd.read_csv(ROOT / "results" / "report" / "claims.csv")
    start = time.perf_counter()
    bench = benchmark_runs(args.cache, args.workers)
    abl = ablation_runs(args.cache, args.workers)
    wall = time.perf_counter() - start
    claims = replicate_claims(bench, abl, main_claims, params)
    table = side_by_side(claims, main_claims)
    args.out.mkdir(parents=True, exist_ok=True)
    for frame, name in ((claims, "claims.csv"), (bench, "benchmark_runs.csv"), (abl, "ablation_runs.csv")):
        with atomic_path(args.out / name) as tmp:
            frame.to_csv(tmp, index=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    same, total = runs_equal_to_main(bench, abl)
    write_text(json.dumps({**settings, "operations_changed": changed, "cpu": platform.processor() or platform.machine(),
                           "commit": commit, "wall_s": round(wall, 1), "runs": len(bench) + len(abl),
                           "runs_with_the_main_runs_test_accuracy": same}, indent=1),
               args.out / "run.json")
    write_text("# The AV-Digits primary claims: the main run and a replicate under other kernels\n\n"
               f"Kernels {', '.join(f'{k}={v}' for k, v in settings.items())} (operations that round differently "
               f"from the native kernels: {', '.join(changed)}), commit {commit}, {len(bench) + len(abl)} runs in "
               f"{wall / 60:.1f} min; {same} of {total} trained runs have the main run's test accuracy to the digit. "
               "Holm over the ten primary claims (the synthetic ones from the main run, not rerun).\n\n"
               + table.to_markdown(index=False) + "\n", args.out / "primary.md")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
