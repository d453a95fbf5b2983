"""PMR: prototypes are eval-mode class means (with the code's momentum schedule), only the slower
modality gets the prototype cross-entropy, and training through run() is deterministic."""
import math

import pytest
import torch
from torch import nn

from mcrlib.config import ConfigError, ModelConfig, TrainConfig
from mcrlib.data import TensorSplits
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.pmr import PMR
from mcrlib.models import MultimodalModel, build_model
from mcrlib.runs import run
from mcrlib.train import Trainer
from tests.conftest import TINY_RUN, resume_after_kill


class GainEncoder(nn.Module):
    """z = gain * dropout(x): identity at gain 1 in eval mode; dropout shows a train-mode pass."""

    def __init__(self, dim=2):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.dropout = nn.Dropout(0.5)
        self.out_dim = dim

    def forward(self, x):
        return self.gain * self.dropout(x)


def gain_model(n_classes=2):
    torch.manual_seed(0)
    return MultimodalModel(encoders={"x1": GainEncoder(), "x2": GainEncoder()}, n_classes=n_classes)


def pmr(model, **params):
    return METHODS["pmr"](method_params("pmr", params), model=model)


# Eight training rows, labels 0,1,0,1,...: class 0 is rows 0,2,4,6 and class 1 rows 1,3,5,7.
X1 = torch.tensor([[0., 0.], [1., 2.], [2., 0.], [3., 2.], [4., 0.], [5., 2.], [6., 0.], [7., 2.]])
X2 = torch.tensor([[1., 1.], [0., 0.], [1., 3.], [0., 0.], [1., 5.], [0., 4.], [1., 7.], [0., 0.]])
Y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])


def tiny_splits(x1=X1, x2=X2, y=Y):
    split = {"x1": x1, "x2": x2, "label": y}
    return TensorSplits(splits={"train": split, "val": split, "test": split}, modalities=("x1", "x2"), n_classes=2)


def start(method, model, data, epoch, batch_size=4, seed=0):
    """on_epoch_start with the EpochState a Trainer of that batch size and seed gives it."""
    trainer = Trainer(model, method, TrainConfig(batch_size=batch_size, device="cpu", progress=False), seed=seed)
    method.on_epoch_start(trainer.epoch_state(data, epoch))


def test_class_attributes():
    assert PMR.trains and PMR.rank == 80 and PMR.display == "PMR"


def test_prototypes_are_eval_mode_class_means_with_the_code_momentum_schedule():
    model, data = gain_model(), tiny_splits()
    method = pmr(model, prototype_fraction=1.0, momentum=0.25)
    model.train()
    start(method, model, data, 0)
    assert model.training  # train mode is restored
    # Hand means: x1 class 0 = mean([0,0],[2,0],[4,0],[6,0]) = [3,0]; class 1 = [4,2].
    torch.testing.assert_close(method.prototypes("x1"), torch.tensor([[3., 0.], [4., 2.]]))
    # x2 class 0 = mean([1,1],[1,3],[1,5],[1,7]) = [1,4]; class 1 = mean([0,0],[0,0],[0,4],[0,0]) = [0,1].
    torch.testing.assert_close(method.prototypes("x2"), torch.tensor([[1., 4.], [0., 1.]]))
    with torch.no_grad():
        model.encoders["x1"].gain.fill_(2.0)
    start(method, model, data, 1)  # epoch 1: replaced, not blended (code)
    torch.testing.assert_close(method.prototypes("x1"), torch.tensor([[6., 0.], [8., 4.]]))
    with torch.no_grad():
        model.encoders["x1"].gain.fill_(3.0)
    start(method, model, data, 2)  # 0.75 * 3 * mean + 0.25 * 2 * mean
    torch.testing.assert_close(method.prototypes("x1"), 2.75 * torch.tensor([[3., 0.], [4., 2.]]))
    assert {"prototypes_0", "prototypes_1"} <= set(method.state_dict())  # checkpointed


def test_prototype_fraction_takes_the_first_batches_and_extends_until_every_class_is_seen():
    model, data = gain_model(), tiny_splits()
    method = pmr(model, prototype_fraction=0.5)  # 2 of 4 batches of 2
    start(method, model, data, 0, batch_size=2, seed=0)
    first = list(data.loader("train", 2, epoch=0, seed=0))[:2]
    assert [b["x1"].tolist() for b in first] == [[[4., 0.], [0., 0.]], [[7., 2.], [3., 2.]]]
    # class 0: mean([4,0],[0,0]) = [2,0]; class 1: mean([7,2],[3,2]) = [5,2] (not all-row [3,0],[4,2])
    torch.testing.assert_close(method.prototypes("x1"), torch.tensor([[2., 0.], [5., 2.]]))
    # Class 1 only in the last row: one batch of four (fraction 0.1) has no class 1, so the pass
    # goes on; its prototype is that row, not NaN (the code divides by zero).
    y = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1])
    data = tiny_splits(y=y)
    assert [b["label"].tolist() for b in data.loader("train", 4, epoch=0, seed=2)] == [[0, 0, 0, 0], [1, 0, 0, 0]]
    method = pmr(model)
    start(method, model, data, 0, seed=2)
    torch.testing.assert_close(method.prototypes("x1"), torch.tensor([[3., 6. / 7.], [7., 2.]]))


def test_the_epoch_is_counted_once_and_leaves_the_training_rng_as_it_was():
    """The fraction needs the epoch's batch count, which the EpochState does not carry: it is
    counted once, by a pass over the loader under a forked RNG. Opening a DataLoader draws from
    torch's global generator, so an unforked count would shift every later draw (dropout,
    perturbations) against the old code, which read len(loader) and iterated once per epoch."""
    model, data = gain_model(), tiny_splits()
    method = pmr(model, prototype_fraction=0.5)
    trainer = Trainer(model, method, TrainConfig(batch_size=2, device="cpu", progress=False))
    opened = []

    def state(epoch):
        s = trainer.epoch_state(data, epoch)
        loader = s.loader
        s.loader = lambda split: opened.append((epoch, split)) or loader(split)
        return s
    torch.manual_seed(7)
    method.on_epoch_start(state(0))
    method.on_epoch_start(state(1))
    after = torch.rand(3)
    torch.manual_seed(7)
    for epoch in (0, 1):  # what the prototype passes alone draw: one DataLoader opened per epoch
        next(iter(data.loader("train", 2, epoch, 0)))
    assert torch.equal(after, torch.rand(3))
    assert opened == [(0, "train"), (0, "train"), (1, "train")]  # counted at the first epoch only
    assert method.n_train_batches(state(2)) == 4  # 8 rows, batches of 2


def test_only_the_slower_modality_gets_the_prototype_cross_entropy():
    model = gain_model()
    model.eval()  # no dropout: the features are the inputs
    method = pmr(model, alpha=2.0)
    batch = {"x1": torch.tensor([[0., 0.], [3., 4.]]), "x2": torch.tensor([[0., 1.], [0., 0.]]),
             "label": torch.tensor([0, 1])}
    # x1's samples sit on their own prototypes (distance 5 to the other): p_proto,1(y) = 1/(1+e^-5).
    # x2's samples are 1 from their class and 0 from the other: p_proto,2(y) = 1/(1+e).
    sharp, blurred = torch.tensor([[0., 0.], [3., 4.]]), torch.tensor([[0., 0.], [0., 1.]])
    for first, second, slow in ((sharp, blurred, "x2"), (blurred, sharp, "x1")):
        method.prototypes("x1").copy_(first)
        method.prototypes("x2").copy_(second)
        if slow == "x1":
            batch = {**batch, "x1": batch["x2"], "x2": batch["x1"]}
        terms = method.loss(model, batch, model(batch))
        # alpha * CE([-1, 0], 0) = 2 * log(1 + e); the fast modality adds nothing.
        assert terms["prototype"].item() == pytest.approx(2 * math.log(1 + math.e), rel=1e-6)
        fast = "x1" if slow == "x2" else "x2"
        g_slow, g_fast = torch.autograd.grad(
            terms["prototype"], [model.encoders[slow].gain, model.encoders[fast].gain], allow_unused=True)
        assert g_slow is not None and g_slow.abs() > 0.1
        assert g_fast is None or g_fast == 0
        rho = (1 / (1 + math.exp(-5))) / (1 / (1 + math.e))
        assert method.diagnostics["pmr_rho"] == pytest.approx(rho if slow == "x2" else 1 / rho, rel=1e-5)
        assert method.diagnostics[f"pmr_slow[{slow}]"] == 1.0 and method.diagnostics[f"pmr_slow[{fast}]"] == 0.0
    # Equal scores (rho = 1): no prototype term; outside the epoch window: none either.
    method.prototypes("x1").copy_(sharp)
    method.prototypes("x2").copy_(sharp)
    same = {"x1": sharp, "x2": sharp, "label": torch.tensor([0, 1])}
    assert method.loss(model, same, model(same))["prototype"].item() == 0
    windowed = pmr(model, start_epoch=1, end_epoch=3)
    windowed.prototypes("x1").copy_(sharp)
    windowed.prototypes("x2").copy_(blurred)
    assert windowed.loss(model, batch, model(batch))["prototype"].item() == 0  # epoch 0 < start
    windowed.epoch = 3  # end_epoch is inclusive, as the code's modulation_ends
    assert windowed.loss(model, batch, model(batch))["prototype"].item() > 0


def test_param_checks_and_classification_only():
    with pytest.raises(ConfigError, match="momentum"):
        method_params("pmr", {"momentum": 1.0})
    with pytest.raises(ConfigError, match="end_epoch"):
        method_params("pmr", {"start_epoch": 5, "end_epoch": 4})
    with pytest.raises(ConfigError, match="prototype_fraction"):
        method_params("pmr", {"prototype_fraction": 0})
    with pytest.raises(ConfigError, match="classification"):
        METHODS["pmr"](method_params("pmr", {}), model=gain_model(n_classes=1), task="regression")


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "pmr", "params": {"alpha": 1.0}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert all(math.isfinite(h["train_loss_total"]) for h in a.history)
    assert any(h["train_loss_prototype"] > 0 for h in a.history)
    assert all(h["train_pmr_slow[x1]"] + h["train_pmr_slow[x2]"] == pytest.approx(1) for h in a.history)




def test_resume_restores_the_prototypes(tiny_data, tmp_path):
    """Killed after epoch 2 and resumed, the run blends with the checkpointed prototypes."""
    def trainer(checkpoint, callbacks=()):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)
        method = pmr(model, momentum=0.5)
        cfg = TrainConfig(max_epochs=4, batch_size=32, patience=4, progress=False)
        trainer = Trainer(model, method, cfg, seed=3, checkpoint_path=checkpoint)
        for callback in callbacks:
            trainer.add_callback("on_epoch_end", callback)
        return trainer

    _, reference, _, resumed = resume_after_kill(trainer, tiny_data, tmp_path, kill_at=2)
    assert resumed.history == reference.history
