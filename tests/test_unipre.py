"""Uni-Pre: encoders from the cached unimodal runs; frozen stays frozen (no gradient, eval mode
every epoch), fine-tuned moves at the lower learning rate."""
import torch

from mcrlib.config import RunConfig, from_dict
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.base import EpochState
from mcrlib.models import MLPEncoder, MultimodalModel
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


def test_class_attributes_and_required_runs():
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "unipre_frozen"}})
    for name, rank, display in (("unipre_frozen", 30, "Uni-Pre (frozen)"),
                                ("unipre_finetuned", 31, "Uni-Pre (fine-tuned)")):
        cls = METHODS[name]
        assert cls.trains and cls.rank == rank and cls.display == display
        required = cls.required_runs(config, ("x1", "x2"))
        assert list(required) == ["encoder:x1", "encoder:x2"]
        assert [c.method.params for c in required.values()] == [{"modality": "x1"}, {"modality": "x2"}]
        assert all(c.train == config.train and c.model == config.model and c.seed == config.seed
                   for c in required.values())


def test_frozen_puts_the_encoders_in_eval_mode_at_each_epoch_start():
    """The trainer calls model.train() before on_epoch_start: the frozen encoders go back to eval
    mode (no dropout, batch-norm statistics kept), the fusion head stays in train mode."""
    torch.manual_seed(0)
    model = MultimodalModel(encoders={m: MLPEncoder(in_dim=4, hidden_dim=8, latent_dim=6, layers=1, dropout=0.5)
                                      for m in ("x1", "x2")}, n_classes=3)
    method = METHODS["unipre_frozen"](method_params("unipre_frozen", {}), model=model)
    assert not any(p.requires_grad for p in model.encoders.parameters())
    assert all(p.requires_grad for p in model.fusion.parameters())
    model.train()
    method.on_epoch_start(EpochState(epoch=3, model=model, param_groups=[], device=torch.device("cpu"),
                                     batch_size=8, seed=0, loader=lambda split: iter(())))
    assert method.epoch == 3
    assert not any(m.training for m in model.encoders.modules())
    assert model.fusion.training and model.unimodal_heads.training
    batch = {m: torch.randn(8, 4) for m in ("x1", "x2")}
    torch.testing.assert_close(model(batch).latents["x1"], model(batch).latents["x1"], rtol=0, atol=0)
