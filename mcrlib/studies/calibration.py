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
Synthetic generator, per seed (each seed redraws the data), at the lowest and highest u1/s:
  (a) each unimodal accuracy at both ratios at least `synthetic_unimodal_min`: both informative;
  (c) a direct sign of competition at the highest u1/s: a linear probe of the `probe_modality`
      encoder (x2, declared) inside the joint model (mcrlib.analysis.probes.run_probe) is below
      that modality's own unimodal model by at least `probe_gap_min`, the paired interval over
      seeds excluding zero.
  Shown, not judged: whether joint training falls faster than the Ensemble from the lowest to
  the highest u1/s (our summary of Figure 1, not a sentence of the paper).
Every grid is either knobs -> values (every combination) or a list of settings (each a mapping
with the same keys), for knobs that go together (a training budget's epochs and patience, a
generator's feature counts). A `train.<key>` knob sets the training budget, not the data.
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
from mcrlib.profiles import split_knobs


@dataclass(frozen=True)
class Criterion:
    unimodal_min: float = 0.5
    unimodal_max: float = 0.8
    ensemble_gain_min: float = 0.05
    joint_gap_min: float = 0.0              # (c) joint at least this far below the Ensemble
    synthetic_unimodal_min: float = 0.3     # 5 classes: chance is 0.2
    probe_gap_min: float = 0.0              # synthetic (c): probe at least this far below unimodal
    probe_modality: str = "x2"              # synthetic (c): the modality whose encoder is probed
    confidence: float = 0.95

    def __post_init__(self):
        check(0 <= self.unimodal_min < self.unimodal_max <= 1, "calibrate.criterion.unimodal_min/max",
              (self.unimodal_min, self.unimodal_max), "0 <= min < max <= 1")
        check(0 < self.confidence < 1, "calibrate.criterion.confidence", self.confidence, "a level in (0, 1)")


@dataclass(frozen=True)
class CalibrationConfig:
    profile: str = "smoke"
    criterion: Criterion = field(default_factory=Criterion)
    # benchmarks dataset name (e.g. avdigits) -> {knob: [values]} or a list of settings: load-time
    # data params, and `train.<key>` for the training budget
    grids: dict = field(default_factory=dict)
    # synthetic generator knobs -> [values] (SyntheticConfig keys), or a list of settings (each
    # {knob: value}, the same knobs in each), at the synthetic study's lowest and highest ratio
    synthetic_grid: dict | list = field(default_factory=dict)
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
        check(self.criterion.probe_gap_min >= 0, "calibrate.criterion.probe_gap_min", self.criterion.probe_gap_min,
              "a non-negative gap (a fraction)")
        for name, grid in {**self.grids, "synthetic": self.synthetic_grid}.items():
            path = "calibrate.synthetic_grid" if name == "synthetic" else f"calibrate.grids.{name}"
            if isinstance(grid, (list, tuple)):
                keys = [sorted(s) if isinstance(s, dict) else None for s in grid]
                check(bool(keys) and keys[0] is not None and all(k == keys[0] for k in keys), path, grid,
                      "a non-empty list of settings {knob: value}, every one with the same knobs")
            elif name != "synthetic" or grid:
                check(isinstance(grid, dict) and all(isinstance(v, list) and v for v in grid.values()),
                      path, grid, "{knob: [value, ...]} with at least one value per knob, or a list of settings")


def load_calibration(params: dict) -> CalibrationConfig:
    return from_dict(CalibrationConfig, params, "calibrate")


def settings(grid: dict | list) -> list[dict]:
    """Every combination of the grid, in its declared order (the first knob varies slowest); a list
    of settings is taken as it is."""
    if isinstance(grid, (list, tuple)):
        return [dict(setting) for setting in grid]
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def grid_knobs(grid: dict | list) -> list[str]:
    """The knobs a grid sets (the keys chosen.json records for its dataset)."""
    return list(grid[0]) if isinstance(grid, (list, tuple)) else list(grid)


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
            data, train = split_knobs(setting)   # `train.max_epochs`: a budget knob, the rest the data's
            datasets[name] = {**spec, "params": {**spec.get("params", {}), **data},
                              **({"train": {**spec.get("train", {}), **train}} if train else {})}
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


def judge_synthetic(runs: pd.DataFrame, criterion: Criterion, probes: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: accuracies at both ratios; (c) the paired interval over seeds of
    (probe of `criterion.probe_modality` inside joint training - its unimodal model) at the
    highest ratio; criteria (a) and (c) and the choice; and, shown only, the interval of
    (joint drop - ensemble drop). `probes`: setting_label, seed, modality, probe (joint runs at
    the highest ratio)."""
    rows = []
    for label, part in runs.groupby("setting_label", sort=False):
        lo, hi = part["ratio"].min(), part["ratio"].max()
        acc = part.pivot_table(index="seed", columns=["method", "ratio"], values="test_acc")
        uni = sorted({m for m, _ in acc.columns if m.startswith("unimodal-")})
        drop = {m: acc[(m, lo)] - acc[(m, hi)] for m in ("joint", "ensemble")}
        excess = (drop["joint"] - drop["ensemble"]).dropna().to_numpy()
        low, high = t_interval(excess, criterion.confidence)
        means = acc.mean()
        weak = criterion.probe_modality
        probe = probes[(probes["setting_label"] == label) & (probes["modality"] == weak)].set_index("seed")["probe"]
        gap = (probe - acc[(f"unimodal-{weak}", hi)]).dropna().to_numpy()
        gap_low, gap_high = t_interval(gap, criterion.confidence)
        rows.append({"setting": label, **json.loads(part["setting"].iloc[0]),
                     **{f"{m} @ {r:g}": means[(m, r)] for m in [*uni, "ensemble", "joint"] for r in (lo, hi)},
                     "probed modality": weak, f"probe in joint @ {hi:g}": probe.mean(),
                     "units": len(gap), "probe - unimodal": gap.mean(), "low": gap_low, "high": gap_high,
                     "joint drop - ensemble drop": excess.mean(), "drop low": low, "drop high": high,
                     "(a) unimodal informative": all(means[(m, r)] >= criterion.synthetic_unimodal_min
                                                     for m in uni for r in (lo, hi)),
                     "(c) probed modality suppressed": bool(gap_high < 0 and gap.mean() <= -criterion.probe_gap_min)})
    return choose(pd.DataFrame(rows), ["(a) unimodal informative", "(c) probed modality suppressed"],
                  gap="probe - unimodal")


def synthetic_probes(runs: pd.DataFrame, results: list) -> pd.DataFrame:
    """The probes `judge_synthetic` reads: each modality's encoder inside every joint run at the
    highest ratio of its setting (`runs` rows with their RunResults, in order)."""
    from mcrlib.analysis.probes import run_probe
    from mcrlib.data import load_dataset
    rows = []
    highest = runs.groupby("setting_label")["ratio"].transform("max")
    for (index, row), result in zip(runs.iterrows(), results):
        if row["method"] != "joint" or row["ratio"] != highest[index]:
            continue
        data = load_dataset(result.config["data"]["name"], result.config["data"]["params"])
        for modality in ("x1", "x2"):
            rows.append({"setting_label": row["setting_label"], "seed": row["seed"], "modality": modality,
                         "probe": run_probe(result, modality, data)})
    return pd.DataFrame(rows, columns=["setting_label", "seed", "modality", "probe"])


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
