"""One way to build a run (mcrlib.build): every former hand assembly (the run layer, the robustness
study's reload, the cost benchmark, the GPU check, the profiler) gets the model and method the
old hand-written code built, weight for weight; and the fusion heads are plug-ins that the model
and the methods reach only through their declared interface."""
import copy

import pytest
import torch

from benchmarks import cost, profile_run
from mcrlib.build import build, resolve
from mcrlib.config import ConfigError, MethodConfig, ModelConfig, RunConfig, from_dict, to_dict
from mcrlib.methods import METHODS, method_params
from mcrlib.models import FUSION_HEADS, FusionHead, build_fusion, build_model, fusion_params
from mcrlib.run_key import run_key
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch

# one method per fusion head, and one with pre-trained encoders
CASES = [("joint", {}), ("mmcosine", {"scale": 4.0}), ("arm", {}),
         ("reconboost", {"boost_rate": 2.0}), ("mcr", {"copies": 4})]


def tiny_config(method, params, **overrides):
    return from_dict(RunConfig, {**copy.deepcopy(TINY_RUN), "method": {"name": method, "params": params},
                                 "seed": 3, **overrides})


def by_hand(config: RunConfig, data, modalities=None, seed=None):
    """What runs.py, the cost benchmark and the robustness study wrote out by hand before."""
    params = method_params(config.method.name, config.method.params)
    cls = METHODS[config.method.name]
    model_cfg = from_dict(ModelConfig, {**to_dict(config.model), **cls.model_overrides(params)}, "model")
    torch.manual_seed(config.seed if seed is None else seed)
    model = build_model(model_cfg, data, modalities or cls.modalities(params, data.modalities))
    return model, cls(params, model=model, task=data.task)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method, params", CASES)
def test_build_gives_the_hand_assembled_model_and_method(method, params, tiny_data):
    config = tiny_config(method, params)
    resolved = resolve(config)
    model, built = build(resolved, tiny_data, {})
    old_model, old_method = by_hand(config, tiny_data)
    assert same_state(model.state_dict(), old_model.state_dict())
    assert same_state(built.state_dict(), old_method.state_dict())
    assert type(built) is type(old_method) and built.params == old_method.params
    assert resolved.key == run_key(config)
    assert resolved.params == method_params(method, params) and resolved.task == "classification"
    assert resolved.modalities == model.modalities
    # the same stream position afterwards: what the trainer draws next is unchanged
    by_hand(config, tiny_data)
    after_old = torch.rand(3)
    build(resolved, tiny_data, {})
    assert torch.equal(torch.rand(3), after_old)


def test_a_run_result_reloads_the_model_the_run_trained(tmp_path):
    result = run(tiny_config("mmcosine", {"scale": 4.0}, train={**TINY_RUN["train"], "max_epochs": 1, "warmup_epochs": 0}), tmp_path)
    model, data = result.load_model()
    assert not model.training and model.fusion.params.scale == 4.0
    assert same_state(model.state_dict(), result.model_state())
    with torch.no_grad():
        logits = model({m: data.splits["test"][m] for m in model.modalities}).logits
    torch.testing.assert_close(logits, result.predictions["test"]["fused"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method, params", [("joint", {}), ("mmcosine", {"scale": 4.0}), ("mcr", {"copies": 4})])
def test_the_cost_benchmark_builds_what_it_built_by_hand(method, params):
    shapes, n_classes = cost.SHAPES["mlp"]
    model_cfg = ModelConfig(hidden_dim=16, latent_dim=8)
    trainer = cost._trainer(method, params, model_cfg, shapes, n_classes, "cpu")
    data = cost.TensorSplits(splits={"train": {m: torch.zeros(1, *s) for m, s in shapes.items()}},
                             modalities=tuple(shapes), n_classes=n_classes)
    old_model, _ = by_hand(RunConfig(model=model_cfg, method=MethodConfig(name=method, params=params), seed=0),
                           data, modalities=data.modalities)
    assert same_state(trainer.model.state_dict(), old_model.state_dict())


def test_the_profiler_times_the_trainers_own_step(tmp_path):
    config = resolve(tiny_config("mcr", {"copies": 4})).config
    phases = profile_run.profile_epoch(config, epochs=1)
    assert {"data", "forward", "loss", "backward", "optimizer", "evaluate val", "checkpoint"} <= set(phases)
    assert all(phases[k] >= 0 for k in ("forward", "loss", "backward", "optimizer"))


def test_in_memory_data_have_no_run_key(tiny_data):
    resolved = resolve(tiny_config("joint", {}), data=tiny_data)
    assert resolved.modalities == tiny_data.modalities
    with pytest.raises(ValueError, match="no run key"):
        resolved.key


# ---- fusion heads as plug-ins ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FUSION_HEADS))
def test_every_head_is_a_plug_in_built_from_its_own_params(name):
    model, batch = model_and_batch(n_modalities=2, n_classes=5)   # latent width 6
    head = build_fusion(ModelConfig(fusion=name), [6, 6], 5)
    assert isinstance(head, FusionHead) and head.name == name and head.params == head.Params()
    model.fusion = head
    out = model(batch)
    assert out.logits.shape == (len(batch["label"]), 5)
    if head.additive:   # the shares are the modalities' parts of the logits
        torch.testing.assert_close(sum(out.contributions.values()), out.logits)
        assert len(head.branch_weights()) == 2
    else:
        assert out.contributions is None


def test_head_params_are_validated_with_the_key_path():
    assert fusion_params("cosine", {}) == FUSION_HEADS["cosine"].Params(scale=10.0)
    with pytest.raises(ConfigError, match=r"model.fusion_params.scale=0"):
        fusion_params("cosine", {"scale": 0})
    with pytest.raises(ConfigError, match=r"model.fusion_params.rate"):
        resolve({**TINY_RUN, "model": {**TINY_RUN["model"], "fusion": "unimodal_sum", "fusion_params": {"rate": -1}}})
    with pytest.raises(ConfigError, match=r"unknown key 'model.fusion_params.scle'"):
        resolve({**TINY_RUN, "model": {**TINY_RUN["model"], "fusion": "cosine", "fusion_params": {"scle": 2}}})
    with pytest.raises(ConfigError, match=r"model.fusion='bilinear' is invalid"):
        resolve({**TINY_RUN, "model": {**TINY_RUN["model"], "fusion": "bilinear"}})


def test_a_heads_defaults_and_its_explicit_defaults_are_one_run():
    plain = tiny_config("joint", {}, model={**TINY_RUN["model"], "fusion": "cosine"})
    explicit = tiny_config("joint", {}, model={**TINY_RUN["model"], "fusion": "cosine", "fusion_params": {"scale": 10}})
    assert run_key(plain) == run_key(explicit)


def test_the_method_interface_declares_the_diagnostics_the_trainer_logs():
    model, _ = model_and_batch()
    assert METHODS["joint"](method_params("joint", {}), model=model).diagnostics == {}
