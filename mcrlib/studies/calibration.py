"""Benchmark calibration: choose each benchmark's recipe because it *contains the problem* the paper
is about (joint training below an ensemble of unimodal models), judged only from unimodal, ensemble
and joint-training runs, never from a balancing method's score.

Every setting of a grid declared in params.yaml (before any of it runs) is trained with the
benchmark's own model, budget and folds, on the *selection seeds* (`seeds`: disjoint from the
studies' seeds, so that choosing the setting does not inflate the premise the benchmarks section
then tests on fresh seeds: the confirmation). Without selection seeds a grid runs on the study's
own seeds and its chosen runs are the study's (shared through the run cache). The criterion and
the choice rule are fixed here, and printed with the results:

AV-Digits (a real benchmark), on the paired (fold, seed) units (folds as fixed blocks, seeds within
them, where a fold has several seeds: mcrlib.analysis.inference.design_estimate):
  (a) each unimodal accuracy within [unimodal_min, unimodal_max]: neither near chance nor ceiling;
  (b) the Ensemble beats the best unimodal model by at least `ensemble_gain_min`: complementary;
  (c) joint training below the Ensemble by at least `joint_gap_min` (an effect-size floor), the
      paired 95% interval excluding zero: competition worth testing a balancing method on.
Synthetic generator, per seed (each seed redraws the data), between the lowest and highest u1/s:
  (a) each unimodal accuracy at both ratios at least `synthetic_unimodal_min`: both informative;
  (c) joint training falls faster than the Ensemble: the paired interval of
      (joint drop - ensemble drop) excludes zero above it.
Choice: the first setting, in the grid's declared order, that meets every criterion; if none does,
the setting that meets the most, ties broken by the largest mean (Ensemble - joint) gap, and the
report says that no setting met the criterion.

This module builds the grids as params sections (plain mappings) and judges their runs; the caller
(notebooks/00_calibration.py) builds the studies from them with the benchmarks and synthetic
modules, so no study module imports another. The choice is written to chosen.json, which
mcrlib.profiles.load_stage applies to every `calibrated: true` entry when a stage loads its params.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mcrlib.analysis.inference import compare
from mcrlib.analysis.paired import t_interval
from mcrlib.config import check, from_dict
from mcrlib.profiles import CHOSEN_FILE  # noqa: F401  (where the calibrate stage writes its choice)


@dataclass(frozen=True)
class Criterion:
    unimodal_min: float = 0.5
    unimodal_max: float = 0.8
    ensemble_gain_min: float = 0.05
    joint_gap_min: float = 0.0              # (c) joint at least this far below the Ensemble
    synthetic_unimodal_min: float = 0.3     # 5 classes: chance is 0.2
    confidence: float = 0.95

    def __post_init__(self):
        check(0 <= self.unimodal_min < self.unimodal_max <= 1, "calibrate.criterion.unimodal_min/max",
              (self.unimodal_min, self.unimodal_max), "0 <= min < max <= 1")
        check(0 < self.confidence < 1, "calibrate.criterion.confidence", self.confidence, "a level in (0, 1)")


@dataclass(frozen=True)
class CalibrationConfig:
    profile: str = "smoke"
    criterion: Criterion = field(default_factory=Criterion)
    # benchmarks dataset name (e.g. avdigits) -> {knob: [values]}: load-time data params
    grids: dict = field(default_factory=dict)
    # synthetic generator knobs -> [values] (SyntheticConfig keys), at the synthetic study's
    # lowest and highest ratio
    synthetic_grid: dict = field(default_factory=dict)
    # {"benchmarks": [...], "synthetic": [...]}: the selection seeds of each grid (absent: the
    # section's own seeds). Benchmark seeds run on folds[i mod F] as in the benchmarks section.
    seeds: dict = field(default_factory=dict)
    workers: int = 1

    def __post_init__(self):
        check(set(self.seeds) <= {"benchmarks", "synthetic"} and all(
            isinstance(v, list) and v and all(isinstance(s, int) for s in v) for v in self.seeds.values()),
            "calibrate.seeds", self.seeds, "{benchmarks: [seed, ...], synthetic: [seed, ...]} (either key optional)")
        check(self.criterion.joint_gap_min >= 0, "calibrate.criterion.joint_gap_min", self.criterion.joint_gap_min,
              "a non-negative gap (a fraction: 0.02 is 2 points)")
        for name, grid in {**self.grids, "synthetic": self.synthetic_grid}.items():
            check(isinstance(grid, dict) and all(isinstance(v, list) and v for v in grid.values()),
                  f"calibrate.grids.{name}", grid, "{knob: [value, ...]} with at least one value per knob")


def load_calibration(params: dict) -> CalibrationConfig:
    return from_dict(CalibrationConfig, params, "calibrate")


def settings(grid: dict) -> list[dict]:
    """Every combination of the grid, in its declared order (the first knob varies slowest)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def setting_label(setting: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items())


# --------------------------------------------------------------------------- real benchmarks
def benchmark_grid(calibration: CalibrationConfig, benchmark_params: dict) -> tuple[dict, dict]:
    """(a benchmarks section whose datasets are every setting of every calibrated dataset, with the
    benchmarks section's model, budget, folds and seeds and only the reference methods; label ->
    (dataset name, setting)). `benchmark_params` is the section as loaded without the calibration
    (`calibrated` marks dropped); build the study with mcrlib.studies.benchmarks."""
    datasets, labels = {}, {}
    for label, spec in benchmark_params["datasets"].items():
        grid = calibration.grids.get(spec["name"])
        if not grid:
            continue
        for setting in settings(grid):
            name = f"{label} | {setting_label(setting)}"
            datasets[name] = {**spec, "params": {**spec.get("params", {}), **setting}}
            labels[name] = (spec["name"], setting)
    study = {**benchmark_params, "datasets": datasets, "methods": ["ensemble", "joint"],
             "seeds": calibration.seeds.get("benchmarks", benchmark_params.get("seeds")),
             "method_params": {}, "search": {}, "workers": calibration.workers}
    return study, labels


def judge_benchmark(runs: pd.DataFrame, labels: dict, criterion: Criterion) -> pd.DataFrame:
    """One row per setting: unimodal, ensemble and joint means, the paired (joint - ensemble)
    interval over units, criteria (a)-(c), and whether it is chosen."""
    rows = []
    for label, (name, setting) in labels.items():
        part = runs[runs["dataset"] == label]
        units = ["fold", "seed"] if "fold" in part else ["seed"]
        acc = part.pivot_table(index=units, columns="method", values="test_acc")
        uni = [c for c in acc.columns if c.startswith("unimodal-")]
        gap = compare(part, method="joint", reference="ensemble", units=units, block="fold",
                      confidence=criterion.confidence)
        low, high = gap["low"], gap["high"]
        means = acc.mean()
        best_uni = max(means[c] for c in uni)
        rows.append({"dataset": name, "setting": setting_label(setting), **setting,
                     **{f"{c.removeprefix('unimodal-')} alone": means[c] for c in uni},
                     "ensemble": means["ensemble"], "joint": means["joint"], "units": gap["n"],
                     "joint - ensemble": gap["mean_diff"], "low": low, "high": high, "design": gap["design"],
                     "(a) unimodal in range": all(criterion.unimodal_min <= means[c] <= criterion.unimodal_max for c in uni),
                     "(b) ensemble gain": means["ensemble"] - best_uni >= criterion.ensemble_gain_min,
                     "(c) joint < ensemble": bool(high < 0 and gap["mean_diff"] <= -criterion.joint_gap_min)})
    return choose(pd.DataFrame(rows), ["(a) unimodal in range", "(b) ensemble gain", "(c) joint < ensemble"],
                  gap="joint - ensemble")


# --------------------------------------------------------------------------- synthetic generator
def synthetic_grid(calibration: CalibrationConfig, synthetic_params: dict) -> dict:
    """setting label -> (setting, a synthetic section at the lowest and highest ratio with the
    unimodal models, the Ensemble and joint training only); build each study with
    mcrlib.studies.synthetic."""
    ratios = synthetic_params.get("ratios", [0.25, 4.0])
    out = {}
    for setting in settings(calibration.synthetic_grid):
        # The study's own Ensemble rule (the authors' raw logit sum on these data): the calibration
        # judges the Ensemble the study compares with.
        ensemble = synthetic_params.get("method_params", {}).get("ensemble")
        params = {**synthetic_params, "ratios": [min(ratios), max(ratios)], "methods": ["ensemble", "joint"],
                  "method_params": {"ensemble": ensemble} if ensemble else {}, "search": {},
                  "seeds": calibration.seeds.get("synthetic", synthetic_params.get("seeds")),
                  "workers": calibration.workers,
                  "data": {**synthetic_params.get("data", {}), **setting}}
        params.update({k: v for k, v in setting.items() if k == "unique2"})
        params["data"].pop("unique2", None)
        out[setting_label(setting)] = (setting, params)
    return out


def judge_synthetic(runs: pd.DataFrame, criterion: Criterion) -> pd.DataFrame:
    """One row per setting: accuracies at both ratios, the paired interval of
    (joint drop - ensemble drop) over seeds, criteria (a) and (c), and the choice."""
    rows = []
    for label, part in runs.groupby("setting_label", sort=False):
        lo, hi = part["ratio"].min(), part["ratio"].max()
        acc = part.pivot_table(index="seed", columns=["method", "ratio"], values="test_acc")
        uni = sorted({m for m, _ in acc.columns if m.startswith("unimodal-")})
        drop = {m: acc[(m, lo)] - acc[(m, hi)] for m in ("joint", "ensemble")}
        excess = (drop["joint"] - drop["ensemble"]).dropna().to_numpy()
        low, high = t_interval(excess, criterion.confidence)
        means = acc.mean()
        rows.append({"setting": label, **json.loads(part["setting"].iloc[0]),
                     **{f"{m} @ {r:g}": means[(m, r)] for m in [*uni, "ensemble", "joint"] for r in (lo, hi)},
                     "units": len(excess), "joint drop - ensemble drop": excess.mean(), "low": low, "high": high,
                     "(a) unimodal informative": all(means[(m, r)] >= criterion.synthetic_unimodal_min
                                                     for m in uni for r in (lo, hi)),
                     "(c) joint falls faster": bool(low > 0)})
    return choose(pd.DataFrame(rows), ["(a) unimodal informative", "(c) joint falls faster"],
                  gap="joint drop - ensemble drop", larger_gap_better=True)


def choose(table: pd.DataFrame, criteria: list[str], gap: str, larger_gap_better: bool = False) -> pd.DataFrame:
    """Mark the chosen row (the rule in the module docstring) and whether it meets every criterion."""
    table = table.copy()
    table["criteria met"] = table[criteria].sum(axis=1).astype(int)
    table["meets all"] = table["criteria met"] == len(criteria)
    if table["meets all"].any():
        chosen = int(np.flatnonzero(table["meets all"].to_numpy())[0])
    else:
        score = table[gap] if larger_gap_better else -table[gap]
        order = table.assign(_score=score).sort_values(["criteria met", "_score"], ascending=False, kind="stable")
        chosen = int(table.index.get_loc(order.index[0]))
    table["chosen"] = [i == chosen for i in range(len(table))]
    return table


def chosen_settings(tables: dict[str, pd.DataFrame], knobs: dict[str, list[str]]) -> dict:
    """{dataset name: {knob: value} of its chosen row, and whether it met every criterion}."""
    out = {}
    for name, table in tables.items():
        row = table[table["chosen"]].iloc[0]
        out[name] = {"params": {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in knobs[name]},
                     "meets_criterion": bool(row["meets all"])}
    return out
