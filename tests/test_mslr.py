"""MSLR: multipliers from the sliced validation accuracy over the last K epochs, true
per-modality learning rates under Adam (through the groups' lr_scale), resume, run()."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcrlib.config import ConfigError, ModelConfig, TrainConfig
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.mslr import MSLR
from mcrlib.models import MultimodalModel, build_model
from mcrlib.runs import run
from mcrlib.train import Trainer, warmup_cosine
from tests.conftest import TINY_RUN, resume_after_kill


def mslr(model, **params):
    return METHODS["mslr"](method_params("mslr", params), model=model)


def model_for(data):
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden_dim=16, latent_dim=8), data)


def test_class_attributes():
    assert MSLR.trains and MSLR.rank == 70 and MSLR.display == "MSLR"


def test_multipliers_follow_validation_accuracy_over_the_last_k_epochs(tiny_data):
    method = mslr(model_for(tiny_data), init=[0.9, 1.1], window=2)
    scale = lambda acc: method.observe(torch.tensor(acc)).tolist()  # noqa: E731
    assert scale([0.5, 0.4]) == pytest.approx([0.9, 1.1])   # fewer than K epochs in memory: init
    assert scale([0.6, 0.4]) == pytest.approx([0.9, 1.1])
    # memory (0.5, 0.4), (0.6, 0.4): 0.9 * 0.9 / 0.55 and 1.1 * 0.2 / 0.4
    assert scale([0.9, 0.2]) == pytest.approx([1.4727272727, 0.55])
    # only the last K = 2 count, (0.6, 0.4), (0.9, 0.2), and init (not the previous value) is rescaled
    assert scale([0.3, 0.8]) == pytest.approx([0.36, 2.9333333333])
    assert method.filled.item() == 4
    torch.testing.assert_close(method.memory, torch.tensor([[0.9, 0.2], [0.3, 0.8]], dtype=torch.float64))
    assert {"init", "scale", "memory", "filled"} <= set(method.state_dict())


def test_under_adam_each_encoder_group_really_steps_with_its_own_learning_rate(tiny_data):
    model = model_for(tiny_data)
    method = mslr(model, init={"x2": 2.0, "x1": 0.5})
    lr = 1e-2
    trainer = Trainer(model, method, TrainConfig(lr=lr, weight_decay=0.0, warmup_epochs=0, max_epochs=2,
                                                 batch_size=32, progress=False, device="cpu"))
    groups = trainer.optimizer.param_groups
    assert [g["modality"] for g in groups] == [None, "x1", "x2"]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.encoders["x1"].parameters()}
    trainer.schedule = warmup_cosine(0, 8)  # as fit()
    method.on_epoch_start(trainer.epoch_state(tiny_data, 0))
    seen = []
    trainer.optimizer.register_step_pre_hook(lambda opt, *_: seen.append([g["lr"] for g in opt.param_groups]))
    batches = iter(tiny_data.loader("train", 32))
    for step in range(2):
        batch = next(batches)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch).logits, batch["label"]).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        trainer.set_lr(step)  # as the training loop, just before the step
        trainer.optimizer.step()
        factor = warmup_cosine(0, 8)(step)
        assert seen[-1] == pytest.approx([lr * factor, 0.5 * lr * factor, 2.0 * lr * factor])
        if step == 0:  # Adam's first update is exactly -lr * g / (|g| + eps)
            for name, g in grads.items():
                k = 0.5 if name.startswith("encoders.x1") else 2.0 if name.startswith("encoders.x2") else 1.0
                expected = -k * lr * g / (g.abs() + 1e-8)
                torch.testing.assert_close(dict(model.named_parameters())[name].detach() - before[name],
                                           expected, rtol=1e-4, atol=1e-7)


def test_fit_rescales_with_the_sliced_accuracy_of_the_previous_epochs_model(tiny_data):
    model = model_for(tiny_data)
    method = mslr(model, window=1)
    after_epoch = []

    def sliced_accuracy(trainer, epoch, record):  # the model validated at the end of `epoch`
        with torch.no_grad():
            trainer.model.eval()
            z = trainer.model.encode(tiny_data.splits["val"])
            y = tiny_data.splits["val"]["label"]
            f = trainer.model.fusion
            after_epoch.append([((b(z[m]) + f.bias / 2).argmax(-1) == y).float().mean().item()
                                for b, m in zip(f.branches, ("x1", "x2"))])
    cfg = TrainConfig(max_epochs=4, patience=4, batch_size=32, progress=False)
    trainer = Trainer(model, method, cfg)
    trainer.add_callback("on_epoch_end", sliced_accuracy)
    history = trainer.fit(tiny_data).history
    for e in (1, 2, 3):
        assert [history[e][f"train_val_acc_sliced[{m}]"] for m in ("x1", "x2")] == pytest.approx(after_epoch[e - 1])
    for e in (0, 1):  # no K = 1 earlier epoch in memory yet
        assert [history[e][f"train_lr_scale[{m}]"] for m in ("x1", "x2")] == pytest.approx([0.9, 1.1])
    for e in (2, 3):
        expected = [k * now / prev for k, now, prev in zip((0.9, 1.1), after_epoch[e - 1], after_epoch[e - 2])]
        assert [history[e][f"train_lr_scale[{m}]"] for m in ("x1", "x2")] == pytest.approx(expected)




def test_resumed_run_equals_uninterrupted(tiny_data, tmp_path):
    def trainer(checkpoint, callbacks=()):
        model = model_for(tiny_data)
        cfg = TrainConfig(max_epochs=4, batch_size=32, patience=4, progress=False)
        trainer = Trainer(model, mslr(model, window=1), cfg, seed=2, checkpoint_path=checkpoint)
        for callback in callbacks:
            trainer.add_callback("on_epoch_end", callback)
        return trainer

    reference, ref, resumed, again = resume_after_kill(trainer, tiny_data, tmp_path, kill_at=2)
    assert again.history == ref.history
    for key in ("scale", "memory", "filled"):
        torch.testing.assert_close(getattr(resumed.method, key), getattr(reference.method, key), rtol=0, atol=0)


def test_init_must_give_one_multiplier_per_modality():
    with pytest.raises(ConfigError, match="method.params.init"):
        METHODS["mslr"].modalities(method_params("mslr", {"init": [1.0, 1.0, 1.0]}), ("x1", "x2"))
    with pytest.raises(ConfigError, match="method.params.init"):
        METHODS["mslr"].modalities(method_params("mslr", {"init": {"x1": 1.0, "audio": 1.0}}), ("x1", "x2"))
    with pytest.raises(ConfigError, match="multipliers > 0"):
        method_params("mslr", {"init": [0.9, 0.0]})
    with pytest.raises(ConfigError, match="method.params.window"):
        method_params("mslr", {"window": 0})


def test_trains_two_epochs_via_run_and_is_deterministic(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "mslr", "params": {"init": {"x1": 0.9, "x2": 1.1}, "window": 1}}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history and a.metrics == b.metrics
    assert a.history[1]["train_lr_scale[x1]"] == pytest.approx(0.9)
    assert 0 <= a.history[1]["train_val_acc_sliced[x1]"] <= 1


def test_regression_rescales_by_the_inverse_mae_ratio(tiny_data):
    import dataclasses
    splits = {k: {**v, "label": v["label"].float()} for k, v in tiny_data.splits.items()}
    data = dataclasses.replace(tiny_data, splits=splits, n_classes=1, task="regression")
    model = model_for(data)
    method = METHODS["mslr"](method_params("mslr", {"init": [1.0, 1.0], "window": 1}), model=model, task="regression")
    method.observe(torch.tensor([2.0, 1.0]))
    assert method.observe(torch.tensor([1.0, 2.0])).tolist() == pytest.approx([2.0, 0.5])  # lower MAE: faster
    cfg = TrainConfig(max_epochs=2, patience=2, batch_size=32, progress=False)
    history = Trainer(model, method, cfg, task="regression").fit(data).history
    assert history[1]["train_val_mae_sliced[x1]"] > 0


class Identity(nn.Module):
    out_dim = 2

    def forward(self, x):
        return x


def identity_model(n_classes, branches, bias, fusion=None):
    model = MultimodalModel(encoders={"x1": Identity(), "x2": Identity()}, n_classes=n_classes, fusion=fusion)
    if fusion is None:
        with torch.no_grad():
            for branch, weight in zip(model.fusion.branches, branches):
                branch.weight.copy_(weight)
            model.fusion.bias.copy_(bias)
    return model


def test_sliced_metric_reads_each_modality_share_of_the_fused_logits():
    """f_m = W_m z_m + b/M by hand: identity encoders, W_1 = I, W_2 = -I, b = (0, 3), b/M = (0, 1.5)."""
    model = identity_model(2, [torch.eye(2), -torch.eye(2)], torch.tensor([0., 3.]))
    method = mslr(model)
    x, y = torch.tensor([[4., 0.], [0., 1.], [2., 0.], [0., 4.]]), torch.tensor([0, 1, 0, 0])
    batches = [{"x1": x[:3], "x2": x[:3], "label": y[:3]}, {"x1": x[3:], "x2": x[3:], "label": y[3:]}]
    # f_1 = x + (0, 1.5): (4, 1.5) (0, 2.5) (2, 1.5) (0, 5.5) -> classes 0 1 0 1: 3/4 right
    #   (with all of b, row 2's (2, 3) would be wrong: 2/4).
    # f_2 = -x + (0, 1.5): (-4, 1.5) (0, 0.5) (-2, 1.5) (0, -2.5) -> 1 1 1 0: 2/4 right
    #   (without b, -x: 1 0 1 0, 1/4). The whole head, (0, 3) on every row, gets 1/4.
    model.train()
    torch.testing.assert_close(method.sliced_metric(model, batches), torch.tensor([0.75, 0.5], dtype=torch.float64))
    assert model.training  # the mode is restored
    # Regression: the MAE of each share. W_1 = (1, 0), W_2 = (0, -1), b = 2 (b/M = 1); rows (1, 2),
    # (3, 0), labels 0, 5: f_1 = 2, 4 -> (2 + 1) / 2; f_2 = -1, 1 -> (1 + 4) / 2.
    model = identity_model(1, [torch.tensor([[1., 0.]]), torch.tensor([[0., -1.]])], torch.tensor([2.]))
    method = METHODS["mslr"](method_params("mslr", {"init": [1.0, 1.0]}), model=model, task="regression")
    x, y = torch.tensor([[1., 2.], [3., 0.]]), torch.tensor([0., 5.])
    torch.testing.assert_close(method.sliced_metric(model, [{"x1": x, "x2": x, "label": y}]),
                               torch.tensor([1.5, 2.5], dtype=torch.float64))


def test_sliced_metric_needs_a_linear_fusion_head():
    from mcrlib.models import FusionHead

    class Concat(FusionHead):   # mixes the modalities: no per-modality share of the logits
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 2)

        @classmethod
        def from_params(cls, params, *, latent_dims, n_outputs):
            return cls()

        def logits_and_shares(self, latents, unimodal_logits):
            return self.layer(torch.cat(latents, -1)), None

    model = identity_model(2, None, None, fusion=Concat())
    batch = {"x1": torch.randn(3, 2), "x2": torch.randn(3, 2), "label": torch.tensor([0, 1, 0])}
    with pytest.raises(ConfigError, match="linear fusion head"):
        mslr(model).sliced_metric(model, [batch])
