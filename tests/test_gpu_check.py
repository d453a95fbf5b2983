"""The GPU check script runs end to end (at toy sizes on the CPU here), so it works the day a GPU
is lent; without a GPU and without --smoke it says so and exits 2."""
import json
import math

import pytest
import torch

from benchmarks import gpu_check


def test_smoke_run_writes_cost_table_and_training_runs(tmp_path):
    report = gpu_check.main(["--smoke", "--out", str(tmp_path / "gpu.json")])
    assert json.loads((tmp_path / "gpu.json").read_text()) == json.loads(json.dumps(report))
    variants = {(row["variant"], row["precision"]) for row in report["cost"]}
    for precision in ("fp32", "bf16"):
        assert {("joint", precision), ("mcr, permute", precision), ("mcr, no L_MIPD", precision)} <= variants
    assert all(row["time_ms"] > 0 for row in report["cost"])
    assert [run["method"] for run in report["training"]] == ["joint", "mcr"]
    assert all(math.isfinite(run["last_train_loss"]) and run["train_samples_per_s"] > 0 for run in report["training"])


def test_without_a_gpu_it_refuses_clearly(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--out", str(tmp_path / "gpu.json")])
    assert stop.value.code == 2 and "no CUDA device" in capsys.readouterr().err
