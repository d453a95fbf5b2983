"""Robustness to a missing modality: a run's model rebuilt from its RunResult reproduces its stored
test predictions exactly (plain fusion, MMCosine's and ARM's replaced fusion), and each
perturbation changes only the chosen modality's input, deterministically for a seed."""
import copy

import pandas as pd
import pytest
import torch

from mcrlib.analysis.robustness import (PERTURBATIONS, dominant_modality, load_trained_model, perturb,
                                        perturbed_latent, perturbed_predictions, robustness, robustness_frame)
from mcrlib.config import RunConfig, from_dict
from mcrlib.data import load_dataset
from mcrlib.evaluation import predict
from mcrlib.models.arm_fusion import ARMFusion
from mcrlib.models.cosine_fusion import CosineFusion
from mcrlib.models import LateLinearFusion, build_model
from mcrlib.runs import run
from tests.conftest import TINY_RUN


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def tiny(method, cache, **params):
    return run({**copy.deepcopy(TINY_RUN), "method": {"name": method, "params": params}}, cache)


@pytest.mark.parametrize("method, fusion", [("joint", LateLinearFusion), ("mmcosine", CosineFusion),
                                            ("arm", ARMFusion), ("mcr", LateLinearFusion)])
def test_rebuilt_model_reproduces_the_stored_test_predictions_exactly(method, fusion, cache):
    result = tiny(method, cache)
    model, data = load_trained_model(result)
    assert type(model.fusion) is fusion and not model.training
    # Exact equality holds for the same code on the same inputs under the same kernels: the run
    # evaluated on one CPU thread (mcrlib.runs), so this does too (another thread count may split
    # a reduction differently).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clean = predict(model, data, "test", 256, "cpu")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(clean["fused"], result.predictions["test"]["fused"])
    assert torch.equal(clean["label"], result.predictions["test"]["label"])


def test_a_saved_model_rebuilds_from_its_config_alone(cache):
    """MMCosine's run config names its cosine head, so the saved state loads into the model its
    config builds; a linear head (what the config would build without it) refuses that state."""
    import dataclasses
    result = tiny("mmcosine", cache)
    config = from_dict(RunConfig, result.config)
    assert config.model.fusion == "cosine"
    data = load_dataset(config.data.name, config.data.params)
    build_model(config.model, data).load_state_dict(result.model_state())
    with pytest.raises(RuntimeError, match="fusion.bias"):
        build_model(dataclasses.replace(config.model, fusion="linear", fusion_params={}), data).load_state_dict(
            result.model_state())


def test_an_ensemble_has_no_model_of_its_own(cache):
    with pytest.raises(ValueError, match="no model of its own"):
        load_trained_model(tiny("ensemble", cache))


def batch(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"x1": torch.randn(n, 5, generator=gen) * torch.arange(1, 6) + 3,
            "x2": torch.randn(n, 2, 4, 4, generator=gen), "label": torch.randint(3, (n,), generator=gen)}


@pytest.mark.parametrize("kind", PERTURBATIONS)
@pytest.mark.parametrize("modality, other", [("x1", "x2"), ("x2", "x1")])
def test_each_perturbation_changes_only_the_chosen_modality(kind, modality, other):
    clean = batch()
    out = perturb(clean, modality, kind, torch.Generator().manual_seed(0))
    assert out[other] is clean[other] and out["label"] is clean["label"]
    assert out[modality].shape == clean[modality].shape and out[modality].dtype == clean[modality].dtype
    assert not torch.equal(out[modality], clean[modality])
    assert torch.equal(clean[modality], batch()[modality])            # the input is not modified in place
    again = perturb(clean, modality, kind, torch.Generator().manual_seed(0))
    assert torch.equal(again[modality], out[modality])                # deterministic for a seed


def test_what_each_perturbation_puts_in_place():
    clean = batch(n=4000)
    x = clean["x1"]
    assert torch.equal(perturb(clean, "x1", "zero", torch.Generator())["x1"], torch.zeros_like(x))
    shuffled = perturb(clean, "x1", "permute", torch.Generator().manual_seed(1))["x1"]
    # The same rows (whole samples, not features mixed across samples), reordered.
    source = torch.searchsorted(x[:, 0].sort().values, shuffled[:, 0].contiguous())
    assert torch.equal(shuffled, x[x[:, 0].argsort()][source]) and len(set(source.tolist())) == len(x)
    assert (source != x[:, 0].argsort().argsort()).float().mean() > 0.99
    noise = perturb(clean, "x1", "noise", torch.Generator().manual_seed(1))["x1"]
    assert ((noise.mean(0) - x.mean(0)).abs() < 0.1 * x.std(0)).all()   # centred on the batch's mean (3), not 0
    torch.testing.assert_close(noise.std(0), x.std(0), atol=0, rtol=0.05)
    assert abs(torch.corrcoef(torch.stack([noise[:, 0], x[:, 0]]))[0, 1]) < 0.05   # no information left
    other_seed = perturb(clean, "x1", "noise", torch.Generator().manual_seed(2))["x1"]
    assert not torch.equal(other_seed, noise)
    with pytest.raises(ValueError, match="unknown"):
        perturb(clean, "x1", "drop", torch.Generator())


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_the_model_sees_the_other_modality_unchanged(kind, cache):
    model, data = load_trained_model(tiny("joint", cache))
    seen = {m: [] for m in model.modalities}
    hooks = [model.encoders[m].register_forward_pre_hook(lambda _mod, args, m=m: seen[m].append(args[0]))
             for m in model.modalities]
    perturbed_predictions(model, data, "test", "x1", kind, seed=0, batch_size=16)
    for hook in hooks:
        hook.remove()
    test = data.splits["test"]
    assert torch.equal(torch.cat(seen["x2"]), test["x2"])
    assert not torch.equal(torch.cat(seen["x1"]), test["x1"])


@pytest.mark.parametrize("method", ["joint", "mmcosine", "arm", "mcr"])
def test_perturbed_latents_give_the_logits_of_a_full_pass_on_the_perturbed_batch(method, cache):
    """robustness() encodes only the modality a perturbation replaces; its fused logits must be
    those of the reference, a whole forward pass on the perturbed batch (perturbed_predictions),
    batch by batch with the same draws, for every modality and perturbation and every fusion head.
    Close, not equal: one zero sample encoded and repeated, or latents permuted after encoding,
    may round differently from a batch encoded at once."""
    model, data = load_trained_model(tiny(method, cache))
    for modality in model.modalities:
        for kind in PERTURBATIONS:
            reference = perturbed_predictions(model, data, "test", modality, kind, seed=3, batch_size=16)
            generator, fused = torch.Generator().manual_seed(3), []
            with torch.no_grad():
                for batch in data.loader("test", 16):
                    clean = model.encode({m: batch[m] for m in model.modalities})
                    z = perturbed_latent(model, batch[modality], clean[modality], modality, kind, generator)
                    fused.append(model.head({**clean, modality: z}).logits)
            torch.testing.assert_close(torch.cat(fused), reference["fused"], rtol=1e-4, atol=1e-5)
            # and the draws matter: another seed gives other logits (zero draws nothing)
            if kind != "zero":
                other = perturbed_predictions(model, data, "test", modality, kind, seed=4, batch_size=16)
                assert not torch.allclose(other["fused"], reference["fused"], rtol=1e-4, atol=1e-5)


def test_robustness_accuracies_are_those_of_the_reference_pass(cache):
    result = tiny("mcr", cache)
    model, data = load_trained_model(result)
    frame = robustness(result, seed=5).set_index(["modality", "perturbation"])["acc"]
    n = len(data.splits["test"]["label"])
    for modality in model.modalities:
        for kind in PERTURBATIONS:
            reference = perturbed_predictions(model, data, "test", modality, kind, seed=5, batch_size=256)
            acc = (reference["fused"].argmax(-1) == reference["label"]).float().mean().item()
            # at most one near-tied sample may fall either way between the two paths
            assert abs(frame[(modality, kind)] - acc) <= 1 / n + 1e-9


def test_robustness_of_a_run(cache):
    result = tiny("joint", cache)
    frame = robustness(result, seed=0)
    assert len(frame) == 1 + 2 * len(PERTURBATIONS)
    clean = frame[frame.perturbation == "clean"]
    assert clean["acc"].item() == pytest.approx(result.metrics["test_acc_fused"])
    assert set(frame["modality"]) == {"", "x1", "x2"} and set(frame["missing"]) == {0, 1, 2}
    assert frame.equals(robustness(result, seed=0))
    assert not frame.equals(robustness(result, seed=1))
    zero = frame[frame.perturbation == "zero"]
    assert zero["acc"].equals(robustness(result, seed=1).query("perturbation == 'zero'")["acc"])  # no randomness


def test_a_model_of_other_data_is_caught(cache):
    result = tiny("joint", cache)
    other = copy.deepcopy(TINY_RUN["data"])
    other["params"]["data_seed"] = 1
    with pytest.raises(RuntimeError, match="does not reproduce"):
        robustness(result, data=load_dataset(other["name"], other["params"]))


def test_robustness_frame_skips_unimodal_and_ensemble_runs(cache):
    names = ["unimodal-x1", "ensemble", "joint"]
    results = [run({**copy.deepcopy(TINY_RUN), "method": {"name": "unimodal", "params": {"modality": "x1"}}}, cache),
               tiny("ensemble", cache), tiny("joint", cache)]
    runs = pd.DataFrame({"ratio": [1.0] * 3, "seed": [0] * 3, "method": names})
    frame = robustness_frame(runs, results, "ratio", ["zero"])
    assert set(frame["method"]) == {"joint"} and len(frame) == 3
    clean = frame[frame.perturbation == "clean"]["acc"].item()
    assert (frame["drop"] == clean - frame["acc"]).all()


def test_dominant_modality_is_the_better_unimodal_model():
    runs = pd.DataFrame({"dataset": ["A"] * 4 + ["B"] * 4, "seed": [0, 0, 1, 1] * 2,
                         "method": ["unimodal-audio", "unimodal-visual"] * 4,
                         "test_acc": [0.4, 0.7, 0.5, 0.6, 0.9, 0.3, 0.8, 0.4]})
    assert dominant_modality(runs, "dataset").to_dict() == {"A": 2, "B": 1}


def test_drop_figure_draws_the_mean_drop_of_each_method_and_modality():
    import matplotlib.pyplot as plt

    from mcrlib.analysis.robustness import plot_drops
    rows = [{"cell": "A", "seed": s, "method": m, "missing": p, "modality": name, "perturbation": k, "drop": d}
            for s, scale in ((0, 1.0), (1, 3.0)) for m, base in (("joint", 0.1), ("mcr", 0.05))
            for p, name in ((1, "audio"), (2, "visual")) for k in ("zero", "permute")
            for d in [base * p * scale]]
    frame = pd.DataFrame(rows)
    fig = plot_drops(frame, "cell", ["joint", "absent", "mcr"], pd.Series({"A": 2}))
    assert len(fig.axes) == 2
    heights = [round(b.get_height(), 6) for b in fig.axes[0].patches]
    # audio bars (joint, mcr: a method with no runs gets no slot) then visual bars;
    # the mean over seeds of base * position * {1, 3}, in points
    assert heights == [20.0, 10.0, 40.0, 20.0]
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels == ["audio missing", "visual missing (dominant)"]
    plt.close(fig)
