"""Benchmark calibration: the criterion, the choice rule, and the recipe reaching the sections."""
import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from mcrlib.config import ConfigError
from mcrlib.studies import calibration as cal
from mcrlib.profiles import load_stage
from mcrlib.studies.benchmarks import resolve_datasets
from mcrlib.studies.synthetic import load_study

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


def test_synthetic_criterion_is_the_probed_modality_suppressed_inside_joint_training():
    """(c): at the highest ratio the probe of the declared modality (x2) inside the joint model is
    below its unimodal model, by the floor, interval excluding 0. The drop comparison with the
    Ensemble is shown and decides nothing."""
    rows, probes = [], []
    for label, probe_x2 in (("suppressed", 0.33), ("not", 0.41), ("barely", 0.395)):
        for seed in range(5):
            w = 0.003 * (-1) ** seed
            for method, lo, hi in (("unimodal-x1", 0.5, 0.5), ("unimodal-x2", 0.5, 0.4), ("ensemble", 0.7, 0.6),
                                   ("joint", 0.7, 0.62)):
                for ratio, acc in ((0.25, lo), (4.0, hi)):
                    rows.append({"setting_label": label, "setting": json.dumps({"k": label}), "seed": seed,
                                 "method": method, "ratio": ratio, "test_acc": acc})
            probes += [{"setting_label": label, "seed": seed, "modality": "x2", "probe": probe_x2 + w},
                       {"setting_label": label, "seed": seed, "modality": "x1", "probe": 0.2}]
    table = cal.judge_synthetic(pd.DataFrame(rows), dataclasses.replace(CRITERION, probe_gap_min=0.02), pd.DataFrame(probes))
    assert table["probed modality"].tolist() == ["x2"] * 3
    assert table["probe - unimodal"].tolist() == pytest.approx([-0.07, 0.01, -0.005], abs=1e-3)
    # "barely": below and excluding zero, but less than the 2-point floor
    assert table["(c) probed modality suppressed"].tolist() == [True, False, False]
    assert table["chosen"].tolist() == [True, False, False]
    assert table["joint drop - ensemble drop"].tolist() == pytest.approx([-0.02] * 3)   # shown only


def test_a_synthetic_grid_may_list_its_settings():
    calibration = cal.load_calibration({"synthetic_grid": [
        {"generator": "class_means", "mean_scale": 1.5}, {"generator": "label_shift", "mean_scale": 0.2}]})
    grid = cal.synthetic_grid(calibration, {"ratios": [0.25, 1.0, 4.0], "seeds": [0], "data": {"n_test": 100}})
    assert [setting for setting, _ in grid.values()] == [{"generator": "class_means", "mean_scale": 1.5},
                                                         {"generator": "label_shift", "mean_scale": 0.2}]
    assert [section["data"] for _, section in grid.values()] == [
        {"n_test": 100, "generator": "class_means", "mean_scale": 1.5},
        {"n_test": 100, "generator": "label_shift", "mean_scale": 0.2}]
    assert cal.grid_knobs(calibration.synthetic_grid) == ["generator", "mean_scale"]
    for bad in ([], [{"mean_scale": 1.0}, {"n_train": 10}], ["x"]):
        with pytest.raises(ConfigError, match="calibrate.synthetic_grid"):
            cal.load_calibration({"synthetic_grid": bad})


def test_synthetic_probes_read_each_encoder_of_the_joint_runs_at_the_highest_ratio(tmp_path):
    """On real (tiny) runs: a probe per modality of every joint run at the highest ratio, none of
    the other runs; a probe is a test accuracy."""
    from mcrlib.studies.grid import run_grid
    from mcrlib.studies.results import study_results
    calibration = cal.load_calibration({"synthetic_grid": {"mean_scale": [2.0]}})
    (setting, section), = cal.synthetic_grid(calibration, {
        "ratios": [0.25, 4.0], "seeds": [0, 1], "unique2": 0.2,
        "data": {"latent_dim": 4, "input_dim": 16, "n_train": 128, "n_val": 64, "n_test": 64},
        "model": {"hidden_dim": 16, "latent_dim": 8}, "train": {"max_epochs": 2, "batch_size": 32, "progress": False}}).values()
    study = load_study(section)
    runs, _ = run_grid(cells=study.ratios, seeds=study.seeds, methods=study.methods, search=study.search,
                       make_config=study.run_config, modalities=lambda _: ("x1", "x2"), cache_dir=tmp_path,
                       workers=1, cell_name="ratio")
    runs = runs.assign(setting_label="s", setting=json.dumps(setting))
    probes = cal.synthetic_probes(runs, study_results(runs, tmp_path))
    assert sorted(zip(probes["seed"], probes["modality"])) == [(0, "x1"), (0, "x2"), (1, "x1"), (1, "x2")]
    assert probes["probe"].between(0, 1).all() and (probes["probe"] * 64).round(6).eq((probes["probe"] * 64).round()).all()
    table = cal.judge_synthetic(runs, calibration.criterion, probes)
    assert len(table) == 1 and table["units"].item() == 2


def test_joint_must_be_below_the_ensemble_by_the_floor_with_folds_as_blocks():
    """(c) with an effect-size floor, on (fold, seed) units: 6 folds x 2 seeds, the folds' levels
    differ a lot (speakers) and the within-fold gap is steady, so the blocked interval is narrow."""
    rows = []
    for fold in range(6):
        for replicate in range(2):
            seed = fold + 6 * replicate
            level = 0.05 * (fold - 2.5)                 # between-speaker spread, shared by every method
            for method, acc in (("unimodal-audio", 0.60), ("unimodal-visual", 0.70), ("ensemble", 0.82),
                                ("joint", 0.805 + 0.002 * (-1) ** replicate)):
                rows.append({"dataset": "A", "fold": fold, "seed": seed, "method": method, "test_acc": acc + level})
    runs, labels = pd.DataFrame(rows), {"A": ("avdigits", {"image_energy": 0.2})}
    lenient = cal.judge_benchmark(runs, labels, CRITERION)
    assert lenient.loc[0, "design"] == "folds fixed, seeds within" and lenient.loc[0, "units"] == 12
    assert lenient.loc[0, "high"] < 0 and lenient.loc[0, "(c) joint < ensemble"]
    strict = cal.judge_benchmark(runs, labels, cal.Criterion(joint_gap_min=0.02))   # the gap is 1.5 points
    assert not strict.loc[0, "(c) joint < ensemble"] and not strict.loc[0, "meets all"]
    with pytest.raises(ConfigError, match="joint_gap_min"):
        cal.load_calibration({"criterion": {"joint_gap_min": -0.01}})


def test_settings_follow_the_declared_order_and_bad_grids_are_rejected():
    assert cal.settings({"a": [1, 2], "b": [3, 4]}) == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ConfigError, match="calibrate.grids.avdigits"):
        cal.load_calibration({"grids": {"avdigits": {"image_energy": []}}})
    with pytest.raises(ConfigError, match="calibrate.seeds"):
        cal.load_calibration({"seeds": {"avdigits": [1, 2]}})


def test_calibrated_sections_take_the_chosen_recipe(tmp_path):
    """A stage's sections arrive calibrated (mcrlib.profiles.load_stage); a study never reads
    chosen.json, and a dataset whose mark was not applied is refused."""
    import yaml
    datasets = {"AV": {"name": "avdigits", "params": {"prepared": "data/none"}, "calibrated": True}}
    with pytest.raises(ConfigError, match="load_stage"):
        resolve_datasets(datasets, tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "benchmarks": {"datasets": datasets}, "synthetic": {"calibrated": True, "data": {"mean_scale": 1.5, "latent_dim": 8}}}))
    (tmp_path / "results" / "calibrate").mkdir(parents=True)
    (tmp_path / "results" / "calibrate" / cal.CHOSEN_FILE).write_text(json.dumps({
        "avdigits": {"params": {"image_energy": 0.2, "audio_snr_db": 60.0}, "meets_criterion": True},
        "synthetic": {"params": {"mean_scale": 2.5, "n_train": 2000}, "meets_criterion": False}}))
    sections = load_stage("quick", "benchmarks", tmp_path, reads=("synthetic",))
    resolved = resolve_datasets(sections["benchmarks"]["datasets"], tmp_path)["AV"]
    assert "calibrated" not in resolved and resolved["params"] == {"prepared": str(tmp_path.resolve() / "data/none"),
                                                                  "image_energy": 0.2, "audio_snr_db": 60.0}
    uncalibrated = load_stage("quick", "benchmarks", tmp_path, calibrated=False)["benchmarks"]
    assert resolve_datasets(uncalibrated["datasets"], tmp_path)["AV"]["params"] == {"prepared": str(tmp_path.resolve() / "data/none")}
    study = load_study(sections["synthetic"])
    assert study.data == {"mean_scale": 2.5, "latent_dim": 8, "n_train": 2000} and not study.calibrated

def test_the_grids_are_sections_of_the_studies_they_calibrate():
    """The calibration builds params sections; the caller builds the studies (no study imports another)."""
    from mcrlib.studies import benchmarks
    sections = load_stage("quick", "calibrate", Path(__file__).resolve().parents[1], reads=("synthetic", "benchmarks"),
                          calibrated=False)
    calibration = cal.load_calibration(sections["calibrate"])
    grid = cal.synthetic_grid(calibration, sections["synthetic"])
    declared = [setting for setting, _ in grid.values()]
    # the floor: at least 8 synthetic settings, the paper's literal generator among them
    assert len(declared) >= 8 and {s["generator"] for s in declared} == {"class_means", "label_shift"}
    assert {(s["latent_dim"], s["latent_dim2"]) for s in declared} == {(32, 0), (100, 10)}   # the authors' 100 / 10
    for setting, section in grid.values():
        study = load_study(section)
        assert study.methods == ("ensemble", "joint") and study.ratios == (0.25, 4.0)
        assert {k: study.data[k] for k in setting} == setting
    section, labels = cal.benchmark_grid(calibration, sections["benchmarks"])
    study = benchmarks.load_study(section)
    assert list(study.datasets) == list(labels) and {name for name, _ in labels.values()} == {"avdigits"}
    assert len(labels) >= 12   # the floor for AV-Digits
    assert sorted({study.datasets[label]["params"]["image_energy"] for label in labels}) == [0.1, 0.2, 0.3]
    assert sorted({(study.datasets[label]["train"]["max_epochs"], study.datasets[label]["train"]["patience"])
                   for label in labels}) == [(12, 4), (30, 8)]
    assert {study.datasets[label]["params"]["test_images"] for label in labels} == {5}


def test_the_grids_run_on_selection_seeds_apart_from_the_studies_seeds():
    from mcrlib.studies import benchmarks
    sections = load_stage("quick", "calibrate", Path(__file__).resolve().parents[1], reads=("synthetic", "benchmarks"),
                          calibrated=False)
    calibration = cal.load_calibration(sections["calibrate"])
    section, labels = cal.benchmark_grid(calibration, sections["benchmarks"])
    study = benchmarks.load_study(section)
    assert study.seeds == tuple(calibration.seeds["benchmarks"]) and not set(study.seeds) & set(sections["benchmarks"]["seeds"])
    label = next(iter(labels))
    assert sorted(study.data_config(label, s).params["fold"] for s in study.seeds) == list(range(6))   # one per fold
    for _, synthetic_section in cal.synthetic_grid(calibration, sections["synthetic"]).values():
        seeds = load_study(synthetic_section).seeds
        assert seeds == tuple(calibration.seeds["synthetic"]) and not set(seeds) & set(sections["synthetic"]["seeds"])
    # without selection seeds a grid runs on the study's own seeds (its chosen runs are the study's)
    plain = cal.load_calibration({**sections["calibrate"], "seeds": {}})
    assert cal.benchmark_grid(plain, sections["benchmarks"])[0]["seeds"] == sections["benchmarks"]["seeds"]


def test_a_training_budget_knob_reaches_the_grid_and_the_calibrated_sections():
    """`train.max_epochs` in a benchmark grid sets the dataset entry's train budget, not its data,
    both in the calibration's grid and where a stage applies the choice."""
    from mcrlib.profiles import apply_calibration
    calibration = cal.load_calibration({"grids": {"avdigits": {"image_energy": [0.3], "train.max_epochs": [12, 24]}}})
    section, labels = cal.benchmark_grid(calibration, {"datasets": {"AV": {"name": "avdigits", "folds": [0]}},
                                                       "seeds": [0], "train": {"max_epochs": 12}})
    assert [(spec["params"], spec["train"]) for spec in section["datasets"].values()] == [
        ({"image_energy": 0.3}, {"max_epochs": 12}), ({"image_energy": 0.3}, {"max_epochs": 24})]
    chosen = {"avdigits": {"params": {"image_energy": 0.3, "train.max_epochs": 24}, "meets_criterion": True}}
    applied = apply_calibration({"datasets": {"AV": {"name": "avdigits", "calibrated": True,
                                                     "train": {"patience": 4}}}}, chosen)
    assert applied["datasets"]["AV"] == {"name": "avdigits", "params": {"image_energy": 0.3},
                                         "train": {"patience": 4, "max_epochs": 24}}
