"""The benchmarks study in parts: the same runs and analyses as the whole study, a stale or broken
part never read, and dvc.yaml's part stages matching the params."""
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mcrlib.analysis.run_analyses import study_analyses
from mcrlib.config import ConfigError
from mcrlib.profiles import load_profile
from mcrlib.studies import benchmark_parts as bp
from mcrlib.studies.benchmarks import load_study, run_study
from mcrlib.studies.results import study_results

ROOT = Path(__file__).resolve().parents[1]
PERTURBATIONS = ["zero"]


def tiny_study(seeds=(0, 1, 2), methods=("ensemble", "joint")):
    return load_study({"profile": "test", "seeds": list(seeds), "methods": list(methods),
                       "datasets": {"tiny": {"name": "synthetic", "family": "MLP",
                                             "params": {"latent_dim": 4, "input_dim": 16, "n_train": 96,
                                                        "n_val": 48, "n_test": 48}}},
                       "model": {"hidden_dim": 16, "latent_dim": 8},
                       "train": {"max_epochs": 2, "batch_size": 32, "progress": False}})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def whole(cache):
    """The study run whole, as the notebook did before parts, with its analyses."""
    study = tiny_study()
    runs, search = run_study(study, cache)
    return {"runs": runs, "search": search,
            **study_analyses(runs, study_results(runs, cache), "dataset", PERTURBATIONS, seed=0)}


def assemble(study, cache, folder, **kw):
    return bp.assemble(study, 2, cache, folder, perturbations=PERTURBATIONS, perturbation_seed=0, **kw)


def test_parts_split_the_seeds_and_keep_each_seed_on_its_fold():
    study = load_study(load_profile("quick", ROOT)["benchmarks"])   # 30 seeds over 6 folds
    parts = [bp.part_seeds(study, k, 6) for k in range(6)]
    assert sorted(s for p in parts for s in p) == list(study.seeds)
    for k, seeds in enumerate(parts):
        part = bp.part_study(study, k, 6)
        assert part.seeds == seeds == tuple(range(k, 30, 6))
        assert {part.data_config("AV-Digits", s).params["fold"] for s in seeds} == {k}   # part k is fold k
        for seed in seeds:
            assert part.run_config("mcr", "AV-Digits", seed) == study.run_config("mcr", "AV-Digits", seed)
    # four parts over 30 seeds: folds interleave, and every run is still the whole study's
    part = bp.part_study(study, 1, 4)
    for seed in part.seeds:
        assert part.run_config("joint", "AV-Digits", seed) == study.run_config("joint", "AV-Digits", seed)
    assert bp.part_count(tiny_study(seeds=(0, 1)), 6) == 2                   # at most one part per seed
    with pytest.raises(ConfigError, match="part.*from 0 to 5"):
        bp.part_seeds(study, 6, 6)
    with pytest.raises(ConfigError, match="parts.benchmarks"):
        bp.part_count(study, 0)


def test_the_parts_assembled_are_the_whole_study(whole, cache, tmp_path, capsys):
    study = tiny_study()
    frames = assemble(study, cache, tmp_path)
    assert "part 1 of 2 (seeds [1]): it is missing; training it" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "0").iterdir()) == sorted([bp.META, *(f"{n}.csv" for n in bp.FRAMES)])
    for name in ("runs", "errors", "robustness"):
        pd.testing.assert_frame_equal(frames[name], whole[name].reset_index(drop=True), check_dtype=False)
    # read back from disk, nothing trains, and the frames are the same
    again = assemble(study, tmp_path / "no-cache", tmp_path, train=False)
    assert capsys.readouterr().out == ""
    for name in ("runs", "errors", "robustness"):
        pd.testing.assert_frame_equal(again[name], whole[name].reset_index(drop=True), check_dtype=False)
    assert json.loads((tmp_path / "1" / bp.META).read_text())["seeds"] == [1]


def test_a_part_made_from_other_code_params_or_analyses_is_never_read(cache, tmp_path):
    study = tiny_study()
    assemble(study, cache, tmp_path)
    runs_file = tmp_path / "1" / "runs.csv"
    good = runs_file.read_text()
    runs = pd.read_csv(runs_file, dtype=str)
    runs.loc[1, "run_key"] = "0" * 16                       # a run trained from other code or data
    runs.to_csv(runs_file, index=False)
    with pytest.raises(FileNotFoundError, match="part 1 .*1 of its 4 run keys differ"):
        assemble(study, cache, tmp_path, train=False)
    assemble(study, cache, tmp_path)                       # trained again (from the run cache) and rewritten
    assert runs_file.read_text() == good
    # other params: the part's units are not the study's any more
    longer = tiny_study(methods=("ensemble", "joint", "multiloss"))
    with pytest.raises(FileNotFoundError, match="not the part's"):
        bp.assemble(longer, 2, cache, tmp_path, perturbations=PERTURBATIONS, perturbation_seed=0, train=False)
    # other perturbations: the analyses are not the ones asked for
    with pytest.raises(FileNotFoundError, match="its perturbations was"):
        bp.assemble(study, 2, cache, tmp_path, perturbations=["permute"], perturbation_seed=0, train=False)


def test_a_broken_or_half_written_part_is_reported_and_trained_again(cache, tmp_path):
    study = tiny_study()
    assemble(study, cache, tmp_path)
    (tmp_path / "0" / "errors.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(UserWarning, match="cannot read this part"):
        assemble(study, cache, tmp_path)
    (tmp_path / "1" / "runs.csv").unlink()                 # killed before its last file
    with pytest.raises(FileNotFoundError, match="part 1 .*it is missing"):
        assemble(study, cache, tmp_path, train=False)


def test_dvc_runs_one_stage_per_part_and_the_notebook_reads_them():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    parts = load_profile("quick", ROOT)["parts"]["benchmarks"]
    part = stages["benchmarks_part"]
    assert part["foreach"] == list(range(parts))
    outs = [next(iter(o)) for o in part["do"]["outs"]]
    assert outs == [f"results/benchmarks/parts/${{item}}/{name}" for name in (bp.META, *(f"{n}.csv" for n in bp.FRAMES))]
    # DVC deletes a stage's outs before it runs it unless they persist: a current part would be lost
    assert all(o[next(iter(o))].get("persist") is True for o in part["do"]["outs"])
    assert {"benchmarks", "parts.benchmarks", "error_analysis.perturbations"} <= set(part["do"]["params"])
    assert "results/benchmarks/parts" in stages["benchmarks"]["deps"]
    for profile in ("smoke", "paper"):   # every profile says how many parts, and they fit its seeds
        params = load_profile(profile, ROOT)
        assert bp.part_count(load_study(params["benchmarks"]), params["parts"]["benchmarks"]) >= 1


def test_a_bad_part_number_is_one_line_with_exit_status_2(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_:
        bp.main(["--part", "6"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a part from 0 to 5" in err
