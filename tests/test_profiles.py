"""Profiles as overrides of params.yaml, the calibration applied when a stage loads its sections,
each profile's own output folders, and studies that do not import each other."""
import ast
import json
from pathlib import Path

import pytest
import yaml

from mcrlib.profiles import (BASE_PROFILE, ProfileLoader, apply_calibration, figures_root, load_profile, load_stage,
                             merge, profile_names, results_root)

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"synthetic", "data", "calibrate", "benchmarks", "parts", "competition", "error_analysis", "ablations", "report",
            "confu"}
# The one module of mcrlib/studies that every study may import: what every study does (search,
# runs through the cache). three_modal is the synthetic study's own three-modality case, configured
# inside its section (synthetic.three_modal), so synthetic may import it; nothing imports back.
SHARED_STUDY_MODULES = {"grid"}
# benchmark_parts trains the benchmarks study in parts (its runs through results.py's lookup);
# ablation_parts does the same for the ablations, with benchmark_parts' splitting of the seeds.
PARTS = {("synthetic", "three_modal"), ("benchmark_parts", "benchmarks"), ("benchmark_parts", "results"),
         ("ablation_parts", "ablations"), ("ablation_parts", "benchmark_parts"), ("ablation_parts", "benchmarks")}


def write_smoke_params(root: Path, **sections) -> Path:
    """A checkout's params.yaml for a stage test: the smoke profile as the base, each section given
    here updated key by key over it (as a notebook's defaults were by the injected section)."""
    params = load_profile("smoke", ROOT)
    for name, section in sections.items():
        params[name] = {**params.get(name, {}), **section}
    path = Path(root) / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_merge_merges_mappings_replaces_lists_and_scalars_and_null_deletes():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"deep": 1}}, "b": 2, "c": {"keep": 1}}
    override = yaml.load("a: {y: [3], z: null, w: 4}\nb: 5\nc: !replace {new: 1}\nd: {e: 1}\n", Loader=ProfileLoader)
    merged = merge(base, override)
    assert merged == {"a": {"x": 1, "y": [3], "w": 4}, "b": 5, "c": {"new": 1}, "d": {"e": 1}}
    assert list(merged["a"]) == ["x", "y", "w"]                    # the base's order, then the new keys
    assert type(merged["c"]) is dict and base["a"]["z"] == {"deep": 1}   # plain dicts; the base is unchanged
    merged["a"]["x"] = 9
    assert base["a"]["x"] == 1                                     # nothing shared with the inputs


def test_the_paper_profile_is_its_former_full_copy():
    """profiles/paper.yaml holds only its differences: merged over params.yaml it is what the full
    copy held (tests/fixtures/paper_profile_before.yaml), key order included, except the report's
    sections_dir and report_path, which every profile now takes from its own results folder."""
    expected = yaml.safe_load((ROOT / "tests/fixtures/paper_profile_before.yaml").read_text())
    for key in ("sections_dir", "report_path"):
        assert expected["report"].pop(key).startswith("../results")
    # Changed on purpose after the refactor, in the base, for every profile (issue 23,
    # docs/preregistration.md): the synthetic test set, the authors' synthetic Ensemble rule, and
    # the report's declared margins and primary family.
    expected["synthetic"]["data"]["n_test"] = 20000
    expected["synthetic"]["method_params"]["ensemble"] = {"combine": "logit_sum"}
    for spec in expected["ablations"]["datasets"].values():   # the ablations share the synthetic study's runs
        if spec["name"] == "synthetic":
            spec["params"]["n_test"] = 20000
    # ... and the calibration's selection seeds and effect-size floor (part 4), from the base
    expected["calibrate"]["criterion"]["joint_gap_min"] = 0.02
    expected["calibrate"] = {**{k: v for k, v in expected["calibrate"].items() if k != "workers"},
                             "seeds": {"benchmarks": list(range(100, 106)), "synthetic": list(range(100, 106))},
                             "workers": expected["calibrate"]["workers"]}
    # ... and the next design of part 4 and part 1 (docs/preregistration.md, Amendment 1): the
    # declared grids (12 AV-Digits and 8 synthetic settings), the synthetic probe criterion, and
    # 5 images per AV-Digits test recording in the benchmarks and the ablations
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    expected["calibrate"]["criterion"] = base["calibrate"]["criterion"]
    expected["calibrate"]["grids"] = base["calibrate"]["grids"]
    expected["calibrate"]["synthetic_grid"] = base["calibrate"]["synthetic_grid"]
    for section in ("benchmarks", "ablations"):
        spec = expected[section]["datasets"]["AV-Digits"]
        expected[section]["datasets"]["AV-Digits"] = {**{k: v for k, v in spec.items() if k != "calibrated"},
                                                      "params": {"test_images": 5}, "calibrated": spec["calibrated"]}
    # ... and ConFu's section (issue 26), new after the refactor: the base's, under the paper's name
    expected["confu"] = {**base["confu"], "profile": "paper"}
    # ... and the studies' parts (mcrlib/studies/benchmark_parts.py, ablation_parts.py): one per seed
    expected["parts"] = {"benchmarks": 3, "ablations": 3}
    merged = load_profile("paper", ROOT)
    for key in ("equivalence_margin", "primary", "counts_before"):
        expected["report"][key] = merged["report"][key]
    assert merged["report"]["primary"][0] == "premise@CREMA-D"      # the paper profile's own family
    assert merged == expected
    for section, params in expected.items():       # every mapping below a section in the same order
        for key, value in params.items():
            assert json.dumps(merged[section][key]) == json.dumps(value), f"{section}.{key}"


def test_profiles_hold_only_their_differences():
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in ("paper", "smoke"):
        override = yaml.load((ROOT / "profiles" / f"{name}.yaml").read_text(), Loader=ProfileLoader)
        for section, params in override.items():
            for key, value in (params or {}).items():
                assert base.get(section, {}).get(key, object()) != value, f"{name}: {section}.{key} repeats params.yaml"


def test_every_profile_has_every_section_and_its_own_output_folders():
    assert profile_names(ROOT) == ["quick", "paper", "smoke"]
    for name in profile_names(ROOT):
        assert set(load_profile(name, ROOT)) - {"reads"} == SECTIONS
    assert (results_root(BASE_PROFILE), figures_root(BASE_PROFILE)) == (Path("results"), Path("figures"))
    assert (results_root("paper"), figures_root("paper")) == (Path("results/paper"), Path("figures/paper"))
    assert (results_root("smoke"), figures_root("smoke")) == (Path("results/smoke"), Path("figures/smoke"))


def test_an_unknown_profile_names_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown profile 'papr'.*\['quick', 'paper', 'smoke'\]"):
        load_profile("papr", ROOT)


def test_a_stage_reads_other_sections_as_the_profile_says():
    competition = load_stage("smoke", "competition", ROOT, reads=("synthetic", "benchmarks"))
    assert competition["benchmarks"] is None and competition["synthetic"]["ratios"] == [0.25, 4.0]
    errors = load_stage("smoke", "error_analysis", ROOT, reads=("benchmarks",))["benchmarks"]
    assert list(errors["datasets"]) == ["synthetic (smoke)"] and "dnr" not in errors["method_params"]
    assert list(load_stage("smoke", "benchmarks", ROOT)["benchmarks"]["datasets"]) == [
        "synthetic (smoke)", "synthetic (smoke), conformer-tiny"]


CHOSEN = {"avdigits": {"params": {"image_energy": 0.2, "audio_snr_db": 60.0}, "meets_criterion": True},
          "synthetic": {"params": {"mean_scale": 2.5, "n_train": 2000}, "meets_criterion": False}}


def test_the_calibration_is_applied_when_a_stage_loads_its_sections(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "synthetic": {"calibrated": True, "data": {"mean_scale": 1.5, "latent_dim": 8}},
        "benchmarks": {"datasets": {"AV": {"name": "avdigits", "params": {"fold": 1}, "calibrated": True},
                                    "Other": {"name": "avdigits", "calibrated": False}}}}))
    with pytest.raises(FileNotFoundError, match="run the calibrate stage first"):
        load_stage("quick", "synthetic", tmp_path)
    uncalibrated = load_stage("quick", "benchmarks", tmp_path, reads=("synthetic",), calibrated=False)
    assert uncalibrated["synthetic"] == {"calibrated": False, "data": {"mean_scale": 1.5, "latent_dim": 8}}
    assert uncalibrated["benchmarks"]["datasets"]["AV"] == {"name": "avdigits", "params": {"fold": 1}}
    (tmp_path / "results" / "calibrate").mkdir(parents=True)
    (tmp_path / "results" / "calibrate" / "chosen.json").write_text(json.dumps(CHOSEN))
    sections = load_stage("quick", "benchmarks", tmp_path, reads=("synthetic",))
    assert sections["synthetic"] == {"calibrated": False, "data": {"mean_scale": 2.5, "latent_dim": 8, "n_train": 2000}}
    assert sections["benchmarks"]["datasets"] == {
        "AV": {"name": "avdigits", "params": {"fold": 1, "image_energy": 0.2, "audio_snr_db": 60.0}},
        "Other": {"name": "avdigits"}}
    with pytest.raises(ValueError, match="chose nothing for 'cremad'"):
        apply_calibration({"datasets": {"C": {"name": "cremad", "calibrated": True}}}, CHOSEN)


def test_a_profile_reads_its_own_calibration(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"synthetic": {"calibrated": True}}))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "paper.yaml").write_text("synthetic: {seeds: [0]}\n")
    (tmp_path / "results" / "paper" / "calibrate").mkdir(parents=True)
    (tmp_path / "results" / "paper" / "calibrate" / "chosen.json").write_text(json.dumps(CHOSEN))
    assert load_stage("paper", "synthetic", tmp_path)["synthetic"]["data"] == {"mean_scale": 2.5, "n_train": 2000}
    with pytest.raises(FileNotFoundError, match=str(Path("results/calibrate/chosen.json"))):
        load_stage("quick", "synthetic", tmp_path)


def test_no_study_module_imports_another():
    """Studies share only mcrlib/studies/grid.py (and synthetic its own three-modality case): the
    calibration's choice reaches them through the loaded params, not through an import."""
    folder = ROOT / "mcrlib" / "studies"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    imports = set()
    for module in modules:
        for node in ast.walk(ast.parse((folder / f"{module}.py").read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("mcrlib.studies.") and name.split(".")[2] in modules:
                    imports.add((module, name.split(".")[2]))
    assert imports, "the scan found no import at all"
    assert {(a, b) for a, b in imports if b not in SHARED_STUDY_MODULES} <= PARTS


def test_dvc_yaml_lists_each_stage_after_the_stages_it_reads():
    """`python -m mcrlib.pipeline --profile NAME` runs the notebook stages in dvc.yaml's order."""
    from mcrlib.pipeline import notebook_stages
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    order = [name for name, _ in notebook_stages(ROOT)]
    # every stage but `prepare` (data), `code` (the notebooks' code manifests, first in dvc.yaml) and
    # the studies' parts (`benchmarks_part`, `ablations_part`: their notebooks train them under a profile)
    assert set(order) == set(stages) - {"prepare", "code", "benchmarks_part", "ablations_part"}
    assert list(stages)[0] == "code"
    produced = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)      # a foreach stage's outputs, ${item} for each of its items
        for kind in ("outs", "metrics"):
            for entry in stage.get(kind, []):
                produced[next(iter(entry)) if isinstance(entry, dict) else entry] = name
    written = list(stages)                   # DVC's order is the graph's; the file's is the profile run's
    for name in stages:
        for dep in stages[name].get("do", stages[name])["deps"]:
            producers = {stage for path, stage in produced.items() if path == dep or path.startswith(dep.rstrip("/") + "/")}
            producers -= {"prepare"}         # the data, which every profile prepares first
            assert producers <= set(written[:written.index(name)]) | {name}, f"{name} reads {dep} of a later stage"


def test_a_profile_writes_its_results_in_its_own_folders(tmp_path):
    """A stage under the paper profile writes under results/paper and leaves results/ alone."""
    import shutil

    from mcrlib.pipeline import execute
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "06_report.py", tmp_path / "notebooks")
    write_smoke_params(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "paper.yaml").write_text("report: {profile: paper}\n")
    notebook = execute(tmp_path / "notebooks" / "06_report.py", "report", root=tmp_path, profile="paper")
    assert notebook == tmp_path / "results" / "paper" / "notebooks" / "06_report.ipynb"
    assert "paper profile" in (tmp_path / "results" / "paper" / "REPORT.md").read_text()
    assert {p.relative_to(tmp_path).parts[:2] for p in (tmp_path / "results").rglob("*") if p.is_file()} == {
        ("results", "paper")}


def test_the_pipeline_refuses_an_unknown_profile(capsys, monkeypatch):
    from mcrlib.pipeline import main
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        main(["--profile", "papr"])
    assert "the profiles are ['quick', 'paper', 'smoke']" in capsys.readouterr().err
