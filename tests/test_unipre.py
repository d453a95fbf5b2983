"""Uni-Pre: encoders from the cached unimodal runs; frozen stays frozen, finetuned moves slowly."""
import torch

from mcrlib.runs import run
from tests.conftest import TINY_RUN



def encoder_state(state, modality):
    prefix = f"encoders.{modality}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def unimodal_states(cache):
    return {m: encoder_state(run({**TINY_RUN, "method": {"name": "unimodal", "params": {"modality": m}}},
                                 cache).model_state(), m) for m in ("x1", "x2")}


def test_frozen_keeps_the_unimodal_encoders(tmp_path):
    result = run({**TINY_RUN, "method": {"name": "unipre_frozen"}}, tmp_path)
    assert len(list(tmp_path.iterdir())) == 3  # the two unimodal runs, then this one
    pretrained, state = unimodal_states(tmp_path), result.model_state()
    for m in ("x1", "x2"):
        for key, value in pretrained[m].items():
            torch.testing.assert_close(encoder_state(state, m)[key], value, rtol=0, atol=0)
    fresh = run({**TINY_RUN, "method": {"name": "joint"}}, tmp_path).model_state()
    assert not torch.equal(state["fusion.branches.0.weight"], fresh["fusion.branches.0.weight"])


def test_finetuned_moves_the_encoders_at_the_lower_learning_rate(tmp_path):
    slow = run({**TINY_RUN, "method": {"name": "unipre_finetuned"}}, tmp_path).model_state()
    fast = run({**TINY_RUN, "method": {"name": "unipre_finetuned", "params": {"encoder_lr_scale": 1.0}}},
               tmp_path).model_state()
    pretrained = unimodal_states(tmp_path)
    for m in ("x1", "x2"):
        start = torch.cat([v.reshape(-1) for v in pretrained[m].values()])
        moved = lambda s: (torch.cat([v.reshape(-1) for v in encoder_state(s, m).values()]) - start).abs().max()
        # Adam moves each weight by about lr per step: a tenth of the lr, about a tenth of the change
        assert 0 < moved(slow) < 0.3 * moved(fast)


def test_mcr_can_start_from_the_unimodal_encoders(tmp_path):
    from mcrlib.config import RunConfig, from_dict
    from mcrlib.data import load_dataset
    from mcrlib.methods import METHODS
    from mcrlib.models import build_model
    from mcrlib.runs import _load_pretrained_encoders
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "mcr", "params": {"init_from_unimodal": True}}})
    members = METHODS["mcr"].pretrained_encoders(config, ("x1", "x2"))
    assert [c.method.params for c in members.values()] == [{"modality": "x1"}, {"modality": "x2"}]
    assert all(c.train == config.train and c.seed == config.seed for c in members.values())
    model = build_model(config.model, load_dataset(config.data.name, config.data.params))
    _load_pretrained_encoders(model, members, tmp_path)
    for m, state in unimodal_states(tmp_path).items():
        for key, value in state.items():
            torch.testing.assert_close(model.encoders[m].state_dict()[key], value, rtol=0, atol=0)
    plain = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "mcr"}})
    assert METHODS["mcr"].pretrained_encoders(plain, ("x1", "x2")) == {}
