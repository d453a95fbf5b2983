"""Per-epoch features recorded by a trainer callback, linear probes, the competition stage."""
import torch
import yaml

from mcrlib.analysis.probes import probe_accuracy
from mcrlib.features import load_features
from mcrlib.pipeline import execute
from mcrlib.runs import run
from tests.conftest import TINY_RUN
from tests.test_pipeline import ROOT
from tests.test_profiles import write_smoke_params


def test_recording_features_saves_every_epoch_without_changing_training(tmp_path):
    plain = run({**TINY_RUN, "method": {"name": "joint"}}, tmp_path)
    recorded = run({**TINY_RUN, "method": {"name": "joint"}, "record_features": 50}, tmp_path)
    assert recorded.path != plain.path and recorded.history == plain.history
    epochs = load_features(recorded.path)
    assert len(epochs) == len(recorded.history) == 3
    assert epochs[0]["train"]["x1"].shape == (50, 8) and epochs[0]["test"]["x2"].shape == (64, 8)
    assert torch.equal(epochs[0]["test"]["label"], recorded.predictions["test"]["label"])
    assert not torch.equal(epochs[0]["train"]["x1"], epochs[-1]["train"]["x1"])  # the encoder moved
    assert load_features(plain.path) == []


def test_probe_reads_label_information_from_features():
    torch.manual_seed(0)
    labels = torch.randint(3, (300,))
    informative = torch.nn.functional.one_hot(labels, 3).float() * 3 + torch.randn(300, 3)
    noise = torch.randn(300, 3)
    assert probe_accuracy(informative[:200], labels[:200], informative[200:], labels[200:]) > 0.9
    assert probe_accuracy(noise[:200], labels[:200], noise[200:], labels[200:]) < 0.55


def test_competition_stage_draws_curves_from_recorded_features(tmp_path):
    write_smoke_params(tmp_path, competition={"methods": ["joint"], "seeds": [0, 1], "record_features": 100})
    execute(ROOT / "notebooks" / "01_competition_analysis.py", "competition", root=tmp_path)
    import pandas as pd
    curves = pd.read_csv(tmp_path / "results" / "competition" / "curves.csv")
    assert set(curves["seed"]) == {0, 1} and set(curves["method"]) == {"joint"}
    assert {"fused", "probe x1", "probe x2"} <= set(curves.columns)
    assert curves[["fused", "probe x1", "probe x2"]].apply(lambda c: c.between(0, 1)).all().all()
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["competition"]
    declared = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"] + stage["metrics"]}
    written = {str(p.relative_to(tmp_path)) for folder in ("results", "figures")
               for p in (tmp_path / folder).rglob("*") if p.is_file()}
    assert written == declared
    # DVC reads the metrics as nested mappings (dataset -> method -> head -> value), not a list
    import json
    metrics = json.loads((tmp_path / "results" / "competition" / "metrics.json").read_text())
    (dataset, methods), = metrics.items()
    assert set(methods) == {"joint"} and set(methods["joint"]) == {"fused", "probe x1", "probe x2"}
    assert all(0 <= v <= 1 for v in methods["joint"].values())
