"""ReconBoost: the stage schedule, the boosting loss's sample weights, the reconcilement term, a
learn stage that moves only its learner, and a run end to end."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcrlib.config import ConfigError, RunConfig, TrainConfig, from_dict
from mcrlib.methods import method_params
from mcrlib.methods.base import EpochState, encoder_runs
from mcrlib.methods.reconboost import ReconBoost, boosting_loss, reconcile_loss, stage
from mcrlib.models import MLPEncoder, MultimodalModel, UnimodalSumFusion
from mcrlib.run_key import check_run
from mcrlib.runs import run
from mcrlib.train import Trainer
from tests.conftest import TINY_RUN, model_and_batch, resume_after_kill


class BNEncoder(nn.Sequential):
    """Linear -> BatchNorm -> ReLU -> Linear: running statistics to watch."""

    def __init__(self, in_dim, out_dim=6):
        super().__init__(nn.Linear(in_dim, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, out_dim))
        self.out_dim = out_dim


def ensemble_model(names=("x1", "x2"), *, in_dim=4, n_classes=5, rate=1.0, bn=False, seed=0):
    torch.manual_seed(seed)
    encoders = {m: BNEncoder(in_dim) if bn else MLPEncoder(in_dim=in_dim, hidden_dim=8, latent_dim=6, layers=1)
                for m in names}
    return MultimodalModel(encoders=encoders, n_classes=n_classes, fusion=UnimodalSumFusion(rate=rate))


def random_batch(names=("x1", "x2"), *, in_dim=4, n_classes=5, size=16):
    return {**{m: torch.randn(size, in_dim) for m in names}, "label": torch.randint(n_classes, (size,))}


def reconboost(model, task="classification", **params):
    return ReconBoost(method_params("reconboost", params), model=model, task=task)


def start(method, model, epoch, groups=None):
    """method.on_epoch_start as the trainer calls it; returns the param groups it set."""
    groups = method.param_groups(model) if groups is None else groups
    model.train()
    method.on_epoch_start(EpochState(epoch=epoch, model=model, param_groups=groups, device=torch.device("cpu"),
                                     batch_size=16, seed=0, loader=None))
    return groups


def test_stage_schedule():
    names = ("a", "v")
    assert [stage(e, names, 2, 1) for e in range(8)] == [
        ("learn", "a"), ("learn", "a"), ("correct", None),
        ("learn", "v"), ("learn", "v"), ("correct", None),
        ("learn", "a"), ("learn", "a")]
    # the official 4 / 4: a stage is 8 epochs, the round of two modalities 16
    assert [stage(e, names, 4, 4)[1] for e in (0, 3, 4, 7, 8, 11, 12, 16)] == ["a", "a", None, None, "v", "v", None, "a"]
    # no correction epochs: pure alternation; three modalities in the model's order
    assert [stage(e, names, 1, 0) for e in range(3)] == [("learn", "a"), ("learn", "v"), ("learn", "a")]
    assert [stage(e, ("t", "v", "a"), 1, 1)[1] for e in range(7)] == ["t", None, "v", None, "a", None, "t"]


def test_boosting_weights_and_loss_by_hand():
    # Sample 0: logits 0 -> p(y) = 1/3; others 0 -> p_join(y) = 1/3; weight 5 - 1/3.
    # Sample 1: logits (ln 2, 0, 0) -> p(y=0) = 1/2; others (ln 3, 0, 0) -> p_join = 3/5; weight 4.4.
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0]], requires_grad=True)
    others = torch.tensor([[0.0, 0.0, 0.0], [math.log(3), 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0])
    loss, weights = boosting_loss(logits, others, y, w1=5.0, w2=1.0)
    assert weights.tolist() == pytest.approx([14 / 3, 4.4])
    # mean_i w_i (-log p_i(y_i)) / C, C = 3
    assert loss.item() == pytest.approx((14 / 3 * math.log(3) + 4.4 * math.log(2)) / 2 / 3)
    assert loss.item() == pytest.approx(1.3627841, abs=1e-6)
    # the reference's form: mean over classes of [-w1 t log p + w2 t p_join log p], then over the batch
    t = F.one_hot(y, 3).float()
    reference = (-5.0 * (t * logits.log_softmax(1)).mean(-1)
                 + 1.0 * (t * others.softmax(1) * logits.log_softmax(1)).mean(-1)).mean()
    assert loss.item() == pytest.approx(reference.item())
    loss.backward()
    assert others.grad is None and logits.grad.abs().sum() > 0   # p_join carries no gradient
    # w1 = w2: a sample the others solve for certain (p_join(y) = 1) weighs nothing
    _, weights = boosting_loss(logits, torch.tensor([[50.0, 0, 0], [0, 50.0, 0]]), y, w1=1.0, w2=1.0)
    assert weights.tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_reconcile_term_by_hand_intended_has_gradient_faithful_none():
    # softmax(0, 0) = (1/2, 1/2), softmax(ln 3, 0) = (3/4, 1/4): MSE = 0.25^2 = 0.0625, x alpha 0.5
    f = torch.zeros(1, 2, requires_grad=True)
    prev = torch.tensor([[math.log(3), 0.0]], requires_grad=True)
    term = reconcile_loss(f, prev, alpha=0.5, mode="intended")
    assert term.item() == pytest.approx(0.03125)
    term.backward()
    # dL/dp = alpha (p - q) = (-1/8, 1/8); through the softmax Jacobian [[1/4, -1/4], [-1/4, 1/4]]
    torch.testing.assert_close(f.grad, torch.tensor([[-0.0625, 0.0625]]))
    assert prev.grad is None   # f_prev is a frozen learner's output
    faithful = reconcile_loss(f, prev, alpha=0.5, mode="faithful")
    assert faithful.item() == pytest.approx(0.03125) and not faithful.requires_grad


def test_loss_terms_follow_the_stage():
    names = ("x1", "x2", "x3")
    model, batch = ensemble_model(names, rate=2.0), random_batch(names)
    method = reconboost(model, epochs_per_stage=1, correct_epochs=1, boost_rate=2.0, alpha=0.5)
    y = batch["label"]

    def terms_at(epoch):
        start(method, model, epoch)
        output = model(batch)
        return output, method.loss(model, batch, output)

    # epoch 0: learn x1 against p_join = softmax(2 (u_x2 + u_x3)); no previous learner yet
    output, terms = terms_at(0)
    u = output.unimodal_logits
    expected, _ = boosting_loss(u["x1"], 2.0 * (u["x2"] + u["x3"]), y, w1=5.0, w2=1.0)
    assert terms["boost"].item() == pytest.approx(expected.item())
    assert terms["reconcile"].item() == 0 and terms["task"].item() == 0
    # epoch 1: global rectification, CE of the ensemble = the model's fused logits
    output, terms = terms_at(1)
    u = output.unimodal_logits
    torch.testing.assert_close(output.logits, 2.0 * (u["x1"] + u["x2"] + u["x3"]))
    assert terms["task"].item() == pytest.approx(F.cross_entropy(output.logits, y).item())
    assert terms["boost"].item() == 0 and terms["reconcile"].item() == 0
    # epoch 4: stage 2 learns x3; the previous stage's learner is x2
    output, terms = terms_at(4)
    u = output.unimodal_logits
    expected, _ = boosting_loss(u["x3"], 2.0 * (u["x1"] + u["x2"]), y, w1=5.0, w2=1.0)
    assert terms["boost"].item() == pytest.approx(expected.item())
    reconcile = 0.5 * F.mse_loss(u["x3"].softmax(-1), u["x2"].softmax(-1))
    assert terms["reconcile"].item() == pytest.approx(reconcile.item()) and reconcile.item() > 0
    assert method.diagnostics == {"learner": 2.0}


@pytest.mark.parametrize("mode", ["intended", "faithful"])
def test_reconcile_gradient_reaches_the_learner_only_when_intended(mode):
    model, batch = ensemble_model(), random_batch()
    method = reconboost(model, epochs_per_stage=1, correct_epochs=1, reconcile=mode)
    start(method, model, 2)   # learn x2, previous x1
    terms = method.loss(model, batch, model(batch))
    head = model.unimodal_heads["x2"].weight
    if mode == "faithful":
        assert terms["reconcile"].item() > 0 and not terms["reconcile"].requires_grad
        return
    grad, = torch.autograd.grad(terms["reconcile"], head)
    assert grad.abs().sum() > 0
    frozen = [*model.encoders["x1"].parameters(), *model.unimodal_heads["x1"].parameters()]
    assert all(g is None for g in torch.autograd.grad(terms["reconcile"], frozen, allow_unused=True))


def test_param_groups_and_lr_scales_per_stage():
    model = ensemble_model()
    method = reconboost(model, epochs_per_stage=1, correct_epochs=1)
    groups = method.param_groups(model)   # UnimodalSumFusion has no parameters: no shared group
    assert [g["modality"] for g in groups] == ["x1", "x2"]
    for m, group in zip(("x1", "x2"), groups):
        expected = {id(p) for p in [*model.encoders[m].parameters(), *model.unimodal_heads[m].parameters()]}
        assert {id(p) for p in group["params"]} == expected
    for epoch, scales in ((0, [1.0, 0.0]), (1, [1.0, 1.0]), (2, [0.0, 1.0]), (3, [1.0, 1.0])):
        start(method, model, epoch, groups)
        assert [g["lr_scale"] for g in groups] == scales, epoch
    # a head with parameters gets a shared group first, frozen in every learn stage
    model.fusion.extra = nn.Parameter(torch.zeros(1))
    groups = method.param_groups(model)
    assert groups[0]["modality"] is None and groups[0]["params"] == [model.fusion.extra]
    assert [g["lr_scale"] for g in start(method, model, 0, groups)] == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_a_learn_step_moves_only_its_learner(tiny_data, optimizer):
    """Through Trainer.step: in x2's learn epoch only encoder x2 and head x2 change (weights and
    batch-norm statistics, with weight decay on); x1 keeps its weights and its running statistics.
    A correction epoch moves both."""
    def changed_after_step(epoch):
        model = ensemble_model(tiny_data.modalities, in_dim=32, n_classes=tiny_data.n_classes, bn=True)
        method = reconboost(model, epochs_per_stage=1, correct_epochs=1)
        trainer = Trainer(model, method, TrainConfig(device="cpu", optimizer=optimizer, lr=0.05,
                                                     weight_decay=0.1, batch_size=32, progress=False))
        trainer.schedule = lambda step: 1.0
        model.train()
        state = trainer.epoch_state(tiny_data, epoch)
        method.on_epoch_start(state)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer.step(next(iter(state.loader("train"))), 0)
        return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}, set(before)

    changed, keys = changed_after_step(2)   # learn x2 (with the reconcilement against x1)
    learner = {k for k in keys if k.startswith(("encoders.x2.", "unimodal_heads.x2."))}
    assert changed == learner and "encoders.x2.1.running_mean" in changed
    changed, keys = changed_after_step(1)   # correction: every learner
    assert changed == {k for k in keys if k.startswith(("encoders.", "unimodal_heads."))}


def test_resumed_run_equals_uninterrupted(tiny_data, tmp_path):
    """Killed in epoch 1, resumed there, inside x1's learn stage: it freezes and trains as the
    uninterrupted run (the stage follows from the epoch, not from the epochs this process ran)."""
    def trainer(checkpoint, callbacks=()):
        model = ensemble_model(tiny_data.modalities, in_dim=32, n_classes=tiny_data.n_classes, bn=True)
        method = reconboost(model, epochs_per_stage=2, correct_epochs=1)
        cfg = TrainConfig(max_epochs=5, batch_size=32, patience=5, progress=False, device="cpu")
        made = Trainer(model, method, cfg, seed=1, checkpoint_path=checkpoint)
        for fn in callbacks:
            made.add_callback("on_epoch_end", fn)
        return made

    reference, ref, resumed, again = resume_after_kill(trainer, tiny_data, tmp_path, kill_at=1)
    assert again.history == ref.history
    assert [r["train_learner"] for r in ref.history] == [0.0, 0.0, -1.0, 1.0, 1.0]
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_rejects_what_it_cannot_run():
    with pytest.raises(ConfigError, match="two or more"):
        reconboost(ensemble_model(("x1",)))
    with pytest.raises(ConfigError, match="classification"):
        reconboost(ensemble_model(n_classes=1), task="regression")
    with pytest.raises(ConfigError, match="unimodal_sum"):
        reconboost(model_and_batch()[0])   # a late linear fusion head
    with pytest.raises(ConfigError, match="boost_rate=2.0"):
        reconboost(ensemble_model(rate=1.0), boost_rate=2.0)
    for params, key in (({"w1": 1.0, "w2": 2.0}, "w2"), ({"epochs_per_stage": 0}, "epochs_per_stage"),
                        ({"correct_epochs": -1}, "correct_epochs"), ({"reconcile": "both"}, "reconcile"),
                        ({"boost_rate": 0}, "boost_rate")):
        with pytest.raises(ConfigError, match=key):
            method_params("reconboost", params)


def test_unimodal_initialisation_reads_the_shared_unimodal_runs():
    config = check_run(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "reconboost",
                                                                    "params": {"init_from_unimodal": True}}}))
    assert config.model.fusion == "unimodal_sum"
    plain = check_run(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}}))
    modalities = ("x1", "x2")
    assert ReconBoost.required_runs(config, modalities) == encoder_runs(plain, modalities)
    assert ReconBoost.required_runs(check_run(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "reconboost"}})),
                                    modalities) == {}


def test_runs_end_to_end_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 4},
              "method": {"name": "reconboost", "params": {"epochs_per_stage": 1, "correct_epochs": 1}}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 4 and a.history == b.history
    assert a.config["model"]["fusion"] == "unimodal_sum"
    # learn x1, correct, learn x2 (reconciled with x1), correct
    assert [r["train_learner"] for r in a.history] == [0.0, -1.0, 1.0, -1.0]
    boost, task, reconcile = ([r[f"train_loss_{k}"] for r in a.history] for k in ("boost", "task", "reconcile"))
    assert boost[0] > 0 and boost[2] > 0 and boost[1] == boost[3] == 0
    assert task[1] > 0 and task[3] > 0 and task[0] == task[2] == 0
    assert reconcile[0] == 0 and reconcile[2] > 0
    test = a.predictions["test"]
    torch.testing.assert_close(test["fused"], test["x1"] + test["x2"])   # the ensemble, rate 1
    assert torch.equal(test["fused"], b.predictions["test"]["fused"])
