"""The ablations study in parts: the same rows as the whole study, a stale or broken part never read,
and dvc.yaml's part stages matching the params."""
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mcrlib.config import ConfigError
from mcrlib.profiles import load_profile
from mcrlib.studies import ablation_parts as ap
from mcrlib.studies.ablations import load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
TINY = {"name": "synthetic", "ratio": 4.0,
        "params": {"unique2": 0.1, "latent_dim": 4, "input_dim": 16, "n_train": 64, "n_val": 32, "n_test": 32}}
BASE = {"lambda_mipd": 0.1, "lambda_uni": 0.01, "lambda_con": 1.0, "lambda_ceb": 0.0, "copies": 4}


def tiny_study(seeds=(0, 1, 2), tables=("table2_strategy",)):
    return load_study({"datasets": {"syn": TINY}, "seeds": list(seeds), "mcr": BASE, "tables": list(tables),
                       "model": {"hidden_dim": 16, "latent_dim": 8},
                       "train": {"max_epochs": 1, "warmup_epochs": 0, "batch_size": 32, "progress": False}})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def whole(cache):
    """The study run whole, as the notebook did before parts."""
    return run_study(tiny_study(), cache)


def test_parts_split_the_seeds_and_keep_each_seed_on_its_fold():
    params = load_profile("quick", ROOT)
    study = load_study({k: v for k, v in params["ablations"].items() if k != "cost"})   # 12 seeds over 6 folds
    parts = params["parts"]["ablations"]
    for k in range(parts):
        part = ap.part_study(study, k, parts, ap.SECTION)
        assert part.seeds == (k, k + 6)
        assert {part.data_config("AV-Digits", s).params["fold"] for s in part.seeds} == {k}   # part k is fold k
        for seed in part.seeds:
            for key in part.variants():
                assert part.run_config(key, "AV-Digits", seed) == study.run_config(key, "AV-Digits", seed)
    with pytest.raises(ConfigError, match="parts.ablations"):
        ap.part_count(study, 0, ap.SECTION)


def test_the_parts_assembled_are_the_whole_study(whole, cache, tmp_path, capsys):
    study = tiny_study()
    runs = ap.assemble(study, 2, cache, tmp_path)
    assert "ablations part 1 of 2 (seeds [1]): it is missing; training it" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "0").iterdir()) == ["part.json", "runs.csv"]
    pd.testing.assert_frame_equal(runs, whole, check_dtype=False)
    # read back from disk: nothing trains, and the rows are the same, in the whole study's order
    again = ap.assemble(study, 2, tmp_path / "no-cache", tmp_path, train=False)
    assert capsys.readouterr().out == ""
    pd.testing.assert_frame_equal(again, whole, check_dtype=False)
    assert json.loads((tmp_path / "1" / "part.json").read_text())["seeds"] == [1]


def test_a_part_made_from_other_code_or_params_is_never_read(cache, tmp_path):
    study = tiny_study()
    ap.assemble(study, 2, cache, tmp_path)
    runs_file = tmp_path / "1" / "runs.csv"
    good = runs_file.read_text()
    runs = pd.read_csv(runs_file, dtype=str)
    runs.loc[1, "run_key"] = "0" * 16                       # a run trained from other code or data
    runs.to_csv(runs_file, index=False)
    with pytest.raises(FileNotFoundError, match="part 1 .*1 of its .* run keys differ"):
        ap.assemble(study, 2, cache, tmp_path, train=False)
    ap.assemble(study, 2, cache, tmp_path)                 # trained again (from the run cache) and rewritten
    assert runs_file.read_text() == good
    wider = tiny_study(tables=("table2_strategy", "table4_perturbation"))   # other params: other rows
    with pytest.raises(FileNotFoundError, match="not the part's"):
        ap.assemble(wider, 2, cache, tmp_path, train=False)
    with pytest.raises(FileNotFoundError, match="its parts was 2, now 3"):   # split another way
        ap.assemble(study, 3, cache, tmp_path, train=False)


def test_a_broken_or_half_written_part_is_reported_and_trained_again(cache, tmp_path):
    study = tiny_study()
    ap.assemble(study, 2, cache, tmp_path)
    (tmp_path / "0" / "part.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(UserWarning, match="cannot read this part"):
        ap.assemble(study, 2, cache, tmp_path)
    (tmp_path / "1" / "runs.csv").unlink()                 # killed before its last file
    with pytest.raises(FileNotFoundError, match="part 1 .*it is missing"):
        ap.assemble(study, 2, cache, tmp_path, train=False)


def test_dvc_runs_one_stage_per_part_and_the_notebook_reads_them():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    parts = load_profile("quick", ROOT)["parts"]["ablations"]
    part = stages["ablations_part"]
    assert part["foreach"] == list(range(parts))
    outs = [next(iter(o)) for o in part["do"]["outs"]]
    assert outs == ["results/ablations/parts/${item}/part.json", "results/ablations/parts/${item}/runs.csv"]
    # DVC deletes a stage's outs before it runs it unless they persist: a current part would be lost
    assert all(o[next(iter(o))].get("persist") is True for o in part["do"]["outs"])
    assert {"ablations", "parts.ablations"} <= set(part["do"]["params"])
    assert "results/ablations/parts" in stages["ablations"]["deps"]
    assert "parts.ablations" in stages["ablations"]["params"]
    for profile in ("smoke", "paper"):   # every profile says how many parts, and they fit its seeds
        params = load_profile(profile, ROOT)
        study = load_study({k: v for k, v in params["ablations"].items() if k != "cost"})
        assert 1 <= ap.part_count(study, params["parts"]["ablations"], ap.SECTION) <= len(study.seeds)


def test_a_bad_part_number_is_one_line_with_exit_status_2(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_:
        ap.main(["--part", "6"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a part from 0 to 5" in err and "parts.ablations" in err
