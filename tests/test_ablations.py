"""The ablation study: its variants, their configs, the tables, the cost benchmark and the stage."""
import json
import math
import re
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mcrlib.config import ConfigError, to_dict
from mcrlib.losses import PERTURBATIONS
from mcrlib.pipeline import execute
from mcrlib.profiles import load_profile
from tests.test_profiles import write_smoke_params
from mcrlib.studies.ablations import COMPONENTS, TABLES, ablation_table, load_study, study_runs

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = {"name": "synthetic", "ratio": 4.0,
             "params": {"unique2": 0.1, "latent_dim": 8, "input_dim": 32, "n_train": 64, "n_val": 32, "n_test": 32}}
BASE = {"lambda_mipd": 0.1, "lambda_uni": 0.01, "lambda_con": 1.0, "lambda_ceb": 0.0, "copies": 8}


def study(**changes):
    return load_study({"datasets": {"syn": SYNTHETIC}, "seeds": [0, 1], "mcr": BASE, **changes})


def test_the_variants_are_the_rows_of_the_papers_tables():
    rows = {t: [r for r, _, _ in TABLES[t][1]] for t in TABLES}
    assert rows["table2_strategy"] == ["collaborative", "independent", "greedy"]
    # Table 3: every subset of the three terms, the empty one ("none") included
    assert len(rows["table3_components"]) == 8 and rows["table3_components"][0] == "none"
    on = [{k for k, v in o.items() if v} for _, _, o in TABLES["table3_components"][1]]
    assert sorted(map(sorted, on)) == sorted(sorted(c) for k in range(4) for c in combinations(COMPONENTS, k))
    assert sorted(rows["table4_perturbation"]) == sorted(PERTURBATIONS)
    choices = [o for _, _, o in TABLES["open_choices"][1]]
    assert {"latent_source": "train"} in choices and {"latent_source": "eval_reforward"} in choices
    assert {"detach_reference": False} in choices and {"detach_reference": True} in choices
    assert study(tables=["table2_strategy"]).variants() == [f"table2_strategy/{r}" for r in rows["table2_strategy"]]


def test_each_variant_changes_only_its_own_params():
    s = study(datasets={"syn": {**SYNTHETIC, "method_params": {"mcr": {"lambda_mipd": 0.5}}}})
    base = s.run_config("table2_strategy/greedy", "syn", 1)
    assert base.method.params == {**BASE, "lambda_mipd": 0.5}   # the dataset's base, nothing added
    expected = {
        "table2_strategy/collaborative": {"strategy": "collaborative"},
        "table2_strategy/independent": {"strategy": "independent"},
        "table3_components/none": {"lambda_mipd": 0.0, "lambda_con": 0.0},
        "table3_components/L_MIPD": {"lambda_con": 0.0},
        "table3_components/L_con": {"lambda_mipd": 0.0},
        "table3_components/L_CEB": {"lambda_mipd": 0.0, "lambda_con": 0.0, "lambda_ceb": 1.0},
        "table3_components/L_MIPD+L_CEB": {"lambda_con": 0.0, "lambda_ceb": 1.0},
        "table3_components/L_con+L_CEB": {"lambda_mipd": 0.0, "lambda_ceb": 1.0},
        "table3_components/L_MIPD+L_con+L_CEB": {"lambda_ceb": 1.0},
        **{f"table4_perturbation/{p}": {"perturbation": p} for p in PERTURBATIONS if p != "permute"},
        "open_choices/latent_source=eval_reforward": {"latent_source": "eval_reforward"},
        "open_choices/detach_reference=true": {"detach_reference": True},
    }
    # the other 5 rows are the base: greedy, L_MIPD + L_con, permute, latent source train, reference attached
    assert len(expected) == len(s.variants()) - 5
    for key in s.variants():
        config = s.run_config(key, "syn", 1)
        assert (config.data, config.model, config.train, config.seed) == (base.data, base.model, base.train, 1)
        assert config.method.name == "mcr"
        assert config.method.params == {**base.method.params, **expected.get(key, {})}, key
        assert s.overrides(key, "syn") == expected.get(key, {}), key


def test_synthetic_cells_redraw_the_data_per_seed_at_the_ratio():
    s = study()
    data = [s.run_config("joint", "syn", seed).data.params for seed in (0, 1)]
    assert [d["data_seed"] for d in data] == [0, 1]
    assert data[0]["unique1"] / data[0]["shared"] == pytest.approx(4.0) and data[0]["unique2"] == 0.1


def test_variant_params_change_one_row_on_one_dataset():
    other = {**SYNTHETIC, "variant_params": {"table4_perturbation/noise_input": {"copies": 2}}}
    s = study(datasets={"syn": SYNTHETIC, "other": other})
    assert s.run_config("table4_perturbation/noise_input", "other", 0).method.params["copies"] == 2
    assert s.run_config("table4_perturbation/noise_input", "syn", 0).method.params["copies"] == 8
    assert s.run_config("table4_perturbation/noise_latent", "other", 0).method.params["copies"] == 8
    assert s.variant_notes("table4_perturbation") == ["other: noise input {'copies': 2}"]


@pytest.mark.parametrize("changes,match", [
    ({"tables": ["table5"]}, "ablations.tables"),
    ({"variant_params": {"table2/greedy": {}}}, "variant_params"),
    ({"datasets": {"syn": {**SYNTHETIC, "name": "avdigits"}}}, "ratio"),
    ({"datasets": {"syn": {**SYNTHETIC, "method_params": {"ogm": {}}}}}, "method_params"),
    ({"mcr": {"perturbation": "shuffle"}}, "perturbation"),
    ({"component_weights": {"lambda_ceb": 0.0}}, "component_weights"),
    ({"variant_params": {"table4_perturbation/noise_input": {"copies": 0}}}, "copies"),
])
def test_a_bad_section_is_rejected_before_anything_trains(changes, match):
    with pytest.raises(ConfigError, match=match):
        study(**changes)


def test_rows_that_are_the_base_are_one_run():
    s = study()
    labelled = study_runs(s, lambda _: ("x1", "x2"))
    configs = {json.dumps(to_dict(c), sort_keys=True) for _, c in labelled}
    # per seed: 2 unimodal + joint, and the 20 table rows minus the 4 that repeat the base
    assert len(labelled) == 2 * (3 + 20) and len(configs) == 2 * (3 + 16)


def hand_made_runs():
    """Two datasets, three seeds, known accuracies; Table 2's greedy row is the base."""
    rows = []
    for d, dataset in enumerate(["A", "B"]):
        for seed in range(3):
            rows.append({"dataset": dataset, "seed": seed, "method": "joint", "table": "reference",
                         "variant": "joint", "setting": "{}", "test_acc": 0.5 + 0.01 * seed})
            for i, (row, setting) in enumerate([("collaborative", '{"strategy": "collaborative"}'),
                                                ("independent", '{"strategy": "independent"}'), ("greedy", "{}")]):
                rows.append({"dataset": dataset, "seed": seed, "method": "mcr", "table": "table2_strategy",
                             "variant": row, "setting": setting, "test_acc": 0.6 + 0.1 * i + 0.1 * d + 0.02 * seed})
    return pd.DataFrame(rows)


def test_table_builder_gives_mean_and_std_per_row_and_dataset():
    table = ablation_table(hand_made_runs(), "table2_strategy")
    assert list(table.index) == ["collaborative", "independent", "greedy (default)", "joint (reference)"]
    assert list(table.columns) == ["A", "B"] and table.index.name == "Table 2: game strategy"
    assert table.loc["independent", "B"] == "82.0 ± 2.0"   # 0.6 + 0.1 (row) + 0.1 (dataset) + 0.02 * seed
    assert table.loc["greedy (default)", "A"] == "82.0 ± 2.0"
    assert table.loc["joint (reference)", "B"] == "51.0 ± 1.0"


def test_a_row_is_default_only_where_it_is_the_base_on_every_dataset():
    runs = hand_made_runs()
    runs.loc[(runs.variant == "greedy") & (runs.dataset == "B"), "setting"] = '{"copies": 4}'
    assert "greedy" in ablation_table(runs, "table2_strategy").index


def test_cost_benchmark_returns_ratios_for_every_variant():
    """Runs the measurement on tiny settings; it never asserts speed, only the table's shape."""
    from benchmarks.cost import PERTURBATIONS as MEASURED, measure_cost
    cost = measure_cost(model="mlp", copies=4, batch_size=8, repeats=2, steps=1, shapes={"x1": (6,), "x2": (6,)},
                        model_config={"hidden_dim": 8, "latent_dim": 4}, device="cpu")
    assert list(cost["variant"]) == ["joint", "mcr, no L_MIPD"] + [f"mcr, {p}" for p in MEASURED]
    assert set(MEASURED) == set(PERTURBATIONS)
    assert cost.loc[cost.variant == "joint", "time_ratio"].item() == 1.0
    assert (cost["time_ratio"] > 0).all() and cost["time_ms"].map(math.isfinite).all()
    assert (cost["memory_ratio"].isna() | (cost["memory_ratio"] >= 0)).all()
    assert set(cost["copies"]) == {4} and set(cost["device"]) == {"cpu"} and set(cost["threads"]) == {1}


@pytest.fixture(scope="module")
def smoke_stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    write_smoke_params(root, ablations={"profile": "smoke-test", "seeds": [0, 1]})
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MCR_RUN_CACHE", raising=False)   # the stage's own cache, counted below
        env.setenv("OMP_NUM_THREADS", "1")             # tiny models: one thread, no contention
        notebook = execute(ROOT / "notebooks" / "04_ablations.py", "ablations", root=root)
    return root, notebook


def test_stage_tables_are_mean_and_std_of_the_runs(smoke_stage):
    root, notebook = smoke_stage
    out = root / "results" / "ablations"
    runs = pd.read_csv(out / "runs.csv")
    assert notebook.exists() and set(runs["seed"]) == {0, 1}
    assert (runs["fold"] == -1).all()          # the synthetic data has no folds: seeds are the units
    for table in TABLES:
        wide = pd.read_csv(out / f"{table}.csv", index_col=0)
        assert "smoke-test profile" in (out / f"{table}.md").read_text()
        assert len(wide) == len(TABLES[table][1]) + 1
        labels = {text: row for row, text, _ in TABLES[table][1]}
        for label, row in wide.iterrows():
            variant = labels.get(label.removesuffix(" (default)"), "joint")
            part = runs[(runs["variant"] == variant) & runs["table"].isin([table, "reference"])]
            for dataset, cell in row.items():
                accs = part[part["dataset"] == dataset]["test_acc"] * 100
                mean, std = map(float, re.match(r"([\d.]+) ± ([\d.]+)", cell).groups())
                assert len(accs) == 2 and mean == pytest.approx(accs.mean(), abs=0.051)
                assert std == pytest.approx(accs.std(), abs=0.051)
    assert "none = CE + lambda_uni" in (out / "table3_components.md").read_text()


def test_stage_trains_each_distinct_config_once(smoke_stage):
    root, _ = smoke_stage
    runs = pd.read_csv(root / "results" / "ablations" / "runs.csv")
    trained = [p for p in (root / ".mcr-cache" / "runs").iterdir() if (p / "result.json").exists()]
    # per seed: 2 unimodal + joint and 20 table rows, of which 4 repeat the base run
    assert len(runs) == 2 * (3 + 20) and len(trained) == 2 * (3 + 16)
    mcr = runs[runs["method"] == "mcr"]
    assert len(mcr.drop_duplicates(["seed", "setting"])) == 2 * 16


def test_stage_cost_table_has_a_ratio_per_model_and_variant(smoke_stage):
    root, _ = smoke_stage
    cost = pd.read_csv(root / "results" / "ablations" / "cost.csv", index_col=0)
    assert list(cost.index) == ["joint", "mcr, no L_MIPD"] + [f"mcr, {p}" for p in PERTURBATIONS]
    for model in ("mlp", "resnet"):
        assert cost.loc["joint", f"{model}: time / joint"] == 1
        assert cost.loc["joint", f"{model}: memory / joint"] in (1, "nan") or math.isnan(cost.loc["joint", f"{model}: memory / joint"])
        assert (cost[f"{model}: time / joint"] > 0).all() and (cost[f"{model}: time (ms)"] > 0).all()
    metrics = json.loads((root / "results" / "ablations" / "metrics.json").read_text())
    assert set(metrics["cost"]) == {"mlp", "resnet"} and set(metrics["cost"]["mlp"]) == set(cost.index)
    assert set(metrics["test_acc"]) == {"reference", *TABLES}


def test_every_file_the_stage_writes_is_declared_in_dvc_yaml(smoke_stage):
    root, _ = smoke_stage
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    stage = stages["ablations"]
    declared = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"] + stage["metrics"]}
    # run without DVC, the notebook also trains its parts, each the outs of `ablations_part@k`
    parts = load_profile("smoke", ROOT)["parts"]["ablations"]
    declared |= {next(iter(o)).replace("${item}", str(k)) for o in stages["ablations_part"]["do"]["outs"]
                 for k in range(parts)}
    written = {str(p.relative_to(root)) for folder in ("results", "figures")
               for p in (root / folder).rglob("*") if p.is_file()}
    assert written == declared
    # its code: the notebook, and the manifest of its code (mcrlib.stage_code), which covers the
    # cost benchmark the notebook imports from benchmarks/
    assert {"notebooks/04_ablations.py", "results/code/04_ablations.json"} <= set(stage["deps"])
    from mcrlib.stage_code import manifest
    assert "benchmarks/cost.py" in manifest(ROOT / "notebooks" / "04_ablations.py")["files"]


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_profiles_have_a_valid_ablations_section(profile):
    """Valid before anything trains, and the rows that are the base MCR, joint training or a
    unimodal model are the synthetic and benchmarks stages' own runs (one run cache entry)."""
    from mcrlib.studies import benchmarks, synthetic
    params = load_profile(profile, ROOT)
    s = load_study({k: v for k, v in params["ablations"].items() if k != "cost"})
    assert len(s.seeds) >= 3 and set(s.tables) == set(TABLES)
    assert params["ablations"]["cost"]["copies"] == 32 and set(params["ablations"]["cost"]["models"]) == {"mlp", "resnet"}
    bench = benchmarks.load_study(params["benchmarks"])
    for method, key in (("mcr", "table2_strategy/greedy"), ("joint", "joint")):
        assert s.run_config(key, "AV-Digits", 0) == bench.run_config(method, "AV-Digits", 0)
    syn = synthetic.load_study(params["synthetic"])
    ratios = {spec["ratio"]: label for label, spec in s.datasets.items() if "ratio" in spec}
    assert ratios and set(ratios) <= set(syn.ratios)
    for ratio, label in ratios.items():
        for seed in s.seeds[:2]:
            assert s.run_config("joint", label, seed) == syn.run_config("joint", ratio, seed)
            assert s.run_config("table2_strategy/greedy", label, seed) == syn.run_config(
                "mcr", ratio, seed, {"lambda_mipd": s.mcr["lambda_mipd"]})
