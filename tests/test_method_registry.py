"""The method registry: a method is one module, found in the source; the tables take their order
and labels from it."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcrlib
from mcrlib.analysis.tables import display_names, format_pm, method_order
from mcrlib.config import ConfigError

PACKAGE = Path(mcrlib.__file__).parent

TOY = '''"""A toy method: joint training plus half of each unimodal loss."""
from dataclasses import dataclass

from mcrlib.methods.base import Method, register, task_loss


@register("toy")
class Toy(Method):
    display, rank = "Toy", 115

    @dataclass(frozen=True)
    class Params:
        weight: float = 0.5   # the unimodal losses' weight (made up for the test)

    def loss(self, model, batch, output):
        uni = sum(task_loss(u, batch["label"], self.task) for u in output.unimodal_logits.values())
        return {"task": task_loss(output.logits, batch["label"], self.task), "unimodal": self.params.weight * uni}
'''

SCRIPT = '''
import json
from mcrlib.analysis.tables import method_order
from mcrlib.methods import METHODS
from mcrlib.runs import run
from tests.conftest import TINY_RUN
result = run({**TINY_RUN, "method": {"name": "toy", "params": {"weight": 0.25}}}, "cache")
print(json.dumps({"order": method_order(["mcr", "toy", "mmpareto", "unimodal-x1", "reconboost"]),
                  "loss": "train_loss_unimodal" in result.history[-1]}))
'''


def test_a_new_method_is_one_module(tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(PACKAGE, copy / "mcrlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PACKAGE.parent / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "mcrlib/methods/toy.py").write_text(TOY)
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"order": ["unimodal-x1", "mmpareto", "toy", "reconboost", "mcr"], "loss": True}


def test_tables_take_order_and_labels_from_the_registry_and_never_drop_a_row():
    import pandas as pd
    assert method_order(["mcr", "joint", "unimodal-x2", "ensemble", "unimodal-x1"]) == [
        "unimodal-x1", "unimodal-x2", "ensemble", "joint", "mcr"]
    assert display_names(["unimodal-audio", "dnr", "mcr"]) == ["Unimodal audio", "D&R", "MCR"]
    with pytest.raises(ConfigError, match="method.name='magic' is unknown"):
        method_order(["magic"])
    summary = pd.DataFrame({"method": ["mcr", "new"], "cell": ["a", "a"], "mean": [0.5, 0.6], "std": [0.0, 0.1]})
    table = format_pm(summary, index="method", columns="cell", order=["mcr"])
    assert list(table.index) == ["mcr", "new"]          # a row the order lacks is kept, after it
