"""Figure 1 draws every method: the list dvc.yaml's plot spells out (YAML computes nothing) and the
committed data it plots are checked against the method registry and the synthetic study's params,
so a newly registered method cannot be left out of the figure unnoticed."""
from pathlib import Path

import pandas as pd
import yaml

from mcrlib.methods import METHODS
from mcrlib.studies.synthetic import load_study, study_runs

ROOT = Path(__file__).resolve().parents[1]
FIGURE1_DATA = "results/synthetic/plot_fig1.csv"


def figure1_lines() -> list[str]:
    """The columns dvc.yaml's Figure 1 plot draws from FIGURE1_DATA."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    found = [spec["y"][FIGURE1_DATA] for plot in plots if isinstance(plot, dict) for spec in plot.values()
             if isinstance(spec.get("y"), dict) and FIGURE1_DATA in spec["y"]]
    assert len(found) == 1, f"dvc.yaml has {len(found)} plots of {FIGURE1_DATA}"
    return found[0]


def synthetic_study_methods() -> set[str]:
    """The method labels of every run the synthetic section of params.yaml makes (the unimodal
    runs as unimodal-<modality>)."""
    study = load_study(yaml.safe_load((ROOT / "params.yaml").read_text())["synthetic"])
    return {labels["method"] for labels, _ in study_runs(study)}


def test_the_synthetic_study_runs_every_registered_method():
    methods = synthetic_study_methods()
    missing = sorted(m for m in METHODS if m != "unimodal" and m not in methods)
    assert not missing, f"params.yaml's synthetic.methods leaves out the registered methods {missing}"
    assert {"unimodal-x1", "unimodal-x2"} <= methods


def test_dvc_plots_figure1_draws_every_method_of_the_study_and_nothing_else():
    lines = figure1_lines()
    methods = synthetic_study_methods()
    assert len(lines) == len(set(lines)), "a method is listed twice"
    assert not methods - set(lines), f"dvc.yaml's Figure 1 plot leaves out {sorted(methods - set(lines))}"
    assert not set(lines) - methods, f"dvc.yaml's Figure 1 plot names runs the study has not: {sorted(set(lines) - methods)}"


def test_the_committed_figure1_data_hold_every_method_of_the_study():
    data = pd.read_csv(ROOT / FIGURE1_DATA)
    methods = synthetic_study_methods()
    assert not methods - set(data.columns), f"{FIGURE1_DATA} has no column for {sorted(methods - set(data.columns))}"
    assert set(figure1_lines()) <= set(data.columns)
    assert data[sorted(methods)].notna().all().all(), "a method's line has ratios without a number"
