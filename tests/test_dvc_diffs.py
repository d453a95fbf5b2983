"""DVC's diffs say what changed: a one-value param change reruns only the stages that read that
value, and `dvc metrics diff` lists only metrics that changed.

A stage that declares a whole params section reruns on any edit of it. The synthetic and
benchmarks stages read only the error analysis's perturbations (they compute the robustness rows
beside their runs), so an edit of the error analysis's plotted methods must leave them, with their
hours of training and analyses, current. Checked with DVC itself: `dvc status` on the committed
dvc.yaml and dvc.lock with one value of params.yaml changed.
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def stages_with_changed_params(tmp_path: Path, section: str, key: str, value) -> set[str]:
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params[section][key] != value, "the test must change the value"
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    done = subprocess.run(["dvc", "status", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    changed = set()
    for stage, changes in json.loads(done.stdout).items():
        for change in changes:
            deps = change.get("changed deps", {}) if isinstance(change, dict) else {}
            if any(path.startswith("params.yaml") for path in deps):
                changed.add(stage)
    return changed


@pytest.mark.parametrize("section, key, value, expected", [
    ("error_analysis", "methods", ["ensemble", "joint", "mcr"], {"error_analysis"}),
    ("competition", "seeds", [0], {"competition"}),
])
def test_a_one_value_param_edit_reruns_only_the_stages_that_read_it(tmp_path, section, key, value, expected):
    assert stages_with_changed_params(tmp_path, section, key, value) == expected


def test_an_edit_of_the_perturbations_reaches_the_stages_that_apply_them(tmp_path):
    """The narrowing must not hide a real dependency: the perturbations are applied to the runs in
    the synthetic stage and in every benchmarks part, and read by the error analysis."""
    changed = stages_with_changed_params(tmp_path, "error_analysis", "perturbations", ["zero"])
    assert {"synthetic", "error_analysis", "benchmarks"} <= changed
    parts = yaml.safe_load((ROOT / "params.yaml").read_text())["parts"]["benchmarks"]
    assert {f"benchmarks_part@{k}" for k in range(parts)} <= changed


def _refuse(constant):
    raise ValueError(f"{constant} is not JSON")


def test_every_committed_metrics_file_is_strict_json():
    """NaN and Infinity are not JSON, and DVC compares NaN as changed, so `dvc metrics diff` would
    list every NaN after every rerun. A score a method does not have is left out instead."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    paths = [next(iter(entry)) if isinstance(entry, dict) else entry
             for stage in stages.values() for entry in stage.get("do", stage).get("metrics", [])]
    assert len(paths) >= 6
    for path in paths:
        json.loads((ROOT / path).read_text(), parse_constant=_refuse)
