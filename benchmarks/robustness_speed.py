"""The robustness analysis, as the study stages now run it against the full-pass reference, side by
side on the same trained runs: time per run and whether the accuracies are identical.

    python -m benchmarks.robustness_speed --runs results/benchmarks/runs.csv --limit 15

`mcrlib.analysis.robustness.robustness` encodes every modality once over the test split and, per
perturbation, only the modality it replaces (`perturbed_latent`). The reference here is what it
replaced: a whole forward pass of the model on every perturbed batch
(`perturbed_predictions`), for every modality and perturbation. Both run in one process, one CPU
thread (as the sweep's workers), alternating run by run, so a slow phase of the machine hits both.

The runs come from a study's runs table and the run cache (a run not in the cache is skipped, and
the count says so); `--limit` keeps the first N trained multimodal runs, one per method when
`--one-per-method`.
"""
from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from mcrlib.analysis.robustness import PERTURBATIONS, load_trained_model, perturbed_predictions, robustness
from mcrlib.config import RunConfig, from_dict
from mcrlib.data import load_dataset
from mcrlib.evaluation import head_metrics, predict
from mcrlib.methods import METHODS
from mcrlib.runs import load_result


def reference_robustness(result, kinds=PERTURBATIONS, *, seed: int = 0, data=None) -> pd.DataFrame:
    """The full-pass reference: the same rows as `robustness`, each perturbation a forward pass of
    every encoder on the perturbed batches."""
    config = from_dict(RunConfig, result.config)
    model, data = load_trained_model(result, data, "cpu")
    batch_size = max(256, config.train.batch_size)
    clean = predict(model, data, "test", batch_size, "cpu")
    rows = [{"missing": 0, "modality": "", "perturbation": "clean",
             "acc": head_metrics(clean, ["fused"], data.task)["acc_fused"]}]
    for position, modality in enumerate(model.modalities, start=1):
        for kind in kinds:
            preds = perturbed_predictions(model, data, "test", modality, kind, seed=seed, batch_size=batch_size)
            rows.append({"missing": position, "modality": modality, "perturbation": kind,
                         "acc": head_metrics(preds, ["fused"], data.task)["acc_fused"]})
    return pd.DataFrame(rows)


def trained_runs(runs_csv: Path, cache: Path, limit: int, one_per_method: bool) -> tuple[pd.DataFrame, int]:
    """(the rows to time, how many trained multimodal rows were not in the cache)."""
    runs = pd.read_csv(runs_csv)
    runs = runs[~runs["method"].str.startswith("unimodal-")]
    runs = runs[runs["method"].map(lambda m: METHODS[m].trains)]
    present = runs["run_key"].map(lambda key: (cache / key / "result.json").is_file())
    runs, missing = runs[present], int((~present).sum())
    if one_per_method:
        runs = runs.drop_duplicates("method")
    return runs.head(limit), missing


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/benchmarks/runs.csv"))
    parser.add_argument("--cache", type=Path, default=Path(".mcr-cache/runs"))
    parser.add_argument("--limit", type=int, default=15)
    parser.add_argument("--one-per-method", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, missing = trained_runs(args.runs, args.cache, args.limit, args.one_per_method)
    if rows.empty:
        raise SystemExit(f"no trained run of {args.runs} is in the run cache {args.cache} ({missing} missing): "
                         "run the study's stage first (dvc repro), or point --cache at its cache")
    data, data_key, out = None, None, []
    for i, row in enumerate(rows.itertuples(index=False)):
        result = load_result(args.cache / row.run_key)
        key = json.dumps(result.config["data"], sort_keys=True)
        if key != data_key:
            data, data_key = load_dataset(result.config["data"]["name"], result.config["data"]["params"]), key
        timed = {}
        # alternate which path goes first, so a drift of the machine's speed favours neither
        for name in (("reference", "encode once") if i % 2 == 0 else ("encode once", "reference")):
            # both on the CPU: `robustness` would otherwise follow the run's device (a GPU if any)
            fn = reference_robustness if name == "reference" else partial(robustness, device="cpu")
            start = time.perf_counter()
            timed[name] = (fn(result, seed=0, data=data), time.perf_counter() - start)
        out.append({"method": row.method, "reference s": timed["reference"][1], "encode once s": timed["encode once"][1],
                    "identical": timed["reference"][0].equals(timed["encode once"][0])})
    table = pd.DataFrame(out)
    table["ratio"] = table["reference s"] / table["encode once s"]
    print(table.round(3).to_string(index=False))
    print(f"\n{len(table)} runs ({missing} trained runs of the table not in the cache); total "
          f"{table['reference s'].sum():.1f} s reference, {table['encode once s'].sum():.1f} s encode once "
          f"({table['reference s'].sum() / table['encode once s'].sum():.2f}x); identical accuracies: "
          f"{int(table['identical'].sum())} of {len(table)}")


if __name__ == "__main__":
    main()
