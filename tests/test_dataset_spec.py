"""One shape for every dataset (mcrlib.data.spec): each module's spec, the lazy registry, and a
new dataset that needs its module and nothing else."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcrlib
from mcrlib.config import ConfigError
from mcrlib.data import DATASETS, dataset_params
from mcrlib.data.spec import ENCODER_FAMILIES, DatasetSpec, is_location

PACKAGE = Path(mcrlib.__file__).parent


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_has_the_one_shape(name):
    spec = DATASETS[name]
    assert isinstance(spec, DatasetSpec) and spec.name == name
    cfg = dataset_params(name, {})
    assert set(spec.encoder_families(cfg).values()) <= set(ENCODER_FAMILIES)
    locations = [f.name for f in dataclasses.fields(cfg) if is_location(f)]
    if spec.prepare is None:
        assert locations == [] and name in ("synthetic", "synthetic_xor")   # drawn from params
    else:
        assert locations == ["prepared"] and cfg.prepared == f"data/processed/{name}"
        prepare_fields = {f.name for f in dataclasses.fields(spec.prepare_config)}
        assert "root" in prepare_fields and spec.root_env.startswith("MCR_")
        assert spec.prepare_config().root == ""          # no machine's path in a default


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ConfigError, match="data.name='kinetics' is unknown: expected one of .*cremad"):
        DATASETS["kinetics"]


TOY = '''"""A toy dataset: the whole of what adding a dataset takes."""
from dataclasses import dataclass
from pathlib import Path

import torch

from mcrlib.atomic import save_torch
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

ROOT_ENV = "MCR_TOY_ROOT"


@dataclass(frozen=True)
class PrepareConfig:
    root: str = ""
    scale: float = 1.0


@dataclass(frozen=True)
class LoadConfig:
    prepared: str = location("data/processed/toy")


def prepare(cfg, out_dir):
    values = [float(v) for v in (resolve_root(cfg.root, ROOT_ENV, layout="values.txt", source="here",
                                              key="data.toy.root") / "values.txt").read_text().split()]
    x = cfg.scale * torch.tensor(values).repeat(2, 1).T
    save_torch({"x": x, "label": (x[:, 0] > 0).long()}, Path(out_dir) / "toy.pt")


def load(cfg):
    path = Path(cfg.prepared) / "toy.pt"
    if not path.is_file():
        raise DataError(f"{path} is missing: run python -m mcrlib.data.prepare toy")
    t = torch.load(path, weights_only=True)
    split = {"a": t["x"][:, :1], "b": t["x"][:, 1:], "label": t["label"]}
    return TensorSplits({s: split for s in ("train", "val", "test")}, modalities=("a", "b"), n_classes=2)


SPEC = DatasetSpec(name="toy", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"a": "mlp", "b": "mlp"}, root_env=ROOT_ENV)
'''

SCRIPT = '''
import json, sys
from mcrlib.data import DATASETS, load_dataset
from mcrlib.data.prepare import prepare, preparable
from mcrlib.runs import run
prepare("toy", {"root": "raw", "scale": 2.0}, "data/processed/toy")
data = load_dataset("toy", {})
result = run({"data": {"name": "toy"}, "model": {"hidden_dim": 4, "latent_dim": 2},
              "train": {"max_epochs": 1, "warmup_epochs": 0, "batch_size": 4, "progress": False},
              "method": {"name": "mcr", "params": {"copies": 2}}}, "cache")
print(json.dumps({"registered": "toy" in DATASETS, "preparable": "toy" in preparable(),
                  "encoders": data.encoders, "acc": result.metrics["test_acc_fused"]}))
'''


def test_a_new_dataset_is_one_module(tmp_path):
    """Adding a dataset: its module in mcrlib/data (plus, in a real one, its fixtures, its test and
    a params.yaml entry). No registry, studies, models or prepare-stage code names it."""
    copy = tmp_path / "checkout"
    shutil.copytree(PACKAGE, copy / "mcrlib", ignore=shutil.ignore_patterns("__pycache__"))
    before = {p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*.py")}
    (copy / "mcrlib/data/toy.py").write_text(TOY)
    (copy / "raw").mkdir()
    (copy / "raw/values.txt").write_text(" ".join(str(v) for v in range(-4, 4)))
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MCR_TOY_ROOT", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["registered"] and out["preparable"] and out["encoders"] == {"a": "mlp", "b": "mlp"}
    assert 0.0 <= out["acc"] <= 1.0
    after = {p.relative_to(copy).as_posix(): p.read_bytes() for p in (copy / "mcrlib").rglob("*.py")}
    assert {k for k in after if k not in before} == {"mcrlib/data/toy.py"}
    assert all(after[k] == v for k, v in before.items())
