"""Competition analysis (appendix A.1, Figure 6): joint training and MCR followed epoch by epoch,
with a linear probe on each encoder's features and the ensemble as a reference line.

The runs followed are those of the synthetic and benchmarks studies, which the caller builds
(notebooks/01_competition_analysis.py) and passes in: no study module imports another."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from mcrlib.analysis.probes import probe_epochs
from mcrlib.config import check, from_dict
from mcrlib.features import load_features
from mcrlib.sweep import run_all


@dataclass(frozen=True)
class CompetitionConfig:
    methods: tuple[str, ...] = ("joint", "mcr")
    seeds: tuple[int, ...] = (0,)
    synthetic_ratio: float | None = 4.0     # the synthetic cell followed (None: skip the synthetic data)
    record_features: int = 500             # training samples whose features are probed each epoch
    workers: int = 1

    def __post_init__(self):
        check(self.record_features >= 1, "competition.record_features", self.record_features, "an integer >= 1")



def followed_run(config, record_features: int):
    """The run followed epoch by epoch: its features recorded for the probes and the test split
    evaluated after every epoch (Figure 6's fused curve), otherwise the study's own run."""
    return dataclasses.replace(config, record_features=record_features,
                               train=dataclasses.replace(config.train, test_every_epoch=True))

def cells(competition: CompetitionConfig, synthetic_study, benchmark_study) -> dict:
    """label -> function (method, seed) -> RunConfig, for every dataset followed."""
    out = {}
    if competition.synthetic_ratio is not None and synthetic_study is not None:
        ratio = competition.synthetic_ratio
        out[f"synthetic u1/s={ratio:g}"] = lambda m, s: synthetic_study.run_config(m, ratio, s)
    for label in (benchmark_study.datasets if benchmark_study is not None else {}):
        out[label] = lambda m, s, label=label: benchmark_study.run_config(m, label, s)
    return out


def plot_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Wide per-epoch table for `dvc plots`: one column per (dataset, method) of the fused accuracy
    and of the probe gap, means over seeds."""
    mean = curves.groupby(["dataset", "method", "epoch"])[["fused", "probe gap"]].mean().reset_index()
    wide = mean.pivot(index="epoch", columns=["dataset", "method"], values=["fused", "probe gap"])
    wide.columns = [f"{dataset} {method} {what}" for what, dataset, method in wide.columns]
    return wide.reset_index()


def run_competition(params: dict, synthetic_study, benchmark_study, cache_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-epoch curves, ensemble accuracy): fused test accuracy and each encoder's probe
    accuracy per epoch for every method, dataset and seed; the ensemble of the same seeds.
    `synthetic_study` and `benchmark_study` are the studies whose runs are followed (None: not
    followed)."""
    competition = from_dict(CompetitionConfig, params, "competition")
    followed = cells(competition, synthetic_study, benchmark_study)
    jobs = [(label, m, s, followed_run(make(m, s), competition.record_features))
            for label, make in followed.items() for m in competition.methods for s in competition.seeds]
    ensembles = [(label, s, make("ensemble", s)) for label, make in followed.items() for s in competition.seeds]
    results = run_all([j[3] for j in jobs] + [e[2] for e in ensembles], cache_dir, competition.workers,
                      desc="competition runs")
    rows = []
    for (label, method, seed, _), result in zip(jobs, results):
        modalities = [k for k in result.predictions["test"] if k not in ("fused", "label", "group")]
        probes = probe_epochs(load_features(result.path), modalities)
        for record, probe in zip(result.history, probes):
            rows.append({"dataset": label, "method": method, "seed": seed, "epoch": record["epoch"],
                         "fused": record["test_acc_fused"], **{f"probe {m}": a for m, a in probe.items()},
                         # the competition in one number: how far the weaker encoder trails the stronger
                         "probe gap": max(probe.values()) - min(probe.values())})
    ensemble = pd.DataFrame([{"dataset": label, "seed": s, "ensemble": r.metrics["test_acc_fused"]}
                             for (label, s, _), r in zip(ensembles, results[len(jobs):])])
    return pd.DataFrame(rows), ensemble
