"""What a study's stage writes for the error analysis, and that the error analysis reads only files."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mcrlib.analysis.errors import error_frame
from mcrlib.analysis.run_analyses import FILES, read_analyses, study_analyses, write_analyses
from mcrlib.studies.results import study_results
from mcrlib.studies.synthetic import load_study, run_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    study = load_study({"ratios": [0.25, 4.0], "seeds": [0, 1], "unique2": 0.2, "methods": ["ensemble", "joint"],
                        "data": {"latent_dim": 4, "input_dim": 16, "n_train": 128, "n_val": 64, "n_test": 64},
                        "model": {"hidden_dim": 16, "latent_dim": 8},
                        "train": {"max_epochs": 2, "batch_size": 32, "progress": False}})
    runs, _ = run_study(study, cache)
    return runs, study_results(runs, cache)


def test_frames_round_trip_through_the_study_folder(tiny_study, tmp_path):
    runs, results = tiny_study
    frames = study_analyses(runs, results, "ratio", ["zero", "permute"], seed=0, generator_groups=True)
    assert sorted(p.name for p in write_analyses(frames, tmp_path)) == sorted(FILES.values())
    back = read_analyses(tmp_path)
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(back[name], frame.reset_index(drop=True), check_dtype=False)
    # the errors are error_frame's; robustness has a clean row and one per modality and perturbation
    pd.testing.assert_frame_equal(frames["errors"], error_frame(runs, results, "ratio"))
    robust = frames["robustness"]
    trained = runs[runs["method"] == "joint"]
    assert len(robust) == len(trained) * (1 + 2 * 2)
    assert set(robust["perturbation"]) == {"clean", "zero", "permute"}


def test_a_study_folder_without_its_analyses_names_the_stage_to_rerun(tmp_path):
    with pytest.raises(FileNotFoundError, match="rerun that stage"):
        read_analyses(tmp_path)


def test_the_error_analysis_stage_depends_on_the_files_the_studies_write():
    """dvc.yaml: each study stage declares the files among its outs (and the error_analysis params
    it applies: the perturbations, tests/test_dvc_diffs.py), and the error analysis declares them
    among its deps, so `dvc repro` orders the stages and reruns the analysis when a study changes,
    without the run cache."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for study, names in (("synthetic", ["errors", "generator", "robustness"]), ("benchmarks", ["errors", "robustness"])):
        files = [f"results/{study}/{FILES[n]}" for n in names]
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages[study]["outs"]]
        applied = {"error_analysis.perturbations", "error_analysis.perturbation_seed"}   # only what it applies
        assert set(files) <= set(outs) and applied <= set(stages[study]["params"])
        assert set(files) <= set(stages["error_analysis"]["deps"])
