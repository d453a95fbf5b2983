"""The synthetic study's three-modality case (params.yaml `synthetic.three_modal`): an XOR-like
label (mcrlib.data.synthetic_xor: x1 carries u, x2 carries v, y = (u + v) mod C, x3 carries y on a
fraction of the samples), and whether ConFu's fused contrastive term (MCR's
`contrastive_terms: fused`) helps MCR there.

Runs: the three unimodal models, the Ensemble, joint training, MCR (pairwise L_con, the paper)
and MCR with the fused term ("mcr_fused"), for every seed of the synthetic study, with the
synthetic study's model, budget and method params (each overridable here, for every method at
once), no search: MCR keeps the paper's defaults. Each seed redraws the data and the model.

Table: test accuracy (mean ± std over seeds) per method, its accuracy on the x3-silent samples
(where only the pair (x1, x2) carries the label), and the paired differences over seeds
(mcrlib.analysis.paired, Student-t 95% interval): each method - joint, and mcr_fused - mcr,
with each seed's difference.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcrlib.analysis.paired import paired_differences
from mcrlib.analysis.tables import format_pm, mean_std
from mcrlib.config import ConfigError, DataConfig, MethodConfig, RunConfig, check
from mcrlib.data.synthetic_xor import GROUPS, MODALITIES, SyntheticXorConfig
from mcrlib.methods import method_params
from mcrlib.run_key import check_run
from mcrlib.studies.grid import grid_runs, overridden
from mcrlib.sweep import result_key, run_all

CASE = "xor"
# label -> (registered method, params it adds over the study's method params)
VARIANTS = {"ensemble": ("ensemble", {}), "joint": ("joint", {}), "mcr": ("mcr", {}),
            "mcr_fused": ("mcr", {"contrastive_terms": "fused"})}
DISPLAY = {"unimodal-x1": "Unimodal x1", "unimodal-x2": "Unimodal x2", "unimodal-x3": "Unimodal x3",
           "ensemble": "Ensemble", "joint": "Joint training", "mcr": "MCR (pairwise L_con)",
           "mcr_fused": "MCR + fused term (ConFu)"}


@dataclass(frozen=True)
class ThreeModalConfig:
    methods: tuple[str, ...] = ("ensemble", "joint", "mcr", "mcr_fused")   # keys of VARIANTS
    data: dict = field(default_factory=dict)     # SyntheticXorConfig keys except data_seed (the run seed)
    model: dict = field(default_factory=dict)    # ModelConfig keys over the synthetic study's model
    train: dict = field(default_factory=dict)    # TrainConfig keys over the synthetic study's budget
    method_params: dict = field(default_factory=dict)   # label -> params over the study's method_params

    def __post_init__(self):
        check(len(self.methods) > 0 and all(m in VARIANTS for m in self.methods), "synthetic.three_modal.methods",
              list(self.methods), f"a non-empty list of {list(VARIANTS)}")
        for label, params in self.method_params.items():
            if label not in self.methods:
                raise ConfigError(f"synthetic.three_modal.method_params has {label!r}, which is not in "
                                  f"synthetic.three_modal.methods {list(self.methods)}")
            for key, value in VARIANTS[label][1].items():
                check(key not in params, f"synthetic.three_modal.method_params.{label}.{key}", params.get(key),
                      f"no value here: {label!r} is {VARIANTS[label][0]!r} with {key}: {value}")
        check("data_seed" not in self.data, "synthetic.three_modal.data.data_seed", self.data.get("data_seed"),
              "no value here: data_seed comes from the synthetic study's seeds")
        self.data_config(0)

    def data_config(self, seed: int) -> SyntheticXorConfig:
        try:
            return SyntheticXorConfig(data_seed=seed, **self.data)
        except TypeError as err:
            allowed = [f.name for f in dataclasses.fields(SyntheticXorConfig) if f.name != "data_seed"]
            raise ConfigError(f"synthetic.three_modal.data: {err}; allowed keys: {allowed}") from None


def run_config(study, label: str, seed: int) -> RunConfig:
    """The run of method `label` on the XOR case at `seed`; `study` is the SyntheticStudyConfig
    (its model, train and method params, under this case's overrides)."""
    case: ThreeModalConfig = study.three_modal
    name, extra = VARIANTS[label]
    params = {**study.method_params.get(name, {}), **case.method_params.get(label, {}), **extra}
    method_params(name, params)
    data = DataConfig(name="synthetic_xor", params=dataclasses.asdict(case.data_config(seed)))
    return check_run(RunConfig(data=data, model=overridden(study.model, case.model, "synthetic.three_modal.model"),
                               train=overridden(study.train, case.train, "synthetic.three_modal.train"),
                               seed=seed, method=MethodConfig(name=name, params=params)))


def study_runs(study) -> list[tuple[dict, RunConfig]]:
    """(labels, config) of every run: per seed, the unimodal models and each method."""
    return grid_runs((CASE,), study.seeds, study.three_modal.methods,
                     lambda label, _, seed, __: run_config(study, label, seed), lambda _: MODALITIES, {}, "case")


def group_accuracy(result) -> dict[str, float]:
    test = result.predictions["test"]
    correct = test["fused"].argmax(-1) == test["label"]
    return {f"acc_{name}": correct[test["group"] == g].float().mean().item() for g, name in enumerate(GROUPS)}


def run_three_modal(study, cache_dir: str | Path) -> pd.DataFrame:
    """One row per run: case, seed, method label, run key, test/val accuracy, epochs, accuracy per group."""
    labelled = study_runs(study)
    results = run_all([c for _, c in labelled], cache_dir, study.workers, desc="three-modal runs")
    rows = [{**labels, "run_key": result_key(r),
             "test_acc": r.metrics["test_acc_fused"], "val_acc": r.metrics["val_acc_fused"],
             "epochs": r.metrics.get("epochs", 0), **group_accuracy(r)} for (labels, _), r in zip(labelled, results)]
    return pd.DataFrame(rows)


def _interval(row) -> str:
    if pd.isna(row["low"]):
        return f"{100 * row['mean_diff']:+.1f} (n = {row['n']})"
    return f"{100 * row['mean_diff']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"


def _per_seed(runs: pd.DataFrame, method: str, reference: str) -> str:
    wide = runs.pivot(index="seed", columns="method", values="test_acc")
    d = (wide[method] - wide[reference]).dropna()
    return ", ".join(f"{100 * v:+.1f}" for v in d)


def three_modal_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: the methods present (unimodal first), by their display names. Columns (percent):
    test accuracy and x3-silent accuracy (mean ± std over seeds); the paired mean difference
    with joint training and, for mcr_fused, with MCR, each with its Student-t 95% interval over
    seeds and each seed's difference (in seed order)."""
    order = [m for m in DISPLAY if m in set(runs["method"])]
    cols = {"test accuracy": "test_acc", "accuracy, x3-silent samples": "acc_x3-silent"}
    table = pd.DataFrame(index=order)
    for title, value in cols.items():
        summary = mean_std(runs.assign(col=title), index="method", columns="col", value=value)
        table[title] = format_pm(summary, index="method", columns="col")[title]
    comparisons = [("joint", "vs joint: mean [95% CI]", "vs joint, per seed")]
    comparisons.append(("mcr", "fused - pairwise: mean [95% CI]", "fused - pairwise, per seed"))
    for reference, title, seeds_title in comparisons:
        table[title], table[seeds_title] = "", ""
        if reference not in order:
            continue
        others = ["mcr_fused"] if reference == "mcr" else [m for m in order if m != "joint"]
        others = [m for m in others if m in order]
        if not others:
            continue
        diff = paired_differences(runs, reference=reference, methods=others, cell="case", units=("seed",))
        for _, row in diff.iterrows():
            table.loc[row["method"], title] = _interval(row)
            table.loc[row["method"], seeds_title] = _per_seed(runs, row["method"], reference)
    table.index = [DISPLAY[m] for m in order]
    table.index.name = "method"
    return table


def describe(study) -> str:
    """One line for captions: the case's generator and the seeds."""
    case = study.three_modal
    cfg = case.data_config(0)
    overrides = {k: v for k, v in (("model", case.model), ("train", case.train), ("method_params", case.method_params)) if v}
    return (f"XOR case: y = (u + v) mod {cfg.n_classes}, x1 carries u, x2 carries v, x3 carries y on "
            f"{cfg.x3_fraction:.0%} of the samples; {cfg.n_train}/{cfg.n_val}/{cfg.n_test} train/val/test; "
            f"seeds {list(study.seeds)}; the synthetic study's model, budget and method params"
            + (f", with {json.dumps(overrides)}" if overrides else ""))
