"""D&R: cluster purity, the gap and tanh weight, the soft re-initialisation towards θ_init, the
schedule, each modality's own val features, θ_init through a resumed run, runs."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from mcrlib.config import ConfigError, ModelConfig, TrainConfig
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.base import EpochState
from mcrlib.methods.dnr import (DnR, cluster_purity, diagnoses_at, encoder_features, purity,
                                reinit_weight, soft_reinit)
from mcrlib.models import MultimodalModel, build_model
from mcrlib.runs import run
from mcrlib.train import Trainer
from tests.conftest import TINY_RUN, Interrupt


def dnr(model, task="classification", **params):
    return DnR(method_params("dnr", params), model=model, task=task)


class Identity(nn.Linear):
    """A d -> d linear encoder starting at the identity: its features are its inputs."""

    def __init__(self, d=2):
        super().__init__(d, d)
        self.out_dim = d
        with torch.no_grad():
            self.weight.copy_(torch.eye(d))
            self.bias.zero_()


def two_clusters(labels, members):
    """2-d points in two tight, far apart clusters (-5, -5) and (5, 5); `members[i]` says which."""
    jitter = torch.linspace(-0.1, 0.1, len(labels))[:, None]
    centre = torch.tensor([[-5.0, -5.0], [5.0, 5.0]])[torch.tensor(members)]
    return centre + jitter


def own_features_setup():
    """Modality a clusters by label on train and val (purity 1 and 1); modality b by label on
    train (1) but its val clusters hold labels [0, 0, 0, 1] and [1, 1, 1, 0] (purity 6/8)."""
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    batches = {"train": [{"a": two_clusters(y, y), "b": two_clusters(y, y), "label": torch.tensor(y)}],
               "val": [{"a": two_clusters(y, y), "b": two_clusters(y, [0, 0, 0, 1, 1, 1, 1, 0]),
                        "label": torch.tensor(y)}]}
    model = MultimodalModel(encoders={"a": Identity(), "b": Identity()}, n_classes=2)
    return model, batches


def epoch_state(model, batches, epoch, calls=None):
    def loader(split):
        if calls is not None:
            calls.append((epoch, split))
        return iter(batches[split])
    return EpochState(epoch=epoch, model=model, param_groups=[], device=torch.device("cpu"),
                      batch_size=8, seed=0, loader=loader, record={})


def test_purity_of_a_hand_made_clustering():
    # clusters 7: labels {0, 0, 1} -> 2; -1: {1, 1, 2} -> 2; 3: {2, 0} -> 1; purity 5/8
    assert purity([7, 7, 7, -1, -1, -1, 3, 3], [0, 0, 1, 1, 1, 2, 2, 0]) == 0.625
    # labels with gaps (4, 9) count the same as 0, 1
    assert purity([0, 0, 1, 1], [4, 9, 9, 9]) == 0.75
    assert purity([0, 1, 2, 3], [5, 5, 5, 5]) == 1.0 and purity([0, 0, 0, 0], [0, 1, 2, 3]) == 0.25


def test_gap_and_tanh_weight():
    gap, w = reinit_weight(0.9, 0.7, move_lambda=3.0)
    assert gap == pytest.approx(0.2) and w == pytest.approx(0.53704957)   # tanh(0.6)
    assert reinit_weight(0.6, 0.8, move_lambda=3.0) == pytest.approx((0.2, 0.53704957))   # |.|
    assert reinit_weight(0.5, 0.5, move_lambda=3.0) == (0.0, 0.0)
    assert reinit_weight(0.9, 0.7, move_lambda=0.5)[1] == pytest.approx(0.09966799)   # tanh(0.1)


def test_soft_reinit_of_a_tiny_encoder_is_exact():
    enc = nn.Linear(2, 1)
    with torch.no_grad():
        enc.weight.copy_(torch.tensor([[5.0, -2.0]]))
        enc.bias.copy_(torch.tensor([-1.0]))
    enc.out_dim = 1
    model = MultimodalModel(encoders={"a": enc}, n_classes=2)
    method = dnr(model)   # θ_init = (w [5, -2], b [-1])
    with torch.no_grad():   # training moves θ in place: θ_init must be a copy, not an alias
        enc.weight.copy_(torch.tensor([[1.0, 2.0]]))
        enc.bias.copy_(torch.tensor([3.0]))
    soft_reinit(enc.parameters(), method.theta_init["a"].tensors(), 0.25)
    # 0.25 * 5 + 0.75 * 1 = 2, 0.25 * -2 + 0.75 * 2 = 1, 0.25 * -1 + 0.75 * 3 = 2
    assert torch.equal(enc.weight, torch.tensor([[2.0, 1.0]])) and torch.equal(enc.bias, torch.tensor([2.0]))
    soft_reinit(enc.parameters(), method.theta_init["a"].tensors(), 1.0)   # w = 1: back to θ_init
    assert torch.equal(enc.weight, torch.tensor([[5.0, -2.0]])) and torch.equal(enc.bias, torch.tensor([-1.0]))


def test_each_modality_val_purity_comes_from_its_own_features():
    """The MCR port reads another modality's val features: here a's gap would be 0.25, not 0."""
    model, batches = own_features_setup()
    method = dnr(model, move_lambda=3.0, reinit_epoch=2)
    with torch.no_grad():   # "training": both encoders double (purity is invariant to it)
        for enc in model.encoders.values():
            enc.weight.mul_(2.0)
    model.train()
    method.on_epoch_end(epoch_state(model, batches, epoch=2))
    d = method.diagnostics
    w = math.tanh(3.0 * 0.25)
    assert (d["purity_train[a]"], d["purity_val[a]"], d["gap[a]"], d["w[a]"]) \
        == (1.0, 1.0, 0.0, 0.0)
    assert (d["purity_train[b]"], d["purity_val[b]"], d["gap[b]"]) == (1.0, 0.75, 0.25)
    assert d["w[b]"] == pytest.approx(w) and d["reinits"] == 1.0
    # a: w = 0, unchanged; b: w θ_init + (1 - w) θ = w I + (1 - w) 2 I = (2 - w) I
    assert torch.equal(model.encoders["a"].weight, 2 * torch.eye(2))
    torch.testing.assert_close(model.encoders["b"].weight, (2 - w) * torch.eye(2))
    assert torch.equal(model.encoders["b"].bias, torch.zeros(2))
    assert model.training   # eval for the features, train mode restored


def test_features_are_min_max_scaled_per_dimension():
    """Dimension 0 separates the labels on a tiny scale, dimension 1 is label-free on a huge one:
    only a per-dimension scaling lets KMeans see dimension 0 (unscaled or scaled as a whole, the
    split follows dimension 1 and the alternating labels give purity 1/2)."""
    y = np.arange(40) % 2
    features = np.stack([np.where(y == 1, 0.01, -0.01), np.linspace(-100, 100, 40)], axis=1)
    assert cluster_purity(features, y, k=2, random_state=0) == 1.0
    from sklearn.cluster import KMeans
    assert purity(KMeans(2, n_init=10, random_state=0).fit_predict(features / 100), y) == 0.5


def test_schedule_every_reinit_epoch_at_most_reinit_num_times():
    assert [e for e in range(12) if diagnoses_at(e, 2, 3)] == [2, 4, 6]
    assert [e for e in range(100) if diagnoses_at(e, 20, 3)] == [20, 40, 60]   # official: 90 epochs
    assert [e for e in range(5) if diagnoses_at(e, 1, 0)] == []
    model, batches = own_features_setup()
    method = dnr(model, reinit_epoch=3, reinit_num=2)
    calls = []
    for epoch in range(12):
        method.on_epoch_start(epoch_state(model, batches, epoch, calls))
        method.on_epoch_end(epoch_state(model, batches, epoch, calls))
    assert calls == [(3, "train"), (3, "val"), (6, "train"), (6, "val")]
    assert method.diagnostics["reinits"] == 2.0


def test_regression_clusters_the_label_sign_without_zeros():
    model, _ = own_features_setup()
    x = torch.arange(8.0).view(4, 2)
    batch = {"a": x, "b": x, "label": torch.tensor([-1.0, 0.0, 2.0, 0.5])}
    model.train()
    z, labels = encoder_features(model, [batch], "regression")
    assert labels.tolist() == [0, 1, 1] and np.array_equal(z["a"], x[[0, 2, 3]].numpy())
    assert model.training
    assert dnr(MultimodalModel(encoders={"a": Identity()}, n_classes=1), task="regression").n_clusters == 2


def test_params_are_validated_and_registered():
    for field, value in (("move_lambda", -1.0), ("reinit_epoch", 0), ("reinit_num", -1)):
        with pytest.raises(ConfigError, match=f"method.params.{field}"):
            method_params("dnr", {field: value})
    assert method_params("dnr", {}) == DnR.Params(move_lambda=3.0, reinit_epoch=20, reinit_num=3)
    assert METHODS["dnr"] is DnR and DnR.rank == 130 and DnR.display == "D&R" and DnR.trains


def test_resumed_run_reinitialises_towards_the_checkpointed_theta_init(tiny_data, tmp_path):
    """Killed after epoch 1 and resumed by a trainer whose model (so its fresh θ_init) comes from
    another seed: only θ_init restored from the checkpoint gives the uninterrupted run."""
    def trainer(checkpoint, model_seed=0, kill_at=None):
        torch.manual_seed(model_seed)
        model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)
        method = dnr(model, move_lambda=3.0, reinit_epoch=1, reinit_num=3)
        cfg = TrainConfig(max_epochs=5, batch_size=32, patience=5, progress=False)
        t = Trainer(model, method, cfg, seed=3, checkpoint_path=checkpoint)
        if kill_at is not None:
            def kill(_trainer, epoch, _record):
                if epoch == kill_at:
                    raise Interrupt
            t.add_callback("on_epoch_end", kill)
        return t

    reference = trainer(tmp_path / "reference.pt")
    fit = reference.fit(tiny_data)
    with pytest.raises(Interrupt):
        trainer(tmp_path / "killed.pt", kill_at=1).fit(tiny_data)
    resumed = trainer(tmp_path / "killed.pt", model_seed=1)
    assert not torch.equal(resumed.method.theta_init["x1"].p0, reference.method.theta_init["x1"].p0)
    again = resumed.fit(tiny_data)
    assert again.history == fit.history
    # the re-inits act (w > 0), so a wrong θ_init would show
    assert any(h.get(f"train_w[{m}]", 0) > 0.01 for h in fit.history for m in ("x1", "x2"))
    for key, value in reference.method.state_dict().items():
        assert torch.equal(resumed.method.state_dict()[key], value), key
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_run_is_deterministic_and_zero_lambda_is_joint_training(tmp_path):
    train = {**TINY_RUN["train"], "max_epochs": 4}
    config = {**TINY_RUN, "train": train,
              "method": {"name": "dnr", "params": {"reinit_epoch": 1, "reinit_num": 2}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert len(a.history) == 4 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    # diagnoses at the ends of epochs 1 and 2: epochs 2 and 3 log the last one
    assert "train_w[x1]" not in a.history[1]
    assert [h["train_reinits"] for h in a.history[2:]] == [1.0, 2.0]
    for h in a.history[2:]:
        for m in ("x1", "x2"):
            assert 0 <= h[f"train_purity_train[{m}]"] <= 1 and 0 <= h[f"train_purity_val[{m}]"] <= 1
            assert h[f"train_w[{m}]"] == pytest.approx(math.tanh(3.0 * h[f"train_gap[{m}]"]), rel=1e-6)
    # λ = 0: w = 0, and diagnosing disturbs nothing (no global RNG, mode restored)
    joint = run({**TINY_RUN, "train": train, "method": {"name": "joint"}}, tmp_path / "j")
    zero = run({**config, "method": {"name": "dnr", "params": {"move_lambda": 0.0, "reinit_epoch": 1}}},
               tmp_path / "z")
    assert torch.equal(zero.predictions["test"]["fused"], joint.predictions["test"]["fused"])
    assert not torch.equal(a.predictions["test"]["fused"], joint.predictions["test"]["fused"])
