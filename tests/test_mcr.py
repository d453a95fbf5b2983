"""MCR: every enabled term reaches the loss; regression variants; perturbations and strategies;
the start from the unimodal runs' encoders; three-modality regression end to end. (L_MIPD's
gradient routing is tested in tests/test_mipd.py.)"""
import pytest
import torch

from mcrlib.config import RunConfig, from_dict
from mcrlib.data import load_dataset
from mcrlib.losses import mse_rows
from mcrlib.methods import METHODS, method_params
from mcrlib.models import build_model
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch


def mcr(model, task="classification", **params):
    return METHODS["mcr"](method_params("mcr", {"copies": 4, **params}), model=model, task=task)


def encoder_state(state, modality):
    prefix = f"encoders.{modality}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_class_attributes():
    cls = METHODS["mcr"]
    assert cls.trains and cls.rank == 200 and cls.display == "MCR"


def test_every_enabled_mcr_term_is_in_the_backpropagated_loss():
    """The release's two-modality classifier drops L_MIPD and L_con; here they change the gradient."""
    model, batch = model_and_batch()
    method = mcr(model, lambda_ceb=1.0)
    terms = method.loss(model, batch, model(batch))
    assert set(terms) == {"task", "unimodal", "mipd", "contrastive", "ceb"}
    enc = list(model.encoders["x0"].parameters())[0]

    def grad_without(term):
        torch.manual_seed(1)
        t = method.loss(model, batch, model(batch))
        return torch.autograd.grad(sum(v for k, v in t.items() if k != term), enc)[0]
    full = grad_without(None)
    for term in ("mipd", "contrastive", "ceb", "unimodal"):
        assert not torch.allclose(full, grad_without(term)), term


def test_regression_uses_l1_and_mse_divergence():
    model, batch = model_and_batch(n_classes=1)
    method = mcr(model, task="regression")
    assert method.divergence is mse_rows
    out = model(batch)
    terms = method.loss(model, batch, out)
    assert terms["task"].item() == pytest.approx((out.logits.reshape(-1) - batch["label"]).abs().mean().item())
    assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.parametrize("perturbation", ["permute", "noise_latent", "zero_latent"])
@pytest.mark.parametrize("strategy", ["greedy", "independent", "collaborative"])
def test_perturbations_and_strategies_give_finite_nonzero_games(perturbation, strategy):
    model, batch = model_and_batch(n_modalities=3)
    method = mcr(model, perturbation=perturbation, strategy=strategy, subsets="all")
    terms = method.loss(model, batch, model(batch))
    assert torch.isfinite(terms["mipd"])
    assert set(method.diagnostics) == {"D[x0]", "D[x1]", "D[x2]", "D[x0+x1]", "D[x0+x2]", "D[x1+x2]"}
    assert all(v > 0 for v in method.diagnostics.values())


def test_history_total_is_the_sum_of_its_terms(tmp_path):
    result = run({**TINY_RUN, "method": {"name": "mcr", "params": {"copies": 4, "lambda_ceb": 0.5}}}, tmp_path)
    for record in result.history:
        parts = [v for k, v in record.items() if k.startswith("train_loss_") and k != "train_loss_total"]
        assert len(parts) == 5 and record["train_loss_total"] == pytest.approx(sum(parts), rel=1e-5)


def test_mcr_on_three_modality_regression_end_to_end(tmp_path):
    """CMU-MOSI V-A-T from a fixture pickle: Transformer encoders, L1 task loss, MSE divergence,
    all non-empty proper subsets of three modalities, the paper's regression metrics."""
    from tests.fixtures.mosi import write_affect_pickle
    from mcrlib.data.prepare import prepare
    pickle = write_affect_pickle(tmp_path / "raw", "mosi")
    prepare("mosi", {"root": str(pickle)}, tmp_path / "processed")
    data = {"name": "mosi", "params": {"prepared": str(tmp_path / "processed"), "modalities": ["vision", "text", "audio"]}}
    result = run({**TINY_RUN, "data": data, "train": {**TINY_RUN["train"], "batch_size": 4},
                  "method": {"name": "mcr", "params": {"copies": 4, "subsets": "all"}}}, tmp_path / "runs")
    history = result.history[-1]
    assert {"train_D[vision]", "train_D[vision+text]", "train_D[text+audio]"} <= set(history)
    for key in ("acc2_fused", "acc7_fused", "f1_fused", "mae_fused", "corr_fused", "mae_audio"):
        assert f"test_{key}" in result.metrics
    assert result.metrics["test_loss_fused"] == result.metrics["test_mae_fused"]
    assert result.predictions["test"]["fused"].shape[1] == 1


def test_mcr_can_start_from_the_unimodal_encoders(tmp_path):
    cls = METHODS["mcr"]
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "mcr", "params": {"init_from_unimodal": True}}})
    required = cls.required_runs(config, ("x1", "x2"))
    assert list(required) == ["encoder:x1", "encoder:x2"]
    assert [c.method.params for c in required.values()] == [{"modality": "x1"}, {"modality": "x2"}]
    assert all(c.train == config.train and c.model == config.model and c.seed == config.seed
               for c in required.values())
    runs = {role: run(c, tmp_path) for role, c in required.items()}
    torch.manual_seed(0)
    model = build_model(config.model, load_dataset(config.data.name, config.data.params))
    head = model.fusion.branches[0].weight.detach().clone()
    cls.initialise(model, runs)
    for role, result in runs.items():
        m = role.split(":")[1]
        for key, value in encoder_state(result.model_state(), m).items():
            torch.testing.assert_close(model.encoders[m].state_dict()[key], value, rtol=0, atol=0)
    assert torch.equal(model.fusion.branches[0].weight, head)  # only the encoders are loaded
    # Without the flag (absent: its default, or false) MCR is built from no other run.
    for params in ({}, {"init_from_unimodal": False}):
        plain = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "mcr", "params": params}})
        assert cls.required_runs(plain, ("x1", "x2")) == {}
    # Through run(), the same unimodal runs come from the cache: one new entry, MCR's.
    run({**TINY_RUN, "method": {"name": "mcr", "params": {"copies": 4, "init_from_unimodal": True}}}, tmp_path)
    assert len(list(tmp_path.iterdir())) == 3
