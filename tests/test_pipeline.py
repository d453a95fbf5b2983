"""The synthetic-study stage end to end on the smoke profile, and the quick profile's params."""
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mcrlib.config import ConfigError, from_dict
from mcrlib.pipeline import execute
from mcrlib.profiles import load_profile
from mcrlib.studies.synthetic import load_study, study_runs
from tests.test_profiles import write_smoke_params

ROOT = Path(__file__).resolve().parents[1]


def test_quick_profile_params_are_valid():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    study = load_study(params["synthetic"])
    assert len(study.seeds) >= 3 and len(study.ratios) >= 3
    labels = [l["method"] for l, _ in study_runs(study)]
    assert {"joint", "multiloss", "ensemble", "mcr", "unimodal-x1", "unimodal-x2"} <= set(labels)


def test_study_rejects_a_bad_section():
    with pytest.raises(ConfigError, match="synthetic.data.shared"):
        load_study({"data": {"shared": 0.5}})
    with pytest.raises(ConfigError, match="method.name='mrc'"):
        load_study({"methods": ["mrc"]})
    with pytest.raises(ConfigError, match="n_clases"):
        load_study({"data": {"n_clases": 3}})


@pytest.fixture(scope="module")
def smoke_stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    write_smoke_params(root, synthetic={"profile": "smoke-test", "seeds": [0, 1]})
    notebook = execute(ROOT / "notebooks" / "02_synthetic_study.py", "synthetic", root=root)
    return root, notebook


def test_stage_writes_figure_tables_and_executed_notebook(smoke_stage):
    root, notebook = smoke_stage
    assert notebook.exists()
    for name in ("fig1_synthetic.png", "fig1_synthetic.pdf"):
        assert (root / "figures" / name).stat().st_size > 1000
    for stem in ("fig1_table", "group_table"):
        for suffix in (".csv", ".md", ".tex"):
            assert (root / "results" / "synthetic" / f"{stem}{suffix}").exists()
    assert "smoke-test profile" in (root / "results" / "synthetic" / "fig1_table.md").read_text()


def test_table_is_mean_and_std_of_the_runs(smoke_stage):
    root, _ = smoke_stage
    runs = pd.read_csv(root / "results" / "synthetic" / "runs.csv")
    table = pd.read_csv(root / "results" / "synthetic" / "fig1_table.csv", index_col=0)
    assert set(runs["seed"]) == {0, 1}
    assert set(table.index) == set(runs["method"])
    assert {"unimodal-x1", "unimodal-x2", "ensemble", "joint", "mcr"} <= set(table.index)
    for method, row in table.iterrows():
        for column, cell in row.items():
            ratio = float(column.split("=")[1])
            accs = runs[(runs.method == method) & (runs.ratio == ratio)]["test_acc"] * 100
            mean, std = map(float, re.match(r"([\d.]+) ± ([\d.]+)", cell).groups())
            assert mean == pytest.approx(accs.mean(), abs=0.051)
            assert std == pytest.approx(accs.std(), abs=0.051)
    metrics = json.loads((root / "results" / "synthetic" / "metrics.json").read_text())
    assert metrics["mean_test_acc"]["mcr"]["4"] == pytest.approx(
        runs[(runs.method == "mcr") & (runs.ratio == 4.0)]["test_acc"].mean(), abs=1e-4)


def test_every_figure_data_hold_every_method_of_the_study(smoke_stage):
    """Not only that the figures exist: Figure 1's plotted data (the `dvc plots` CSV), its table
    and the group table have a line for every method the study ran, with a number in every cell."""
    root, _ = smoke_stage
    out = root / "results" / "synthetic"
    methods = set(pd.read_csv(out / "runs.csv")["method"])
    plot = pd.read_csv(out / "plot_fig1.csv")
    assert set(plot.columns) == {"ratio", *methods} and plot.notna().all().all()
    for stem in ("fig1_table", "group_table"):
        table = pd.read_csv(out / f"{stem}.csv", index_col=0)
        assert set(table.index) == methods and table.notna().all().all(), stem


def test_every_row_of_the_runs_table_names_its_run_in_the_cache(smoke_stage):
    root, _ = smoke_stage
    cache = Path(os.environ.get("MCR_RUN_CACHE", root / ".mcr-cache" / "runs"))
    runs = pd.read_csv(root / "results" / "synthetic" / "runs.csv", dtype={"run_key": str})
    trials = pd.read_csv(root / "results" / "synthetic" / "search.csv", dtype={"run_key": str})
    for key in [*runs["run_key"], *trials["run_key"]]:
        assert (cache / key / "result.json").is_file(), key


def test_group_accuracies_average_to_the_overall_accuracy(smoke_stage):
    root, _ = smoke_stage
    runs = pd.read_csv(root / "results" / "synthetic" / "runs.csv")
    assert runs[["acc_shared", "acc_unique-1", "acc_unique-2"]].notna().all().all()
    assert ((runs["test_acc"] >= runs[["acc_shared", "acc_unique-1", "acc_unique-2"]].min(axis=1) - 1e-6) &
            (runs["test_acc"] <= runs[["acc_shared", "acc_unique-1", "acc_unique-2"]].max(axis=1) + 1e-6)).all()


def test_paired_ipynb_matches_its_py_source():
    import jupytext
    for source in (ROOT / "notebooks").glob("*.py"):
        paired = source.with_suffix(".ipynb")
        assert paired.exists(), f"{paired.name} missing: run `make notebooks`"
        code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"]
        assert code(jupytext.read(paired)) == code(jupytext.read(source)), \
            f"{paired.name} is out of sync with {source.name}: run `make notebooks`"


def test_final_runs_use_the_setting_chosen_on_validation(smoke_stage):
    root, _ = smoke_stage
    runs = pd.read_csv(root / "results" / "synthetic" / "runs.csv")
    trials = pd.read_csv(root / "results" / "synthetic" / "search.csv")
    assert not trials.empty and "test_acc" not in trials.columns
    for ratio, part in trials[trials.method == "mcr"].groupby("ratio"):
        means = part.groupby("trial")["val_acc"].mean()
        best = part[part["trial"] == means.idxmax()].iloc[0]
        chosen = {k: best[k] for k in ("lambda_mipd",)}
        settings = runs[(runs.method == "mcr") & (runs.ratio == ratio)]["setting"].map(json.loads)
        assert all(s == chosen for s in settings)


def test_every_file_the_stage_writes_is_declared_in_dvc_yaml(smoke_stage):
    root, _ = smoke_stage
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["synthetic"]
    declared = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"] + stage["metrics"]}
    written = {str(p.relative_to(root)) for folder in ("results", "figures")
               for p in (root / folder).rglob("*") if p.is_file()}
    assert written == declared


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_every_profile_validates_before_anything_runs(profile):
    from mcrlib.data import DATASETS
    from mcrlib.studies import benchmarks
    params = load_profile(profile, ROOT)
    assert set(params) == {"synthetic", "data", "calibrate", "benchmarks", "parts", "competition", "error_analysis",
                           "ablations", "report", "confu"}
    load_study(params["synthetic"])
    from mcrlib.confu.experiment import load_study as load_confu
    confu = load_confu(params["confu"])
    assert confu.avdigits is not None and confu.xor is not None
    from mcrlib.studies.calibration import load_calibration
    calibration = load_calibration(params["calibrate"])
    assert set(calibration.grids) <= set(params["data"])       # calibrated datasets are prepared ones
    from mcrlib.studies.competition import CompetitionConfig
    from_dict(CompetitionConfig, params["competition"], "competition")
    for name, settings in params["data"].items():
        from_dict(DATASETS[name].prepare_config, settings, f"data.{name}")
    study = benchmarks.load_study(params["benchmarks"])
    assert "AV-Digits" in study.datasets
    from mcrlib.studies.benchmark_parts import part_count
    assert part_count(study, params["parts"]["benchmarks"]) >= 1
    from mcrlib.studies import ablations
    ablation_study = ablations.load_study({k: v for k, v in params["ablations"].items() if k != "cost"})
    assert part_count(ablation_study, params["parts"]["ablations"], "ablations") >= 1


def test_paper_profile_uses_the_per_dataset_settings():
    from mcrlib.studies import benchmarks
    study = benchmarks.load_study(load_profile("paper", ROOT)["benchmarks"])
    cremad = [study.run_config("mcr", "CREMA-D", seed) for seed in study.seeds]
    assert [c.data.params["fold"] for c in cremad] == [0, 1, 2]
    assert cremad[0].train.lr == 1e-4 and cremad[0].method.params["init_from_unimodal"] is True
    sth = study.run_config("mcr", "Sth-Sth V2 RGB+flow", 0)
    assert sth.train.optimizer == "adamw" and sth.method.params["copies"] == 16
    assert sth.model.video_encoder == "swin3d_t" and cremad[0].model.video_encoder == "resnet18"
    assert sth.train.augment_frames and cremad[0].train.augment_frames
    assert study.run_config("joint", "MOSI V-A-T", 0).data.params["modalities"] == ["vision", "text", "audio"]


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks").glob("*.py")), ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_of_the_parameters_cell(source):
    """Papermill parses the parameters cell line by line: an assignment spread over several lines
    is 'unable to parse' and its injected value is reported as an unknown parameter (a false
    warning in every `dvc repro`). Every parameter must be one line that papermill reads."""
    import ast

    import jupytext
    import papermill
    nb = jupytext.read(source)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {n.targets[0].id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign)}
    path = ROOT / "results" / f".inspect-{source.stem}.ipynb"
    try:
        jupytext.write(nb, path)
        seen = set(papermill.inspect_notebook(str(path)))
    finally:
        path.unlink(missing_ok=True)
    assert seen == assigned


def test_small_results_are_committed_and_bulk_stays_out_of_git():
    """Tables, figures, metrics and executed notebooks are git-tracked outputs (cache: false), so a
    clone shows them and `dvc status` stays clean after a commit; prepared data stays in DVC's cache."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = {}
    for name, stage in stages["stages"].items():
        stage = stage.get("do", stage)          # a foreach stage (prepare@<dataset>)
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path, options = (next(iter(entry.items())) if isinstance(entry, dict) else (entry, {}))
                outs[path] = options or {}
    small = {p: o for p, o in outs.items() if p.startswith(("results/", "figures/"))}
    assert small and all(o.get("cache") is False for o in small.values()), \
        [p for p, o in small.items() if o.get("cache") is not False]
    assert outs["data/processed/${key}"].get("cache", True) is True
    for plot in stages["plots"]:
        name, spec = next(iter(plot.items())) if isinstance(plot, dict) else (plot, None)
        files = list(spec["y"]) if spec else [name]
        assert all(f in outs for f in files), f"plot {name} draws {files}, not all stage outputs"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert not any(i.strip("/").startswith(("results", "figures")) and "smoke" not in i for i in ignored)


def test_a_stage_passes_only_the_standard_parameters_a_notebook_declares(tmp_path, capfd):
    """The report notebook declares no figures_dir or cache_dir: the stage's log stays free of
    'Passed unknown parameter' and of the kernel's TCP warning."""
    import shutil
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "06_report.py", tmp_path / "notebooks")
    write_smoke_params(tmp_path, report={"profile": "test"})
    execute(tmp_path / "notebooks" / "06_report.py", "report", root=tmp_path)
    err = capfd.readouterr().err
    assert "unknown parameter" not in err and "TCP" not in err
    assert (tmp_path / "results" / "REPORT.md").read_text().startswith("# Which of the paper's claims hold here")
    assert sorted(p.name for p in (tmp_path / "notebooks").iterdir()) == ["06_report.py"]


def test_the_kernels_sockets_live_outside_the_checkout(tmp_path, monkeypatch):
    """A kernel killed with its stage leaves its IPC sockets behind; they must not land in
    notebooks/, where DVC cannot hash them and the `code` stage would fail."""
    from mcrlib.pipeline import IPCKernelManager
    monkeypatch.chdir(tmp_path)
    manager = IPCKernelManager(kernel_name="python3")
    prefix = Path(manager.ip)
    assert manager.transport == "ipc" and prefix.is_absolute() and tmp_path not in prefix.parents
    prefix.with_name(prefix.name + "-1").touch()        # a socket file left by a kernel
    manager.cleanup_ipc_files()
    assert not prefix.parent.exists()


def test_an_executed_notebook_is_the_same_from_any_checkout_and_any_run(tmp_path):
    """No absolute path, timestamp, duration or progress widget in the executed copy: two runs of a
    stage from two checkouts give byte-identical notebooks (so committed results stay clean)."""
    import shutil
    copies = []
    for checkout in ("a", "b"):
        root = tmp_path / checkout
        (root / "notebooks").mkdir(parents=True)
        shutil.copy(ROOT / "notebooks" / "06_report.py", root / "notebooks")
        write_smoke_params(root, report={"profile": "test"})
        copies.append(execute(root / "notebooks" / "06_report.py", "report", root=root).read_text())
    assert copies[0] == copies[1]
    assert str(tmp_path) not in copies[0] and "start_time" not in copies[0] and "widget-view" not in copies[0]


def test_a_failing_stage_says_its_error_in_one_line_and_keeps_the_traceback(tmp_path, monkeypatch, capsys):
    """Through `python -m mcrlib.pipeline` (what dvc repro runs), a bad param gives the notebook's
    own one-line error (the key, what was expected), not papermill's long traceback; the executed
    copy up to the failing cell is kept, and a later successful run removes it."""
    import shutil
    from mcrlib import pipeline
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "06_report.py", tmp_path / "notebooks")
    write_smoke_params(tmp_path, report={"profile": "test", "bogus_key": 1})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        pipeline.main(["notebooks/06_report.py", "--section", "report"])
    message = str(stop.value.code)
    first, second = message.splitlines()
    assert first.startswith("error: stage report (06_report.py) failed in cell ")
    assert "ConfigError" in first and "bogus_key" in first
    failed = tmp_path / "results" / "notebooks" / "06_report.failed.ipynb"
    assert str(failed) in second and "ConfigError" in failed.read_text()   # the full traceback is there
    assert not (tmp_path / "results" / "notebooks" / "06_report.ipynb").exists()
    write_smoke_params(tmp_path, report={"profile": "test"})
    pipeline.main(["notebooks/06_report.py", "--section", "report"])
    assert not failed.exists() and (tmp_path / "results" / "notebooks" / "06_report.ipynb").exists()


def test_notebook_sources_carry_no_jupytext_version():
    """jupytext.toml filters the version out of the .py headers: saving an unchanged notebook with
    another jupytext release leaves its source, and so its DVC stage, unchanged."""
    for source in sorted((ROOT / "notebooks").glob("*.py")):
        header = source.read_text().split("# ---", 2)[1]
        assert "jupytext_version:" not in header, source.name   # the key (the filter names it, without a colon)
