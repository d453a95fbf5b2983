"""One run on two processes (torchrun, gloo, CPU) = the same run in one process with the same
global batch (issue 14; docs/distributed.md)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mcrlib import distributed as dist
from mcrlib.config import ConfigError
from tests.conftest import TINY_RUN

TORCHRUN_SCRIPT = r'''
import json, sys
from pathlib import Path
import mcrlib.runs as runs
from mcrlib import distributed as dist

config, cache, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
if len(sys.argv) > 4:   # kill the run (every rank) after epoch KILL_AT's validation
    kill_at = int(sys.argv[4])
    def kill(_trainer, epoch, _record):
        if epoch == kill_at:
            raise SystemExit(3)
    class Killed(runs.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback("on_epoch_end", kill)
    runs.Trainer = Killed
writes = []
for name in ("_save", "save_torch"):
    original = getattr(runs, name)
    def counted(*args, _original=original, _name=name):
        writes.append(_name)
        return _original(*args)
    setattr(runs, name, counted)
result = runs.run(config, cache)
record = {"rank": dist.rank(), "world": dist.world_size(), "metrics": result.metrics,
          "history": result.history, "writes": writes, "path": str(result.path)}
(out / f"rank{dist.rank()}.json").write_text(json.dumps(record))
dist.teardown()
'''

JOINT = copy.deepcopy(TINY_RUN)
JOINT["method"] = {"name": "joint"}
JOINT["train"] = {**JOINT["train"], "batch_size": 32, "max_epochs": 3, "device": "cpu"}
JOINT["model"] = {**JOINT["model"], "dropout": 0.0}


def torchrun(config: dict, cache: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2` of TORCHRUN_SCRIPT (gloo, CPU, one thread)."""
    out.mkdir(parents=True, exist_ok=True)
    script = out / "ddp_run.py"
    script.write_text(TORCHRUN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    launcher = Path(sys.executable).with_name("torchrun")
    return subprocess.run([str(launcher), "--standalone", "--nproc_per_node=2", str(script),
                           json.dumps(config), str(cache), str(out), *extra],
                          env=env, capture_output=True, text=True, timeout=240)


def test_two_processes_match_one(tmp_path):
    from mcrlib.runs import run
    started = time.monotonic()
    proc = torchrun(JOINT, tmp_path / "ddp-cache", tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # rank 0 alone writes the run (model.pt, then _save: predictions.pt and result.json); rank 1 waits
    assert ranks[0]["writes"] == ["save_torch", "_save", "save_torch"] and ranks[1]["writes"] == []
    assert ranks[0]["metrics"] == ranks[1]["metrics"]           # both return the same result
    entries = list((tmp_path / "ddp-cache").iterdir())
    assert len(entries) == 1 and not (entries[0] / "checkpoint.pt").exists()
    assert {p.name for p in entries[0].iterdir()} >= {"result.json", "model.pt", "predictions.pt"}

    single = run(JOINT, tmp_path / "single-cache")
    assert entries[0].name == single.path.name                   # the same run key
    ddp = ranks[0]
    assert len(ddp["history"]) == len(single.history) == 3
    for got, want in zip(ddp["history"], single.history):
        assert got.keys() == want.keys()
        for k, v in want.items():
            if "acc" in k or k == "epoch":
                assert got[k] == v, k                            # accuracies identical
            else:
                assert got[k] == pytest.approx(v, abs=1e-5), k   # losses within 1e-5
    for k, v in single.metrics.items():
        if isinstance(v, float) and "acc" not in k:
            assert ddp["metrics"][k] == pytest.approx(v, abs=1e-5), k
        else:
            assert ddp["metrics"][k] == v, k
    worst = max(abs(got[k] - want[k]) for got, want in zip(ddp["history"], single.history) for k in want)
    print(f"torchrun 2 processes: {elapsed:.1f} s; largest history difference {worst:.2e}")


def test_batch_must_divide_over_ranks(monkeypatch, tiny_data):
    from mcrlib.config import ModelConfig, TrainConfig
    from mcrlib.methods import METHODS, method_params
    from mcrlib.models import build_model
    from mcrlib.train import Trainer
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    model = build_model(ModelConfig(hidden_dim=8, latent_dim=4), tiny_data, tiny_data.modalities)
    method = METHODS["joint"](method_params("joint", {}), model=model)
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        Trainer(model, method, TrainConfig(batch_size=32, device="cpu"))


def test_shard_takes_this_ranks_rows(monkeypatch):
    batch = {"x": torch.arange(8), "label": torch.arange(8) * 10}
    assert dist.shard(batch, 8) is batch                         # one process: the whole batch
    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "rank", lambda: 1)
    assert dist.shard(batch, 8)["x"].tolist() == [4, 5, 6, 7]
    assert dist.shard(batch, 8)["label"].tolist() == [40, 50, 60, 70]


def test_mcr_resumes_exactly_under_torchrun(tmp_path):
    """MCR (per-rank permutations, per-rank random streams) on 2 processes, killed after epoch 1
    and restarted from rank 0's checkpoint, ends as the uninterrupted 2-process run."""
    mcr = {**JOINT, "method": {"name": "mcr", "params": {"copies": 4}}}
    whole = torchrun(mcr, tmp_path / "whole", tmp_path / "whole-out")
    assert whole.returncode == 0, whole.stderr[-4000:]
    killed = torchrun(mcr, tmp_path / "killed", tmp_path / "killed-out", "1")
    assert killed.returncode != 0
    (entry,) = (tmp_path / "killed").iterdir()
    assert (entry / "checkpoint.pt").exists() and not (entry / "result.json").exists()
    resumed = torchrun(mcr, tmp_path / "killed", tmp_path / "resumed-out")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    want = json.loads((tmp_path / "whole-out" / "rank0.json").read_text())
    for r in (0, 1):
        got = json.loads((tmp_path / "resumed-out" / f"rank{r}.json").read_text())
        assert got["history"] == want["history"] and got["metrics"] == want["metrics"]


UNEQUAL_GRADS_SCRIPT = r'''
import json, sys
from pathlib import Path
import torch
import torch.distributed as torch_dist
from mcrlib import distributed as dist

dist.setup(torch.device("cpu"))
r = dist.rank()
used_everywhere, used_on_rank0, never_used = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
used_everywhere.grad = torch.full((3,), float(r + 1))           # 1 on rank 0, 2 on rank 1
if r == 0:                                                      # e.g. a layer LayerDrop skipped on rank 1
    used_on_rank0.grad = torch.full((3,), 4.0)
dist.average_gradients([used_everywhere, used_on_rank0, never_used])
record = {"everywhere": used_everywhere.grad.tolist(), "rank0": used_on_rank0.grad.tolist(),
          "never": never_used.grad is None}
Path(sys.argv[1], f"rank{r}.json").write_text(json.dumps(record))
dist.teardown()
'''


def test_gradients_present_on_some_ranks_only_are_averaged_with_zeros(tmp_path):
    """The ranks agree on which parameters have a gradient before the coalesced all-reduce: a
    parameter reached on one rank only (LayerDrop, SpecAugment) is averaged with zeros, one
    reached nowhere keeps no gradient, and nothing hangs or mixes up tensors."""
    script = tmp_path / "unequal.py"
    script.write_text(UNEQUAL_GRADS_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    launcher = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(launcher), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for r in (0, 1):
        record = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert record == {"everywhere": [1.5] * 3, "rank0": [2.0] * 3, "never": True}
