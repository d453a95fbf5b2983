"""Error analysis (Figure 5): the unimodal-correctness groups and each method's accuracy inside
them on a hand-made prediction set, the synthetic generator's group split, and real tiny runs
read back from the cache."""
import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from mcrlib.analysis.errors import (error_frame, generator_group_accuracy, group_accuracy, group_name,
                                    plot_error_matrices, summarise, unimodal_correctness)
from mcrlib.studies.grid import save_runs
from mcrlib.studies.results import read_runs, study_results
from mcrlib.studies.synthetic import load_study, run_study
from tests.conftest import TINY_RUN

N_CLASSES = 3


def logits(labels, right):
    """Logits whose arg-max is the label where `right`, another class elsewhere."""
    labels, right = torch.as_tensor(labels), torch.as_tensor(right)
    predicted = torch.where(right, labels, (labels + 1) % N_CLASSES)
    return torch.nn.functional.one_hot(predicted, N_CLASSES).float()


# 10 samples: 2 both wrong, 3 only modality 1, 1 only modality 2, 4 both right.
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
M1 = [0, 0, 1, 1, 1, 0, 1, 1, 1, 1]
M2 = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
# The method: 1 of 2 both-wrong, 3 of 3 only-1, 0 of 1 only-2, 2 of 4 both-right.
METHOD = [1, 0, 1, 1, 1, 0, 1, 1, 0, 0]


def preds(right, labels=LABELS, group=None):
    out = {"fused": logits(labels, torch.tensor(right, dtype=torch.bool)), "label": labels}
    return out if group is None else {**out, "group": torch.tensor(group)}


def test_groups_counts_and_accuracies_by_hand():
    right = unimodal_correctness([preds(M1), preds(M2)])
    assert right["right_1"].tolist() == [bool(v) for v in M1] and right["right_2"].tolist() == [bool(v) for v in M2]
    table = group_accuracy(preds(METHOD), right).set_index("group")
    assert list(table.index) == ["both wrong", "only modality 2", "only modality 1", "both right"]
    assert table["n"].to_dict() == {"both wrong": 2, "only modality 1": 3, "only modality 2": 1, "both right": 4}
    assert table["acc"].to_dict() == {"both wrong": 0.5, "only modality 1": 1.0, "only modality 2": 0.0,
                                      "both right": 0.5}
    assert table.loc["only modality 1", ["right_1", "right_2"]].tolist() == [True, False]
    # The groups partition the samples: sizes add up, size-weighted accuracy is the overall one.
    assert table["n"].sum() == 10
    assert (table["n"] * table["acc"]).sum() / 10 == pytest.approx(sum(METHOD) / 10)


def test_an_empty_group_is_kept_with_no_accuracy():
    keep = [i for i in range(10) if not (M2[i] and not M1[i])]          # drop the only-2 sample
    sub = lambda r: [r[i] for i in keep]
    right = unimodal_correctness([preds(sub(M1), LABELS[keep]), preds(sub(M2), LABELS[keep])])
    table = group_accuracy(preds(sub(METHOD), LABELS[keep]), right).set_index("group")
    assert table.loc["only modality 2", "n"] == 0 and math.isnan(table.loc["only modality 2", "acc"])
    assert table["n"].sum() == 9


def test_predictions_of_other_samples_are_refused():
    right = unimodal_correctness([preds(M1), preds(M2)])
    with pytest.raises(ValueError, match="same samples"):
        group_accuracy(preds(METHOD, labels=LABELS.roll(1)), right)
    with pytest.raises(ValueError, match="different test sets"):
        unimodal_correctness([preds(M1), preds(M2, labels=LABELS.roll(1))])


def test_group_names_beyond_two_modalities():
    assert group_name([False, False, False]) == "none right"
    assert group_name([True, False, True]) == "right: 1+3"
    assert group_name([True, True, True]) == "all right"


def test_synthetic_generator_group_split():
    # groups: 0 shared (3 samples), 1 unique-1 (2), 2 unique-2 (5)
    group = [0, 1, 2, 0, 2, 2, 1, 2, 0, 2]
    table = generator_group_accuracy(preds(METHOD, group=group)).set_index("group")
    assert list(table.index) == ["shared", "unique-1", "unique-2"]
    assert table["n"].tolist() == [3, 2, 5]
    # METHOD right at 0,2,3,4,6,7: shared {0,3,8} -> 2/3, unique-1 {1,6} -> 1/2, unique-2 {2,4,5,7,9} -> 3/5
    assert table["acc"].tolist() == pytest.approx([2 / 3, 1 / 2, 3 / 5])
    empty = generator_group_accuracy(preds(METHOD, group=[0] * 10)).set_index("group")
    assert empty["n"].tolist() == [10, 0, 0] and empty["acc"].isna().tolist() == [False, True, True]


def fake(right, labels=LABELS):
    return SimpleNamespace(predictions={"test": preds(right, labels)})


def test_groups_are_formed_per_seed_from_that_seeds_unimodal_runs():
    runs = pd.DataFrame({"ratio": [1.0] * 6, "seed": [0, 0, 0, 1, 1, 1],
                         "method": ["unimodal-x1", "unimodal-x2", "joint"] * 2})
    results = [fake(M1), fake(M2), fake(METHOD),
               fake([1] * 10), fake([0] * 10), fake(METHOD)]   # seed 1: everything is "only modality 1"
    frame = error_frame(runs, results, "ratio")
    assert set(frame["method"]) == {"joint"}
    by_seed = frame.set_index(["seed", "group"])["n"]
    assert by_seed[0].to_dict() == {"both wrong": 2, "only modality 2": 1, "only modality 1": 3, "both right": 4}
    assert by_seed[1]["only modality 1"] == 10 and by_seed[1].sum() == 10
    summary = summarise(frame, "ratio").set_index("group")
    only1 = summary.loc["only modality 1"]
    assert only1["mean"] == pytest.approx((1.0 + 0.6) / 2) and only1["n"] == pytest.approx(6.5)
    assert only1["std"] == pytest.approx(pd.Series([1.0, 0.6]).std())
    assert summary.loc["both wrong", "seeds"] == 2 and summary.loc["both wrong", "mean"] == 0.5  # seed 1 empty
    fig = plot_error_matrices(summary.reset_index(), "ratio", ["joint", "absent"], {1.0: ("x1", "x2")})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[1] == "80%\n± 28%\nn=6" and texts[3] == "50%\n± 0%\nn=1"   # only 1; both wrong (seed 0)
    plt.close(fig)


# TINY_RUN's data and model, trained a little longer and tested on more samples: at 3 epochs its
# unimodal models predict one class, which leaves every "only one right" group empty.
SMALL_DATA = {**TINY_RUN["data"]["params"], "mean_scale": 4.0, "n_train": 256, "n_test": 256}
SMALL_TRAIN = {**TINY_RUN["train"], "max_epochs": 6, "lr": 3e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    study = load_study({"ratios": [1.0], "seeds": [0, 1], "methods": ["ensemble", "joint"], "data": SMALL_DATA,
                        "model": TINY_RUN["model"], "train": SMALL_TRAIN})
    runs, _ = run_study(study, cache)
    return study, runs, cache


def test_study_results_are_the_runs_of_the_table_and_never_trained(tiny_study, tmp_path):
    study, runs, cache = tiny_study
    # Each row carries the key of the config the study built for it (no search here: no setting).
    from mcrlib.run_key import run_key
    from mcrlib.studies.synthetic import study_runs
    assert runs["run_key"].tolist() == [run_key(config) for _, config in study_runs(study)]
    results = study_results(runs, cache)
    assert [r.path.name for r in results] == runs["run_key"].tolist()
    assert [r.config["method"]["name"] for r in results] == \
        [m if not m.startswith("unimodal") else "unimodal" for m in runs["method"]]
    assert [r.metrics["test_acc_fused"] for r in results] == runs["test_acc"].tolist()
    with pytest.raises(FileNotFoundError, match="not in the run cache"):
        study_results(runs, tmp_path)


def test_a_row_finds_its_run_by_its_key_not_by_its_labels(tiny_study, tmp_path):
    """The runs table read back from its CSV finds the same runs, and keeps finding them when its
    labels no longer describe a config (a relabelled method, a setting that is not JSON)."""
    study, runs, cache = tiny_study
    save_runs(runs, pd.DataFrame(), tmp_path)
    table = read_runs(tmp_path / "runs.csv")
    assert table["run_key"].tolist() == runs["run_key"].tolist()
    assert table["test_acc"].tolist() == runs["test_acc"].tolist()        # floats read back exactly
    relabelled = table.assign(method="renamed", setting="not json")
    assert [r.path for r in study_results(relabelled, cache)] == [r.path for r in study_results(runs, cache)]
    save_runs(runs.drop(columns="run_key"), pd.DataFrame(), tmp_path)
    with pytest.raises(ValueError, match="no run_key column"):
        read_runs(tmp_path / "runs.csv")


def test_error_frame_of_real_runs_partitions_the_test_set(tiny_study):
    study, runs, cache = tiny_study
    results = study_results(runs, cache)
    frame = error_frame(runs, results, "ratio")
    assert set(frame["method"]) == {"ensemble", "joint"} and set(frame["seed"]) == {0, 1}
    n_test = SMALL_DATA["n_test"]
    for (seed, method), part in frame.groupby(["seed", "method"]):
        assert part["n"].sum() == n_test and len(part) == 4
        test_acc = runs[(runs.seed == seed) & (runs.method == method)]["test_acc"].item()
        assert (part["n"] * part["acc"].fillna(0)).sum() / n_test == pytest.approx(test_acc)
    # The ensemble sums the two unimodal models' (globally standardised) logits: where both pick
    # the label, so does the sum.
    both = frame[(frame.method == "ensemble") & (frame.group == "both right") & (frame.n > 0)]
    assert len(both) == 2 and (both["acc"] == 1.0).all()


def declared_outs() -> set[str]:
    """What the `error_analysis` stage of dvc.yaml declares."""
    import yaml
    from pathlib import Path
    stage = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]["error_analysis"]
    return {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"] + stage["metrics"]}


def write_study_tables(root) -> None:
    """What the synthetic and benchmarks stages leave for this one under the base profile: each
    study's runs table under results/<section>, and beside it what the stage computed from its
    runs (errors.csv, robustness.csv, generator.csv: mcrlib.analysis.run_analyses), as notebooks
    02 and 03 write them. The studies are loaded as the notebook loads them; their runs train
    into a cache that is removed afterwards: the error analysis must not need it."""
    import shutil

    from mcrlib.analysis.run_analyses import study_analyses, write_analyses
    from mcrlib.profiles import load_stage
    from mcrlib.studies.results import study_results
    from mcrlib.studies import benchmarks, synthetic
    cache = root / "study-cache"   # private, and removed below
    sections = load_stage("quick", "error_analysis", root, reads=("synthetic", "benchmarks"))
    section = sections["benchmarks"]
    studies = {"synthetic": (synthetic, synthetic.load_study(sections["synthetic"])),
               "benchmarks": (benchmarks, benchmarks.load_study(
                   {**section, "datasets": benchmarks.resolve_datasets(section["datasets"], root)}))}
    errors = sections["error_analysis"]
    for name, (module, study) in studies.items():
        runs, trials = module.run_study(study, cache)
        save_runs(runs, trials, root / "results" / name)
        cell = "ratio" if name == "synthetic" else "dataset"
        write_analyses(study_analyses(runs, study_results(runs, cache), cell, errors["perturbations"],
                                      seed=errors["perturbation_seed"], generator_groups=name == "synthetic"),
                       root / "results" / name)
    shutil.rmtree(cache)


STUDY_TABLES = {f"results/{name}/{table}" for name in ("synthetic", "benchmarks")
                for table in ("runs.csv", "search.csv", "errors.csv", "robustness.csv")} | {"results/synthetic/generator.csv"}


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """The stage as `dvc repro` runs it, under the base profile (the params.yaml of `root`): the
    two studies' runs tables written first (tiny sections, so their runs train in seconds), then
    the notebook, which reads them."""
    import yaml

    from mcrlib.pipeline import execute
    root = tmp_path_factory.mktemp("stage")
    tiny = {"model": TINY_RUN["model"], "train": SMALL_TRAIN, "seeds": [0, 1], "profile": "tiny-test"}
    params = {"synthetic": {**tiny, "ratios": [1.0], "methods": ["ensemble", "joint", "mmcosine"], "data": SMALL_DATA},
              "benchmarks": {**tiny, "methods": ["ensemble", "joint", "arm"],
                             "datasets": {"tiny": {"name": "synthetic", "params": {**SMALL_DATA, "unique2": 0.5,
                                                                                   "unique1": 0.0, "shared": 0.5}}}},
              "error_analysis": {"profile": "tiny-test", "methods": ["ensemble", "joint", "mcr"],
                                 "perturbations": ["zero", "permute"], "perturbation_seed": 0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    write_study_tables(root)
    from pathlib import Path
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "05_error_analysis.py"
    execute(notebook, "error_analysis", root=root)
    return root, params


def test_stage_writes_exactly_its_declared_outputs(stage):
    root, _ = stage
    written = {str(p.relative_to(root)) for folder in ("results", "figures") for p in (root / folder).rglob("*") if p.is_file()}
    assert written - STUDY_TABLES == declared_outs()
    for name in ("fig5_errors_synthetic.png", "robustness_benchmarks.pdf"):
        assert (root / "figures" / name).stat().st_size > 1000


def test_stage_analyses_the_runs_of_the_params_file_sections(stage):
    import json
    root, params = stage
    out = root / "results" / "error_analysis"
    errors = pd.read_csv(out / "errors.csv")
    assert set(errors["cell"]) == {"u1/s = 1", "tiny"} and set(errors["seed"]) == {0, 1}
    assert set(errors["method"]) == {"ensemble", "joint", "mmcosine", "arm"}
    n_test = SMALL_DATA["n_test"]
    assert (errors.groupby(["cell", "seed", "method"])["n"].sum() == n_test).all()
    # Two analyses of the same runs agree: the groups' size-weighted accuracy is the clean
    # accuracy of the model rebuilt from its weights.
    errors["hits"] = errors["n"] * errors["acc"].fillna(0)
    overall = errors.groupby(["cell", "seed", "method"])["hits"].sum() / n_test
    robust = pd.read_csv(out / "robustness.csv")
    clean = robust[robust.perturbation == "clean"].set_index(["cell", "seed", "method"])["acc"]
    assert set(robust["method"]) == {"joint", "mmcosine", "arm"} and set(robust["perturbation"]) == {"clean", "zero", "permute"}
    assert clean.to_dict() == pytest.approx(overall.loc[clean.index].to_dict())
    # The error table is the mean and std over seeds of errors.csv.
    table = pd.read_csv(out / "error_table.csv", index_col=0)
    cell = errors[(errors.cell == "tiny") & (errors.group == "only modality 2") & (errors.method == "arm")]["acc"] * 100
    mean, std = map(float, table.loc["tiny · only modality 2", "arm"].split(" ± "))
    assert mean == pytest.approx(cell.mean(), abs=0.051) and std == pytest.approx(cell.std(), abs=0.051)
    assert (errors.groupby(["cell", "group"])["n"].sum() > 0).all()   # every group is populated here
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dominant_modality"]) == {"u1/s = 1", "tiny"}
    # "tiny" has no unique-1 samples and half unique-2 ones: modality 2 is the better one there.
    assert metrics["dominant_modality"]["tiny"] == "x2"
    generator = pd.read_csv(out / "generator_table.csv", index_col=0)
    assert list(generator.columns) == ["shared @ u1/s = 1", "unique-1 @ u1/s = 1", "unique-2 @ u1/s = 1"]
