"""ConFu's experiments end to end at toy size: the XOR case, AV-Digits on an FSDD fixture in the
real format, the paired table, and the `confu` section's validation."""
from pathlib import Path

import pandas as pd
import pytest

from mcrlib.config import ConfigError
from mcrlib.confu.experiment import COLUMNS, load_study, paired_table, run_avdigits, run_xor
from mcrlib.profiles import load_stage

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model": {"hidden_dim": 16, "encoder_dim": 8, "embed_dim": 8, "fusion_hidden": 16, "text_embed": 4,
                  "text_hidden": 8},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "progress": False}, "probe_max_iter": 50}


def check_frame(results: pd.DataFrame, methods, units: int):
    assert list(results.columns) == COLUMNS
    assert set(results["method"]) == set(methods)
    assert results["value"].between(0, 1).all() and results["value"].notna().all()
    counts = results.groupby(["family", "task", "metric", "method"]).size()
    assert (counts == units).all()                      # every (task, metric, method) on every unit


def test_run_xor_gives_every_task_for_every_method_and_seed():
    study = load_study({**TINY, "xor": {"seeds": [0, 1, 2], "data": {"n_classes": 3, "latent_dim": 4,
                                                                       "input_dim": 16, "n_train": 64, "n_val": 2,
                                                                       "n_test": 48}}})
    results, curves = run_xor(study)
    check_frame(results, ["confu", "pairwise", "symile", "gram"], units=3)
    tasks = set(results["task"])
    assert {"x1+x2 (native) → x3", "x1+x2 (sum) → x3", "x1 → x3", "x1+x2 (native) → (u + v) mod C"} <= tasks
    # the pairwise baseline's own two-to-one score is the sum: no separate "sum" row for it
    assert not ((results["method"] == "pairwise") & (results["task"] == "x1+x2 (sum) → x3")).any()
    # GRAM's volume score has no query vector, so no native probe; every other task is there
    gram_tasks = set(results.loc[results["method"] == "gram", "task"])
    assert tasks - gram_tasks == {"x1+x2 (native) → (u + v) mod C"}
    assert len(curves) == 3 * 4 * 2 and curves["loss"].notna().all()
    table = paired_table(results)
    assert set(zip(table["method"], table["reference"])) == {("confu", "pairwise"), ("symile", "pairwise"),
                                                              ("gram", "pairwise"), ("confu", "symile"),
                                                              ("confu", "gram")}
    row = table[(table["task"] == "x1 → x3") & (table["metric"] == "R@1") & (table["method"] == "confu")
                & (table["reference"] == "pairwise")].iloc[0]
    wide = results[(results["task"] == "x1 → x3") & (results["metric"] == "R@1")].pivot(
        index="seed", columns="method", values="value")
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx((wide["confu"] - wide["pairwise"]).mean())
    assert row["low"] <= row["mean_diff"] <= row["high"]


@pytest.fixture(scope="module")
def avdigits_folder(tmp_path_factory):
    from mcrlib.data.prepare import prepare
    from tests.fixtures.fsdd import write_fsdd
    root = tmp_path_factory.mktemp("fsdd")
    sums = write_fsdd(root, takes=2)
    out = root / "prepared"
    prepare("avdigits", {"root": str(root), "checksums": str(sums)}, out)
    return out


def test_run_avdigits_reports_zero_shot_retrieval_and_probes_per_fold_and_seed(avdigits_folder):
    study = load_study({**TINY, "methods": ["confu", "gram"],
                        "avdigits": {"folds": [0, 3], "seeds": [0, 1], "data": {"audio_snr_db": 60.0}}})
    results, curves = run_avdigits(study, avdigits_folder)
    check_frame(results, ["confu", "gram"], units=4)
    assert set(results["fold"]) == {0, 3} and set(results["dataset"]) == {"AV-Digits"}
    zero_shot = set(results.loc[results["family"] == "zero-shot", "task"])
    assert zero_shot == {"image+audio (native) → caption", "image+audio (sum) → caption", "image → caption",
                         "audio → caption"}
    assert {"image → audio", "audio → image", "image+caption (native) → audio"} <= set(results["task"])
    at1 = results[results["metric"] == "acc@1"].set_index(["method", "fold", "seed", "task"])["value"]
    at5 = results[results["metric"] == "acc@5"].set_index(["method", "fold", "seed", "task"])["value"]
    assert (at5 >= at1).all()
    table = paired_table(results)
    assert (table["design"] == "folds fixed, seeds within").all() and (table["n"] == 4).all()


def test_the_study_section_is_validated_and_the_profiles_load():
    with pytest.raises(ConfigError, match="confu.methods"):
        load_study({"methods": ["confu", "clip"]})
    with pytest.raises(ConfigError, match="confu.train.epochs"):
        load_study({"train": {"epochs": 0}})
    with pytest.raises(ConfigError, match="unknown key 'confu.avdigits.fold'"):
        load_study({"avdigits": {"fold": 1}})
    quick = load_study(load_stage("quick", "confu", ROOT)["confu"])
    assert len(quick.avdigits.folds) == 6 and len(quick.avdigits.seeds) >= 2 and quick.lam == 0.5
    assert quick.train.weight_decay == 1e-4 and quick.tau == 0.07 and quick.model.fusion_hidden == 512
    smoke = load_study(load_stage("smoke", "confu", ROOT)["confu"])
    assert smoke.avdigits is None and smoke.xor is not None


def test_no_confu_module_is_in_a_run_key():
    """The family is added beside the supervised methods: no run's code closure reaches it, so
    adding it retrains nothing (mcrlib.run_key hashes mcrlib.runs, the method's and the dataset's
    modules and what they import)."""
    from mcrlib.code_closure import closure
    from mcrlib.data import DATASETS
    from mcrlib.methods import METHODS
    from mcrlib.run_key import RUN_LAYER
    modules = set()
    for method in METHODS:
        for dataset in DATASETS:
            modules |= set(closure([RUN_LAYER, METHODS.module_name(method), DATASETS.module_name(dataset)]))
    assert "mcrlib.runs" in modules and "mcrlib.losses" in modules
    assert not any(m.startswith("mcrlib.confu") or m == "mcrlib.losses.higher_order" for m in modules)


def test_summary_table_gives_mean_and_std_per_task_and_method():
    from mcrlib.confu.experiment import summary_table
    rows = [{"dataset": "XOR", "method": m, "fold": 0, "seed": s, "family": "retrieval", "task": "x1 → x3",
             "metric": "R@1", "value": v} for m, values in (("symile", (0.5, 0.7)), ("confu", (0.2, 0.4)))
            for s, v in enumerate(values)]
    means, text = summary_table(pd.DataFrame(rows, columns=COLUMNS))
    assert list(means.columns) == ["confu", "symile"]                  # the family's order, not the frame's
    assert means.loc[("XOR", "retrieval", "x1 → x3", "R@1")].tolist() == pytest.approx([0.3, 0.6])
    assert text.loc[("XOR", "retrieval", "x1 → x3", "R@1"), "confu"] == "30.0 ± 14.1"
