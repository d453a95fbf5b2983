"""Benchmark calibration: the criterion, the choice rule, and the recipe reaching the sections."""
import json

import pandas as pd
import pytest

from mcrlib.config import ConfigError
from mcrlib.studies import calibration as cal
from mcrlib.studies.benchmarks import resolve_datasets
from mcrlib.studies.synthetic import load_study, resolve

CRITERION = cal.Criterion()


def bench_runs(label, audio, visual, ensemble, joint, units=6):
    rows = []
    for seed in range(units):
        wobble = 0.004 * (-1) ** seed
        for method, acc in (("unimodal-audio", audio), ("unimodal-visual", visual), ("ensemble", ensemble),
                            ("joint", joint + wobble)):
            rows.append({"dataset": label, "seed": seed, "method": method, "test_acc": acc})
    return pd.DataFrame(rows)


def test_the_first_setting_meeting_every_criterion_is_chosen():
    labels = {"A": ("avdigits", {"image_energy": 0.2}), "B": ("avdigits", {"image_energy": 0.3}),
              "C": ("avdigits", {"image_energy": 0.4})}
    runs = pd.concat([bench_runs("A", 0.40, 0.70, 0.80, 0.75),    # (a) fails: audio near chance side
                      bench_runs("B", 0.55, 0.70, 0.80, 0.74),    # meets (a), (b) and (c)
                      bench_runs("C", 0.60, 0.75, 0.85, 0.80)])   # meets all too, but comes later
    table = cal.judge_benchmark(runs, labels, CRITERION)
    assert table["meets all"].tolist() == [False, True, True]
    assert table["chosen"].tolist() == [False, True, False]
    assert table.loc[0, "(b) ensemble gain"] and not table.loc[0, "(a) unimodal in range"]
    assert table.loc[1, "joint - ensemble"] == pytest.approx(-0.06)
    assert cal.chosen_settings({"avdigits": table}, {"avdigits": ["image_energy"]}) == {
        "avdigits": {"params": {"image_energy": 0.3}, "meets_criterion": True}}


def test_without_a_setting_meeting_the_criterion_the_closest_is_kept_and_flagged():
    labels = {"A": ("avdigits", {"snr": 30.0}), "B": ("avdigits", {"snr": 60.0})}
    runs = pd.concat([bench_runs("A", 0.40, 0.70, 0.72, 0.74),    # joint above the ensemble
                      bench_runs("B", 0.45, 0.70, 0.72, 0.70)])   # joint below: (c) met, (a), (b) not
    table = cal.judge_benchmark(runs, labels, CRITERION)
    assert not table["meets all"].any() and table["chosen"].tolist() == [False, True]
    assert cal.chosen_settings({"avdigits": table}, {"avdigits": ["snr"]})["avdigits"]["meets_criterion"] is False


def test_synthetic_criterion_is_joint_falling_faster_than_the_ensemble():
    rows = []
    for label, joint_hi in (("fast", 0.40), ("slow", 0.62)):   # joint drops 0.30 or 0.08; the ensemble 0.10
        for seed in range(5):
            w = 0.003 * (-1) ** seed
            for method, lo, hi in (("unimodal-x1", 0.5, 0.5), ("unimodal-x2", 0.5, 0.4), ("ensemble", 0.7, 0.6),
                                   ("joint", 0.7, joint_hi + w)):
                for ratio, acc in ((0.25, lo), (4.0, hi)):
                    rows.append({"setting_label": label, "setting": json.dumps({"k": label}), "seed": seed,
                                 "method": method, "ratio": ratio, "test_acc": acc})
    table = cal.judge_synthetic(pd.DataFrame(rows), CRITERION)
    assert table["(c) joint falls faster"].tolist() == [True, False]
    assert table["chosen"].tolist() == [True, False]


def test_settings_follow_the_declared_order_and_bad_grids_are_rejected():
    assert cal.settings({"a": [1, 2], "b": [3, 4]}) == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ConfigError, match="calibrate.grids.avdigits"):
        cal.load_calibration({"grids": {"avdigits": {"image_energy": []}}})


def test_calibrated_sections_take_the_chosen_recipe(tmp_path, monkeypatch):
    datasets = {"AV": {"name": "avdigits", "params": {"prepared": "data/none"}, "calibrated": True}}
    with pytest.raises(FileNotFoundError, match="dvc repro calibrate"):
        resolve_datasets(datasets, tmp_path)
    (tmp_path / "results" / "calibrate").mkdir(parents=True)
    (tmp_path / "results" / "calibrate" / cal.CHOSEN_FILE).write_text(json.dumps({
        "avdigits": {"params": {"image_energy": 0.2, "audio_snr_db": 60.0}, "meets_criterion": True},
        "synthetic": {"params": {"mean_scale": 2.5, "n_train": 2000}, "meets_criterion": False}}))
    resolved = resolve_datasets(datasets, tmp_path)["AV"]
    assert "calibrated" not in resolved and resolved["params"] == {"prepared": str(tmp_path.resolve() / "data/none"),
                                                                  "image_energy": 0.2, "audio_snr_db": 60.0}
    assert resolve_datasets(datasets, tmp_path, calibrated=False)["AV"]["params"] == {"prepared": str(tmp_path.resolve() / "data/none")}
    study = load_study(resolve({"calibrated": True, "data": {"mean_scale": 1.5, "latent_dim": 8}}, tmp_path))
    assert study.data == {"mean_scale": 2.5, "latent_dim": 8, "n_train": 2000}
