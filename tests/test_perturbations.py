"""Input-space perturbations (Table 4): what the encoders see, what it costs, where gradients go."""
import pytest
import torch

from mcrlib.config import ConfigError
from mcrlib.losses import jsd, make_perturbation
from mcrlib.methods import METHODS, method_params
from mcrlib.models import ImageEncoder, MultimodalModel
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch
from tests.test_mipd import EXPECTED_SIGN, Counting, encoder_grads

B, P = 16, 4


def mcr(model, **params):
    return METHODS["mcr"](method_params("mcr", {"copies": P, **params}), model=model)


def counted(model):
    for name in model.modalities:
        model.encoders[name] = Counting(model.encoders[name])
    return model


@pytest.mark.parametrize("perturbation,copies", [("noise_input", P), ("zero_input", 1)])
@pytest.mark.parametrize("latent_source,clean_passes", [("train", [B]), ("eval_reforward", [B, B])])
def test_input_perturbation_costs_one_extra_encoder_pass_on_the_stacked_copies(
        perturbation, copies, latent_source, clean_passes):
    model, batch = model_and_batch(batch=B)
    counted(model)
    method = mcr(model, perturbation=perturbation, latent_source=latent_source)
    terms = method.loss(model, batch, model(batch))
    sum(terms.values()).backward()
    for encoder in model.encoders.values():
        assert encoder.rows == clean_passes + [copies * B]
    assert method.perturbation.copies == copies


@pytest.mark.parametrize("perturbation", ["permute", "noise_latent", "zero_latent"])
def test_latent_perturbations_run_no_extra_encoder_pass(perturbation):
    model, batch = model_and_batch(batch=B)
    counted(model)
    mcr(model, perturbation=perturbation).loss(model, batch, model(batch))
    assert [e.rows for e in model.encoders.values()] == [[B], [B]]


def test_zero_input_gives_the_latents_of_zero_inputs():
    model, batch = model_and_batch(batch=B)
    method = mcr(model, perturbation="zero_input")
    out = model(batch)
    clean, perturbed = method.perturbation_latents(model, batch, out)
    for m, name in enumerate(model.modalities):
        assert clean[m] is out.latents[name]
        expected = model.encoders[name](torch.zeros_like(batch[name]))
        torch.testing.assert_close(perturbed[m], expected, rtol=0, atol=0)
        assert not torch.allclose(perturbed[m], clean[m])


def test_noise_input_is_x_plus_batch_std_noise_in_p_stacked_copies():
    model, batch = model_and_batch(batch=B)
    method = mcr(model, perturbation="noise_input")
    torch.manual_seed(3)
    _, perturbed = method.perturbation_latents(model, batch, model(batch))
    torch.manual_seed(3)
    for m, name in enumerate(model.modalities):
        x = batch[name]
        noisy = x + torch.randn(P, *x.shape) * x.std(0, keepdim=True)   # copy c = rows c*B..(c+1)*B
        torch.testing.assert_close(perturbed[m], model.encoders[name](noisy.reshape(P * B, -1)))


def test_noise_input_scales_with_each_elements_batch_std_and_keeps_integer_types():
    noise = make_perturbation("noise_input", 64)
    x = torch.randn(32, 3, 5) * torch.tensor([0.0, 1.0, 10.0])[:, None]   # channel 0 constant over the batch
    out = noise.apply(x, noise.draw(32, "cpu")).reshape(64, 32, 3, 5)
    delta = out - x
    assert delta[:, :, 0].abs().max() == 0
    ratio = delta.std(0)[:, 1:] / x.std(0)[1:]   # noise std over copies / batch std, per element
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.05)
    assert ratio[:, 1].mean().item() == pytest.approx(ratio[:, 0].mean().item(), abs=0.1)   # std 10 vs 1
    frames = torch.randint(0, 256, (8, 2, 3, 4, 4), dtype=torch.uint8)
    torch.manual_seed(0)
    noisy = noise.apply(frames, None)
    torch.manual_seed(0)
    f = frames.float()
    expected = (f + torch.randn(64, *frames.shape) * f.std(0, keepdim=True)).round().clamp(0, 255).to(torch.uint8)
    assert noisy.dtype == torch.uint8 and torch.equal(noisy, expected.reshape(64 * 8, 2, 3, 4, 4))
    zeros = make_perturbation("zero_input", 64)
    assert zeros.copies == 1 and zeros.apply(frames, None).dtype == torch.uint8 and zeros.apply(frames, None).sum() == 0


@pytest.mark.parametrize("strategy", ["greedy", "independent", "collaborative"])
def test_input_perturbation_routes_gradients_like_a_latent_one(strategy):
    """Same game, with z~_m = f_m(0): encoder m's gradient is the signed sum of the full
    divergences, computed here directly from zero-input latents."""
    model, batch = model_and_batch(batch=B)
    method = mcr(model, perturbation="zero_input", strategy=strategy, detach_reference=True,
                 lambda_mipd=1.0, lambda_uni=0.0, lambda_con=0.0)
    out = model(batch)
    loss = method.loss(model, batch, out)["mipd"]
    latents = [out.latents[m] for m in model.modalities]
    zero = [model.encoders[m](torch.zeros_like(batch[m])) for m in model.modalities]

    def divergence(s):
        mixed = [zero[m] if m in s else z for m, z in enumerate(latents)]
        return jsd(model.fusion(mixed), out.logits.detach())
    got = encoder_grads(model, loss)
    for m, name in enumerate(model.modalities):
        expected = sum(EXPECTED_SIGN[strategy](m, s) * encoder_grads(model, divergence(s))[name] for s in [(0,), (1,)])
        assert got[name].abs().sum() > 0
        torch.testing.assert_close(got[name], expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("perturbation", ["noise_input", "zero_input"])
def test_training_mode_input_pass_leaves_batchnorm_statistics_alone(perturbation):
    torch.manual_seed(0)
    model = MultimodalModel(encoders={m: ImageEncoder(in_channels=1, width=2, small_input=True) for m in ("a", "v")},
                            n_classes=3)
    batch = {"a": torch.randn(B, 1, 8, 8), "v": torch.randn(B, 1, 8, 8), "label": torch.randint(3, (B,))}
    model.train()
    out = model(batch)   # the clean forward updates the running statistics, once
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    terms = mcr(model, perturbation=perturbation).loss(model, batch, out)
    sum(terms.values()).backward()   # the restored buffers do not break the backward pass
    assert model.training
    for k, v in model.state_dict().items():
        if k in stats:
            torch.testing.assert_close(v, stats[k], rtol=0, atol=0)
    assert all(p.grad is not None for p in model.encoders.parameters())


@pytest.mark.parametrize("perturbation", ["noise_input", "zero_input"])
def test_input_perturbations_train_deterministically(perturbation, tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 1, "warmup_epochs": 0},
              "method": {"name": "mcr", "params": {"copies": P, "perturbation": perturbation}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert a.history == b.history and all(v > 0 for k, v in a.history[0].items() if k.startswith("train_D["))


def test_unknown_perturbation_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="noise_input"):
        method_params("mcr", {"perturbation": "noise_inptu"})
