"""The synthetic study's three-modality XOR case (mcrlib.studies.three_modal): its config in the
synthetic section, validated; its runs on a tiny config; its table's paired differences."""
import pandas as pd
import pytest

from mcrlib.config import ConfigError
from mcrlib.runs import run
from mcrlib.studies.synthetic import load_study
from mcrlib.studies.three_modal import run_config, run_three_modal, study_runs, three_modal_table

TINY = {"seeds": [0, 1], "methods": ["joint", "mcr"], "model": {"hidden_dim": 8, "latent_dim": 8},
        "train": {"max_epochs": 2, "batch_size": 32, "patience": 2, "progress": False},
        "method_params": {"mcr": {"copies": 4}},
        "three_modal": {"data": {"latent_dim": 4, "input_dim": 16, "n_train": 96, "n_val": 64, "n_test": 64},
                        "train": {"batch_size": 16}}}


def test_config_is_parsed_and_validated():
    study = load_study(TINY)
    assert study.three_modal.methods == ("ensemble", "joint", "mcr", "mcr_fused")
    assert load_study({k: v for k, v in TINY.items() if k != "three_modal"}).three_modal is None
    fused, plain = run_config(study, "mcr_fused", 1), run_config(study, "mcr", 1)
    assert fused.method.name == plain.method.name == "mcr"
    assert fused.method.params == {"copies": 4, "contrastive_terms": "fused"} and plain.method.params == {"copies": 4}
    assert fused.data.name == "synthetic_xor" and fused.data.params["data_seed"] == 1 and fused.seed == 1
    assert fused.train.batch_size == 16 and fused.train.max_epochs == 2 and fused.model == study.model
    bad = [({"methods": ["mcr", "ogm"]}, "synthetic.three_modal.methods=['mcr', 'ogm'] is invalid: expected a "
                                          "non-empty list of ['ensemble', 'joint', 'mcr', 'mcr_fused']"),
           ({"data": {"data_seed": 3}}, "synthetic.three_modal.data.data_seed=3 is invalid: expected no value "
                                        "here: data_seed comes from the synthetic study's seeds"),
           ({"data": {"shared": 0.5}}, "allowed keys:"),
           ({"train": {"lr": -1.0}}, "train.lr=-1.0 is invalid"),
           ({"methods": ["joint"], "method_params": {"mcr": {}}}, "method_params has 'mcr', which is not in"),
           ({"method_params": {"mcr_fused": {"temperature": -1.0}}}, "method.params.temperature=-1.0 is invalid"),
           ({"method_params": {"mcr_fused": {"contrastive_terms": "pairwise"}}},
            "synthetic.three_modal.method_params.mcr_fused.contrastive_terms='pairwise' is invalid: expected no "
            "value here: 'mcr_fused' is 'mcr' with contrastive_terms: fused")]
    for case, message in bad:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
            load_study({**TINY, "three_modal": {**TINY["three_modal"], **case}})


def test_runs_on_a_tiny_config(tmp_path):
    study = load_study(TINY)
    labels = [labels["method"] for labels, _ in study_runs(study)]
    assert labels == 2 * ["unimodal-x1", "unimodal-x2", "unimodal-x3", "ensemble", "joint", "mcr", "mcr_fused"]
    runs = run_three_modal(study, tmp_path)
    assert len(runs) == 14 and set(runs["seed"]) == {0, 1} and (runs["case"] == "xor").all()
    assert runs[["test_acc", "acc_x3-informative", "acc_x3-silent"]].notna().all().all()
    fused = run(run_config(study, "mcr_fused", 0), tmp_path)          # from the cache
    assert "train_loss_fused" in fused.history[-1]
    assert "train_loss_fused" not in run(run_config(study, "mcr", 0), tmp_path).history[-1]
    table = three_modal_table(runs)
    assert list(table.index) == ["Unimodal x1", "Unimodal x2", "Unimodal x3", "Ensemble", "Joint training",
                                 "MCR (pairwise L_con)", "MCR + fused term (ConFu)"]
    assert table.loc["MCR + fused term (ConFu)", "fused - pairwise: mean [95% CI]"] != ""


def test_table_paired_differences():
    """Hand-made accuracies over 3 seeds: differences fused - pairwise (+0.02, +0.04, +0.00),
    mean 2 points, Student-t 95% half-width t(0.975, 2) * 0.02 / sqrt(3) = 4.968 points."""
    acc = {"joint": [0.50, 0.60, 0.55], "mcr": [0.52, 0.60, 0.58], "mcr_fused": [0.54, 0.64, 0.58]}
    runs = pd.DataFrame([{"case": "xor", "seed": s, "method": m, "test_acc": a[s], "acc_x3-silent": a[s] / 2}
                         for m, a in acc.items() for s in range(3)])
    table = three_modal_table(runs)
    fused = table.loc["MCR + fused term (ConFu)"]
    assert fused["fused - pairwise: mean [95% CI]"] == "+2.0 [-3.0, +7.0]"
    assert fused["fused - pairwise, per seed"] == "+2.0, +4.0, +0.0"
    assert fused["vs joint, per seed"] == "+4.0, +4.0, +3.0"
    assert fused["test accuracy"] == "58.7 ± 5.0"
    assert table.loc["MCR (pairwise L_con)", "fused - pairwise: mean [95% CI]"] == ""
    assert table.loc["Joint training", "vs joint: mean [95% CI]"] == ""
