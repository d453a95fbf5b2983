"""environment.yml (the conda alternative to `make setup`) agrees with pyproject.toml."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements) -> dict[str, str]:
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_conda_environment_pins_what_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    required = _pins(project["dependencies"])
    assert {"torch", "torchaudio", "torchvision"} <= set(required)
    assert _pins(pip) == required, "environment.yml's pip pins differ from pyproject.toml's"
    assert project["requires-python"] == ">=3.11" and python == "python=3.11"
    assert "-e .[dev]" in pip    # the project itself, with the same extras as `make setup`
