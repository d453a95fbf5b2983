"""params.yaml stays in the form `dvc exp run -S` writes back, so an experiment's diff is its value."""
import difflib
import importlib.util
from pathlib import Path

import pytest
import yaml
from dvc.utils.serialize import modify_yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("params_form", ROOT / "tools" / "params_form.py")
params_form = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(params_form)


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_params_yaml_is_a_fixed_point_of_dvcs_writer():
    text = (ROOT / "params.yaml").read_text()
    changed = _changed_lines(text, params_form.dvc_round_trip(text))
    assert not changed, ("dvc exp run -S would rewrite these lines of params.yaml; "
                         "run `python tools/params_form.py params.yaml`:\n" + "\n".join(changed[:20]))


def test_setting_one_value_the_way_dvc_does_changes_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    path.write_text(text)
    with modify_yaml(path) as data:        # DVC's own read-modify-write of `-S`
        old = data["synthetic"]["data"]["latent_dim"]
        data["synthetic"]["data"]["latent_dim"] = old + 1
    changed = _changed_lines(text, path.read_text())
    assert len(changed) == 2 and changed[0].startswith("-") and changed[1].startswith("+"), changed
    assert f"latent_dim: {old + 1}" in changed[1]


def test_the_rewrite_keeps_values_and_comments_and_reaches_the_fixed_point():
    text = ("a:\n  # a comment that stays\n"
            "  methods: [ensemble, joint, multiloss, unipre_frozen, unipre_finetuned, ogm, agm, mlb, mslr, pmr]\n"
            "  short: [1, 2]   # stays on its line\n  root: \"\"\n")
    assert params_form.dvc_round_trip(text) != text           # DVC's writer would re-wrap it
    out = params_form.in_dvc_form(text)
    assert yaml.safe_load(out) == yaml.safe_load(text)
    assert params_form.dvc_round_trip(out) == out
    assert "# a comment that stays" in out and "short: [1, 2]   # stays on its line" in out
    assert "  - unipre_frozen\n" in out                        # the long list became a block list


def test_check_mode_names_the_fix(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("a: {x: 1, y: [aaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbb, cccccccccccccccccccccccc, dddddddddd]}\n")
    assert params_form.main(["--check", str(path)]) == 1
    assert "python tools/params_form.py" in capsys.readouterr().out
    assert params_form.main([str(path)]) == 0 and params_form.main(["--check", str(path)]) == 0
