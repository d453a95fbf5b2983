"""Ablations of MCR (paper Tables 2-4 and the choices METHOD.md leaves open).

Every variant is an override of MCR's method params on top of one base setting (the paper's
defaults), trained on every configured dataset and seed through the run cache and the same
trainer as every other study. A variant whose override leaves the base unchanged (greedy,
permutation, L_MIPD + L_con, ...) is the base run itself, so the tables share it, and so do
other studies with the same config. Joint training and the unimodal models are reference rows.
No hyperparameter search: each variant changes one thing against the fixed base.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from mcrlib.analysis.tables import format_pm, mean_std
from mcrlib.config import (ConfigError, DataConfig, MethodConfig, ModelConfig, RunConfig, TrainConfig,
                           check, from_dict, to_dict)
from mcrlib.data import DATASETS, dataset_modalities
from mcrlib.data.synthetic import SyntheticConfig
from mcrlib.methods import method_params
from mcrlib.run_key import check_run
from mcrlib.studies.grid import check_folds, fold_of, grid_runs, overridden
from mcrlib.sweep import result_key, run_all

COMPONENTS = {"lambda_mipd": "L_MIPD", "lambda_con": "L_con", "lambda_ceb": "L_CEB"}


def _components_rows() -> list[tuple[str, str, dict]]:
    """Every subset of {L_MIPD, L_con, L_CEB}: True marks a term that is on (its weight is
    resolved per dataset), False one set to 0."""
    rows = [("none", "none (CE + unimodal terms)", dict.fromkeys(COMPONENTS, False))]
    for k in range(1, len(COMPONENTS) + 1):
        for on in combinations(COMPONENTS, k):
            rows.append(("+".join(COMPONENTS[c] for c in on), " + ".join(COMPONENTS[c] for c in on),
                         {c: c in on for c in COMPONENTS}))
    return rows


# table -> (title, [(row key, row label, MCR params override)])
TABLES: dict[str, tuple[str, list[tuple[str, str, dict]]]] = {
    "table2_strategy": ("Table 2: game strategy", [
        ("collaborative", "collaborative", {"strategy": "collaborative"}),
        ("independent", "independent", {"strategy": "independent"}),
        ("greedy", "greedy", {"strategy": "greedy"})]),
    "table3_components": ("Table 3: loss components", _components_rows()),
    "table4_perturbation": ("Table 4: perturbation", [
        ("noise_input", "noise input", {"perturbation": "noise_input"}),
        ("zero_input", "zero input (Shapley)", {"perturbation": "zero_input"}),
        ("noise_latent", "noise latent", {"perturbation": "noise_latent"}),
        ("zero_latent", "zero latent", {"perturbation": "zero_latent"}),
        ("permute", "permutation latent", {"perturbation": "permute"})]),
    "open_choices": ("Choices METHOD.md leaves open", [
        ("latent_source=train", "latent source: this step's training pass (paper)", {"latent_source": "train"}),
        ("latent_source=eval_reforward", "latent source: eval-mode re-forward (release)",
         {"latent_source": "eval_reforward"}),
        ("detach_reference=false", "clean reference attached (release)", {"detach_reference": False}),
        ("detach_reference=true", "clean reference detached", {"detach_reference": True})]),
}


def variant_keys() -> list[str]:
    return [f"{table}/{row}" for table, (_, rows) in TABLES.items() for row, _, _ in rows]


@dataclass(frozen=True)
class AblationStudyConfig:
    profile: str = "smoke"
    # label -> {name, params} as in the benchmarks section (optional folds, model, train,
    # method_params: {mcr: ...}); synthetic data may give `ratio` (u1/s) with params.unique2,
    # drawn per seed as in the synthetic study (so its runs are shared), and any dataset
    # `variant_params`: {"table/row": {MCR params}} (e.g. a cheaper P for noise input).
    datasets: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mcr: dict = field(default_factory=dict)           # the base MCR params every variant overrides
    # A loss term's weight when Table 3 turns it on and the base has it at 0 (METHOD.md: L_CEB 1).
    component_weights: dict = field(default_factory=lambda: {"lambda_mipd": 0.1, "lambda_con": 1.0, "lambda_ceb": 1.0})
    tables: tuple[str, ...] = tuple(TABLES)
    variant_params: dict = field(default_factory=dict)   # "table/row" -> MCR params, every dataset
    workers: int = 1

    def __post_init__(self):
        check(len(self.datasets) > 0, "ablations.datasets", self.datasets, "at least one dataset")
        check(len(self.seeds) > 0, "ablations.seeds", list(self.seeds), "a non-empty list of seeds")
        check(set(self.tables) <= set(TABLES) and self.tables, "ablations.tables", list(self.tables),
              f"a non-empty list of {list(TABLES)}")
        check(set(self.component_weights) <= set(COMPONENTS) and all(v > 0 for v in self.component_weights.values()),
              "ablations.component_weights", self.component_weights, f"weights > 0 of {list(COMPONENTS)}")
        allowed = {"name", "params", "folds", "model", "train", "method_params", "ratio", "variant_params", "calibrated"}
        for label, spec in self.datasets.items():
            check(isinstance(spec, dict) and spec.get("name") in DATASETS and set(spec) <= allowed,
                  f"ablations.datasets.{label}", spec,
                  f"{{name: one of {sorted(DATASETS)}, params: {{...}}}} with optional keys {sorted(allowed - {'name', 'params'})}")
            check(set(spec.get("method_params", {})) <= {"mcr", "joint"}, f"ablations.datasets.{label}.method_params",
                  spec.get("method_params"), "params of mcr (the base) or joint only")
            check("ratio" not in spec or spec["name"] == "synthetic", f"ablations.datasets.{label}.ratio",
                  spec.get("ratio"), "a ratio u1/s for synthetic data only")
            if "folds" in spec:
                check_folds(spec["folds"], self.seeds, f"ablations.datasets.{label}.folds")
        for where, params in [("ablations", self.variant_params)] + [
                (f"ablations.datasets.{label}", spec.get("variant_params", {})) for label, spec in self.datasets.items()]:
            unknown = set(params) - set(variant_keys())
            check(not unknown, f"{where}.variant_params", sorted(unknown), f"keys among {variant_keys()}")
        method_params("mcr", self.mcr)
        for label in self.datasets:   # every variant's config is valid before anything trains
            for key in self.variants():
                self.run_config(key, label, self.seeds[0])
            self.run_config("joint", label, self.seeds[0])

    def variants(self) -> list[str]:
        """The "table/row" keys of the configured tables, in table order."""
        return [f"{t}/{row}" for t in self.tables for row, _, _ in TABLES[t][1]]

    def variant_notes(self, table: str) -> list[str]:
        """'dataset: row {params}' for each row a dataset runs with extra params (variant_params)."""
        notes = []
        for label, spec in self.datasets.items():
            for row, text, _ in TABLES[table][1]:
                key = f"{table}/{row}"
                extra = {**self.variant_params.get(key, {}), **spec.get("variant_params", {}).get(key, {})}
                notes += [f"{label}: {text} {extra}"] if extra else []
        return notes

    def data_config(self, label: str, seed: int) -> DataConfig:
        spec = self.datasets[label]
        params = dict(spec.get("params", {}))
        if "ratio" in spec:   # synthetic data at a fixed u1/s; as in Figure 1, each seed redraws the data
            check("unique2" in params, f"ablations.datasets.{label}.params.unique2", None, "u2 beside a ratio")
            check("data_seed" not in params, f"ablations.datasets.{label}.params.data_seed", params.get("data_seed"),
                  "no value: with a ratio the data seed is the run's seed")
            try:
                params = dataclasses.asdict(SyntheticConfig.for_ratio(spec["ratio"], data_seed=seed, **params))
            except TypeError as err:
                raise ConfigError(f"ablations.datasets.{label}.params: {err}") from None
        if "folds" in spec:
            params["fold"] = fold_of(spec["folds"], self.seeds, seed)
        return DataConfig(name=spec["name"], params=params)

    def base_params(self, label: str) -> dict:
        return {**self.mcr, **self.datasets[label].get("method_params", {}).get("mcr", {})}

    def overrides(self, key: str, label: str) -> dict:
        """The MCR params a variant changes on `label`, without the ones equal to the base's
        (so a variant that is the base is the base's run, not a copy under another key)."""
        table, row = key.split("/", 1)
        override = dict(next(o for r, _, o in TABLES[table][1] if r == row))
        base = self.base_params(label)
        effective = dataclasses.asdict(method_params("mcr", base))
        for name, on in [(n, override.pop(n)) for n in COMPONENTS if n in override]:
            override[name] = (effective[name] or self.component_weights.get(name, 1.0)) if on else 0.0
        override.update(self.variant_params.get(key, {}))
        override.update(self.datasets[label].get("variant_params", {}).get(key, {}))
        return {k: v for k, v in override.items() if effective.get(k, ...) != v}

    def run_config(self, method: str, label: str, seed: int, overrides: dict | None = None) -> RunConfig:
        """`method`: a variant key ("table/row", MCR), or a plain method (the reference rows)."""
        spec = self.datasets[label]
        if method in variant_keys():
            name, params = "mcr", {**self.base_params(label), **self.overrides(method, label)}
        else:
            name, params = method, {**spec.get("method_params", {}).get(method, {}), **(overrides or {})}
        model = overridden(self.model, spec.get("model", {}), f"ablations.datasets.{label}.model")
        train = overridden(self.train, spec.get("train", {}), f"ablations.datasets.{label}.train")
        return check_run(RunConfig(data=self.data_config(label, seed), model=model, train=train, seed=seed,
                                   method=MethodConfig(name=name, params=params)))


def load_study(params: dict) -> AblationStudyConfig:
    return from_dict(AblationStudyConfig, params, "ablations")


def study_runs(study: AblationStudyConfig, modalities) -> list[tuple[dict, RunConfig]]:
    """(labels, config) of every run: per dataset and seed the unimodal models and joint
    training (reference rows, from grid.grid_runs), then every variant of every table."""
    labelled = [({**labels, "table": "reference", "variant": labels["method"]}, config) for labels, config in
                grid_runs(list(study.datasets), study.seeds, ["joint"], study.run_config, modalities, {}, "dataset")]
    for label in study.datasets:
        for seed in study.seeds:
            for key in study.variants():
                table, row = key.split("/", 1)
                labelled.append(({"dataset": label, "seed": seed, "method": "mcr", "setting": json.dumps(
                    study.overrides(key, label), sort_keys=True), "table": table, "variant": row},
                    study.run_config(key, label, seed)))
    return labelled


def run_study(study: AblationStudyConfig, cache_dir: str | Path) -> pd.DataFrame:
    """One row per (dataset, seed, table row): labels, the variant's overrides and accuracies.
    Identical configs (a variant that is the base, in several tables) are trained once."""
    modalities = {label: dataset_modalities(study.data_config(label, study.seeds[0]).name,
                                            study.data_config(label, study.seeds[0]).params)
                  for label in study.datasets}
    labelled = study_runs(study, modalities.__getitem__)
    keys = [json.dumps(to_dict(config), sort_keys=True) for _, config in labelled]
    unique = dict(zip(keys, (config for _, config in labelled)))
    results = dict(zip(unique, run_all(list(unique.values()), cache_dir, study.workers, desc="ablation runs")))
    # `fold`: the speaker fold of a run (-1 without folds), so the report treats folds as blocks
    return pd.DataFrame([{**labels, "run_key": result_key(results[k]),
                          "fold": results[k].config["data"]["params"].get("fold", -1),
                          "test_acc": results[k].metrics["test_acc_fused"],
                          "val_acc": results[k].metrics["val_acc_fused"], "epochs": results[k].metrics.get("epochs", 0)}
                         for (labels, _), k in zip(labelled, keys)])


def ablation_table(runs: pd.DataFrame, table: str, *, reference: tuple[str, ...] = ("joint",)) -> pd.DataFrame:
    """Test accuracy (%) 'mean ± std' over seeds: the table's variants as rows, in the paper's
    order and with their labels ("(default)" where the row is the base MCR run on every
    dataset), then the reference rows; one column per dataset."""
    part = runs[runs["table"] == table]
    is_base = part.groupby("variant")["setting"].agg(lambda s: set(s) == {"{}"})
    labels = {row: text + (" (default)" if is_base.get(row, False) else "") for row, text, _ in TABLES[table][1]}
    labels.update({r: f"{r} (reference)" for r in reference})
    part = pd.concat([part, runs[(runs["table"] == "reference") & runs["variant"].isin(reference)]])
    part = part.assign(row=part["variant"].map(labels))
    return format_pm(mean_std(part, index="row", columns="dataset", value="test_acc"), index="row",
                     columns="dataset", order=list(labels.values())).rename_axis(index=TABLES[table][0], columns=None)
