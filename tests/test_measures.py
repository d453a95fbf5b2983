"""Measures reported beside accuracy: macro-F1 and ECE of every head, and each modality's
contribution to the fused prediction (permuted latent, Shapley value with zeroed latents)."""
import copy
import math

import pytest
import torch

from mcrlib.config import ModelConfig
from mcrlib.data import TensorSplits
from mcrlib.evaluation import (expected_calibration_error, head_metrics, macro_f1, model_contributions,
                               modality_contributions)
from mcrlib.methods import METHODS, method_params
from mcrlib.models import build_model
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch


def as_logits(probabilities):
    return torch.tensor(probabilities, dtype=torch.float64).log()


# ---- macro-F1 and ECE --------------------------------------------------------------------------

def test_macro_f1_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 2, 0])
    # class 0: P 1/2 R 1/2 -> F1 1/2; class 1: P 2/3 R 1 -> 4/5; class 2: P 1 R 1/2 -> 2/3
    assert macro_f1(torch.nn.functional.one_hot(predicted, 3).float(), labels) == pytest.approx(
        (1 / 2 + 4 / 5 + 2 / 3) / 3)


@pytest.mark.parametrize("case", range(40))
def test_macro_f1_is_scikit_learns(case):
    """The counting macro-F1 against scikit-learn's f1_score(average="macro", zero_division=0),
    including classes that are never predicted, never true, or neither (not counted)."""
    from sklearn.metrics import f1_score
    generator = torch.Generator().manual_seed(case)
    n_classes = 2 + case % 6
    n = [1, 3, 10, 200][case % 4]
    labels = torch.randint(0, max(1, n_classes - case % 3), (n,), generator=generator)   # some classes absent
    logits = torch.randn(n, n_classes, generator=generator)
    if case % 5 == 0:
        logits[:, 0] += 10   # one class predicted almost always
    expected = f1_score(labels.numpy(), logits.argmax(-1).numpy(), average="macro", zero_division=0)
    assert macro_f1(logits, labels) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_ece_by_hand():
    # confidences 0.9, 0.91 (both in bin (13/15, 14/15]), 0.82, 0.7, 0.62 (one bin each)
    logits = as_logits([[0.9, 0.1], [0.09, 0.91], [0.82, 0.18], [0.3, 0.7], [0.62, 0.38]])
    labels = torch.tensor([0, 0, 1, 1, 0])   # right, wrong, wrong, right, right
    expected = (2 * abs(0.5 - 0.905) + abs(0 - 0.82) + abs(1 - 0.7) + abs(1 - 0.62)) / 5   # = 0.462
    assert expected_calibration_error(logits, labels) == pytest.approx(expected)
    assert expected == pytest.approx(0.462)


def test_ece_is_zero_when_calibrated_and_one_when_confidently_wrong():
    assert expected_calibration_error(as_logits([[0.5, 0.5], [0.5, 0.5]]), torch.tensor([0, 1])) == pytest.approx(0)
    assert expected_calibration_error(torch.tensor([[50.0, 0.0]] * 3), torch.tensor([1, 1, 1])) == pytest.approx(1)
    # 15 bins: 0.61 and 0.65 share the bin (0.6, 0.6667]; with 10 bins 0.61 and 0.69 share (0.6, 0.7]
    logits, labels = as_logits([[0.61, 0.39], [0.35, 0.65]]), torch.tensor([0, 0])
    assert expected_calibration_error(logits, labels) == pytest.approx(abs(0.5 - 0.63))


def test_head_metrics_report_f1_and_ece_of_every_head():
    torch.manual_seed(0)
    predictions = {"fused": torch.randn(40, 4), "a": torch.randn(40, 4), "label": torch.randint(4, (40,))}
    metrics = head_metrics(predictions, ["fused", "a"])
    for head in ("fused", "a"):
        assert metrics[f"f1_{head}"] == pytest.approx(macro_f1(predictions[head], predictions["label"]))
        assert metrics[f"ece_{head}"] == pytest.approx(expected_calibration_error(predictions[head], predictions["label"]))
        assert 0 <= metrics[f"ece_{head}"] <= 1
    # regression keeps its own metrics (its f1_ is the paper's weighted binary F1 of the sign), no ECE
    from mcrlib.metrics_regression import regression_head_metrics
    regression_predictions = {"fused": torch.randn(20, 1), "label": torch.randn(20)}
    regression = head_metrics(regression_predictions, ["fused"], "regression")
    assert regression["f1_fused"] == regression_head_metrics(regression_predictions, ["fused"])["f1_fused"]
    assert not any(k.startswith("ece_") for k in regression)


# ---- contributions ---------------------------------------------------------------------------

def own_predictions_split(model, rows=64, n_classes=5, seed=0):
    """A data set whose test labels are the model's own clean fused predictions (accuracy 1)."""
    torch.manual_seed(seed)
    inputs = {m: torch.randn(rows, 4) for m in model.modalities}
    with torch.no_grad():
        labels = model.eval()(inputs).logits.argmax(-1)
    split = {**inputs, "label": labels}
    return TensorSplits({"train": split, "val": split, "test": split}, modalities=model.modalities,
                        n_classes=n_classes)


def ignoring_second_modality():
    model, _ = model_and_batch(batch=4)
    with torch.no_grad():
        model.fusion.branches[1].weight.zero_()
    return model


def test_a_modality_the_fused_head_ignores_contributes_nothing():
    model = ignoring_second_modality()   # modalities x0, x1: the fused head ignores x1
    data = own_predictions_split(model)
    out = model_contributions(model, data, seed=0, batch_size=16)
    assert out["contrib_permute_x1"] == 0.0 and out["contrib_shapley_x1"] == 0.0
    # x0 carries every prediction: permuting it loses accuracy, its Shapley value is 1 - v(empty)
    labels = data.splits["test"]["label"]
    assert 0 < out["contrib_permute_x0"] <= 1
    v_empty = (labels == 0).float().mean().item()   # zero latents: the zero bias, arg-max class 0
    assert v_empty < 1 and out["contrib_shapley_x0"] == pytest.approx(1 - v_empty)


@pytest.mark.parametrize("n_modalities", [2, 3])
def test_shapley_values_are_efficient(n_modalities):
    model, _ = model_and_batch(n_modalities=n_modalities, batch=4, seed=1)
    torch.nn.init.normal_(model.fusion.bias)
    data = own_predictions_split(model, rows=80)
    data.splits["test"]["label"] = torch.randint(5, (80,), generator=torch.Generator().manual_seed(3))
    out = model_contributions(model, data, seed=0, batch_size=32)
    with torch.no_grad():
        z = model.encode({m: data.splits["test"][m] for m in model.modalities})
        v_all = (model.head(z).logits.argmax(-1) == data.splits["test"]["label"]).float().mean().item()
        zeros = {m: torch.zeros_like(v) for m, v in z.items()}
        v_empty = (model.head(zeros).logits.argmax(-1) == data.splits["test"]["label"]).float().mean().item()
    assert sum(out[f"contrib_shapley_{m}"] for m in model.modalities) == pytest.approx(v_all - v_empty)


def test_shapley_two_modalities_is_the_average_of_both_orders():
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    parts = {"a": torch.tensor([1.0, 1, 1, 0, 0, 0]), "b": torch.tensor([0.0, 1, 0, 1, 1, 0])}

    def fuse(p):   # class 1 when a + 2b exceeds 1.5; zeros predict class 0
        return torch.stack([torch.zeros(6), p["a"] + 2 * p["b"] - 1.5], dim=1)
    v = {(): (labels == 0).float().mean().item()}
    v[("a",)] = (((parts["a"] - 1.5) > 0).long() == labels).float().mean().item()
    v[("b",)] = (((2 * parts["b"] - 1.5) > 0).long() == labels).float().mean().item()
    v[("a", "b")] = ((fuse(parts).argmax(-1)) == labels).float().mean().item()
    out = modality_contributions(fuse, parts, labels, generator=torch.Generator().manual_seed(0))
    assert out["contrib_shapley_a"] == pytest.approx(0.5 * ((v[("a",)] - v[()]) + (v[("a", "b")] - v[("b",)])))
    assert out["contrib_shapley_b"] == pytest.approx(0.5 * ((v[("b",)] - v[()]) + (v[("a", "b")] - v[("a",)])))


def test_permutation_spans_the_whole_split_and_is_deterministic():
    model, _ = model_and_batch(batch=4, seed=2)
    data = own_predictions_split(model, rows=100)
    small = model_contributions(model, data, seed=5, batch_size=7)
    large = model_contributions(model, data, seed=5, batch_size=1000)
    assert small == pytest.approx(large)   # batches only chunk the work: one randperm of all rows
    assert model_contributions(model, data, seed=5, batch_size=7) == small


def test_contributions_leave_the_model_mode_alone():
    model, _ = model_and_batch(batch=4)
    data = own_predictions_split(model)
    model.train()
    model_contributions(model, data, seed=0)
    assert model.training


@pytest.mark.parametrize("name", sorted(n for n, c in METHODS.items() if c.trains))
def test_every_trained_method_builds_a_model_whose_fusion_can_be_evaluated(tiny_data, name):
    params = method_params(name, {})
    cls = METHODS[name]
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=8, **cls.model_overrides(params)), tiny_data,
                        cls.modalities(params, tiny_data.modalities))
    cls(params, model=model, task=tiny_data.task)
    out = model_contributions(model, tiny_data, seed=0, batch_size=32)
    assert set(out) == {f"contrib_{kind}_{m}" for kind in ("permute", "shapley") for m in model.modalities}
    assert all(math.isfinite(v) and -1 <= v <= 1 for v in out.values())


# ---- in a run's result -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def tiny(method, cache, **params):
    return run({**copy.deepcopy(TINY_RUN), "method": {"name": method, "params": params}}, cache)


def expected_keys(heads, contributions):
    keys = {f"{split}_{m}_{h}" for split in ("val", "test") for m in ("acc", "f1", "ece") for h in heads}
    return keys | {f"test_contrib_{kind}_{m}" for kind in ("permute", "shapley") for m in contributions}


@pytest.mark.parametrize("method", ["joint", "mcr", "mmcosine", "arm"])
def test_a_trained_run_reports_f1_ece_and_contributions(cache, method):
    result = tiny(method, cache, **({"copies": 4} if method == "mcr" else {}))
    assert expected_keys(["fused", "x1", "x2"], ["x1", "x2"]) <= set(result.metrics)
    test = result.predictions["test"]
    assert result.metrics["test_f1_fused"] == pytest.approx(macro_f1(test["fused"], test["label"]))
    assert result.metrics["test_ece_x1"] == pytest.approx(expected_calibration_error(test["x1"], test["label"]))
    assert all(-1 <= result.metrics[f"test_contrib_{k}_{m}"] <= 1 for k in ("permute", "shapley") for m in ("x1", "x2"))
    assert "val_f1_fused" in result.history[0] and "val_ece_x2" in result.history[0]


def test_contributions_come_from_the_best_weights_and_the_run_seed(cache):
    from mcrlib.analysis.robustness import load_trained_model
    result = tiny("joint", cache)
    model, data = load_trained_model(result)
    again = model_contributions(model, data, seed=result.config["seed"], batch_size=256)
    assert {f"test_{k}": v for k, v in again.items()} == pytest.approx(
        {k: v for k, v in result.metrics.items() if "_contrib_" in k})
    # efficiency: the Shapley values add up to the fused test accuracy minus v(empty)
    with torch.no_grad():
        zeros = {m: torch.zeros(1, model.encoders[m].out_dim) for m in model.modalities}
        empty_class = model.head(zeros).logits.argmax(-1).item()
    v_empty = (result.predictions["test"]["label"] == empty_class).float().mean().item()
    assert (result.metrics["test_contrib_shapley_x1"] + result.metrics["test_contrib_shapley_x2"]
            == pytest.approx(result.metrics["test_acc_fused"] - v_empty))


def test_the_ensemble_reports_f1_ece_and_logit_level_contributions(cache):
    result = tiny("ensemble", cache)
    assert expected_keys(["fused", "x1", "x2"], ["x1", "x2"]) <= set(result.metrics)
    # every member zeroed: standardised logits all 0, arg-max class 0
    v_empty = (result.predictions["test"]["label"] == 0).float().mean().item()
    assert (result.metrics["test_contrib_shapley_x1"] + result.metrics["test_contrib_shapley_x2"]
            == pytest.approx(result.metrics["test_acc_fused"] - v_empty))


def test_a_regression_run_keeps_its_own_metrics(tmp_path, tiny_data):
    import dataclasses

    from mcrlib.build import resolve
    from mcrlib.runs import _train
    splits = {name: {**split, "label": split["label"].float() - 2} for name, split in tiny_data.splits.items()}
    data = dataclasses.replace(tiny_data, splits=splits, n_classes=1, task="regression")
    resolved = resolve({**copy.deepcopy(TINY_RUN), "method": {"name": "joint"}}, data=data)
    metrics = _train(resolved, tmp_path, data, {}).metrics
    assert {"test_mae_fused", "test_f1_fused", "test_acc_fused"} <= set(metrics)
    assert not any("_ece_" in k or "_contrib_" in k for k in metrics)
