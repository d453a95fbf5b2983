"""Methods: every MCR term reaches the loss; regression variants; perturbations; ensemble."""
import pytest
import torch

from mcrlib.losses import mse_rows
from mcrlib.methods import METHODS, method_params
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch




def mcr(model, task="classification", **params):
    return METHODS["mcr"](method_params("mcr", {"copies": 4, **params}), model=model, task=task)


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


def test_ensemble_combines_the_cached_unimodal_runs(tmp_path):
    ensemble = run({**TINY_RUN, "method": {"name": "ensemble"}}, tmp_path)
    members = [run({**TINY_RUN, "method": {"name": "unimodal", "params": {"modality": m}}}, tmp_path)
               for m in ("x1", "x2")]
    assert len(list(tmp_path.iterdir())) == 3  # the members came from the cache, not retrained
    logits = [m.predictions["test"]["fused"] for m in members]
    z = sum((l - l.mean()) / l.std() for l in logits)
    torch.testing.assert_close(ensemble.predictions["test"]["fused"], z, rtol=1e-5, atol=1e-5)
    expected = (z.argmax(-1) == ensemble.predictions["test"]["label"]).float().mean().item()
    assert ensemble.metrics["test_acc_fused"] == pytest.approx(expected)
    assert 0 <= ensemble.metrics["test_acc_fused_probabilities"] <= 1


def test_command_line_run(tmp_path, capsys):
    import yaml
    from mcrlib.runs import main
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "method": {"name": "joint"}}))
    main([str(config), "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert '"test_acc_fused"' in out and "saved in" in out


def test_cache_key_follows_the_method_code_and_config():
    from mcrlib.code_closure import source_digest
    from mcrlib.config import RunConfig, from_dict
    from mcrlib.run_key import code_modules
    from mcrlib.runs import run_key
    joint = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}})
    assert run_key(joint) == run_key(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}}))
    assert run_key(joint) != run_key(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}, "seed": 1}))
    # joint and mcr live in different files: editing one method does not invalidate the other
    code = {name: source_digest(code_modules(from_dict(RunConfig, {**TINY_RUN, "method": {"name": name}})))
            for name in ("joint", "multiloss", "mcr")}
    assert code["joint"] != code["mcr"]
    assert code["joint"] == code["multiloss"]  # same file


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"unimodal"}))
def test_every_method_trains_two_epochs_deterministically(name, tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": name, "params": {"copies": 4} if name == "mcr" else {}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert a.metrics == b.metrics and a.history == b.history
    torch.testing.assert_close(a.predictions["test"]["fused"], b.predictions["test"]["fused"], rtol=0, atol=0)
    assert 0 <= a.metrics["test_acc_fused"] <= 1
    assert name == "ensemble" or len(a.history) == 2


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
