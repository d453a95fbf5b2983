"""The training loop: fitting, early stopping, resume, determinism, non-finite losses."""
import dataclasses
import math

import pytest
import torch

from mcrlib.config import ModelConfig, TrainConfig
from mcrlib.methods import METHODS, method_params
from mcrlib.models import build_model
from mcrlib.runs import run
from mcrlib.train import NonFiniteLoss, Trainer
from tests.conftest import TINY_RUN, Interrupt, model_and_batch


def test_overfits_one_small_batch(tiny_data):
    one_batch = {k: v[:16] for k, v in tiny_data.splits["train"].items()}
    data = dataclasses.replace(tiny_data, splits={"train": one_batch, "val": one_batch, "test": one_batch})
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=32, latent_dim=16), data)
    method = METHODS["joint"](method_params("joint", {}), model=model)
    cfg = TrainConfig(max_epochs=200, batch_size=16, lr=1e-2, warmup_epochs=0, patience=200, progress=False)
    fit = Trainer(model, method, cfg).fit(data)
    assert fit.history[-1]["train_loss_task"] < 0.01
    assert fit.history[-1]["val_acc_fused"] == 1.0


def test_resumed_run_equals_uninterrupted(tiny_data, tmp_path):
    def trainer(checkpoint, callbacks=()):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden_dim=16, latent_dim=8, dropout=0.1), tiny_data)
        method = METHODS["mcr"](method_params("mcr", {"copies": 4}), model=model)
        cfg = TrainConfig(max_epochs=6, batch_size=32, patience=6, progress=False)
        made = Trainer(model, method, cfg, seed=3, checkpoint_path=checkpoint)
        for fn in callbacks:
            made.add_callback("on_epoch_end", fn)
        return made

    reference = trainer(tmp_path / "a.pt").fit(tiny_data)

    def kill_at_epoch_3(_trainer, epoch, _record):
        if epoch == 3:
            raise Interrupt
    with pytest.raises(Interrupt):
        trainer(tmp_path / "b.pt", [kill_at_epoch_3]).fit(tiny_data)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 2
    resumed = trainer(tmp_path / "b.pt").fit(tiny_data)

    assert resumed.history == reference.history
    assert resumed.best_epoch == reference.best_epoch
    for key, value in reference.best_state.items():
        torch.testing.assert_close(resumed.best_state[key], value, rtol=0, atol=0)


def test_checkpoint_interval_saves_by_elapsed_time_and_still_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    """With checkpoint_every_s, a checkpoint follows the first epoch ending that long after the
    last one (here a clock that advances 1 s per reading: every other epoch at 1.5 s), and a run
    killed after an unsaved epoch resumes from the older checkpoint to the same end."""
    import mcrlib.train
    clock = iter(range(10_000))
    monkeypatch.setattr(mcrlib.train.time, "monotonic", lambda: float(next(clock)))

    def trainer(checkpoint, callbacks=()):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden_dim=16, latent_dim=8, dropout=0.1), tiny_data)
        method = METHODS["mcr"](method_params("mcr", {"copies": 4}), model=model)
        cfg = TrainConfig(max_epochs=6, batch_size=32, patience=6, progress=False)
        made = Trainer(model, method, cfg, seed=3, checkpoint_path=checkpoint, checkpoint_every_s=1.5)
        for fn in callbacks:
            made.add_callback("on_epoch_end", fn)
        return made

    saved = []
    real_save = mcrlib.train.save_torch
    monkeypatch.setattr(mcrlib.train, "save_torch", lambda state, path: (saved.append(state["epoch"]),
                                                                          real_save(state, path)))
    reference = trainer(tmp_path / "a.pt").fit(tiny_data)
    assert saved == [1, 3, 5]

    def kill_at_epoch_3(_trainer, epoch, _record):
        if epoch == 3:
            raise Interrupt
    with pytest.raises(Interrupt):
        trainer(tmp_path / "b.pt", [kill_at_epoch_3]).fit(tiny_data)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1   # epochs 2-3 are redone
    resumed = trainer(tmp_path / "b.pt").fit(tiny_data)
    assert resumed.history == reference.history
    for key, value in reference.best_state.items():
        torch.testing.assert_close(resumed.best_state[key], value, rtol=0, atol=0)


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    config = {**TINY_RUN, "method": {"name": "mcr", "params": {"copies": 4}}}
    a = run({**config, "seed": 1}, tmp_path / "a")
    b = run({**config, "seed": 1}, tmp_path / "b")
    c = run({**config, "seed": 2}, tmp_path / "c")
    assert a.history == b.history and a.metrics == b.metrics
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    assert a.history != c.history


def test_test_metrics_come_from_the_best_validation_epoch(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 8, "test_every_epoch": True},
              "method": {"name": "joint"}}
    result = run(config, tmp_path)
    best = result.metrics["best_epoch"]
    scores = [h["val_acc_fused"] for h in result.history]
    assert scores[best] == max(scores) and best == scores.index(max(scores))
    assert result.metrics["test_acc_fused"] == pytest.approx(result.history[best]["test_acc_fused"])


def test_early_stopping_after_patience(tiny_data):
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)
    method = METHODS["joint"](method_params("joint", {}), model=model)
    # lr so small nothing improves after the first epoch: stop after 1 + patience epochs
    cfg = TrainConfig(max_epochs=50, batch_size=32, lr=1e-12, warmup_epochs=0, patience=3, progress=False)
    fit = Trainer(model, method, cfg).fit(tiny_data)
    assert fit.stopped_early and len(fit.history) == 4 and fit.best_epoch == 0


def test_non_finite_loss_names_step_and_term(tiny_data):
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)

    class Exploding(METHODS["multiloss"]):
        def loss(self, model, batch, output):
            terms = super().loss(model, batch, output)
            terms["unimodal"] = terms["unimodal"] * float("inf")
            return terms
    method = Exploding(method_params("multiloss", {}), model=model)
    with pytest.raises(NonFiniteLoss, match=r"epoch 0: loss term 'unimodal' is inf at step 0"):
        Trainer(model, method, TrainConfig(progress=False)).fit(tiny_data)


def test_run_result_is_persisted_with_predictions_and_groups(tmp_path):
    result = run({**TINY_RUN, "method": {"name": "multiloss"}}, tmp_path)
    files = sorted(p.name for p in result.path.iterdir())
    assert files == ["model.pt", "predictions.pt", "result.json"]  # no checkpoint left behind
    test = result.predictions["test"]
    assert set(test) == {"fused", "x1", "x2", "label", "group"}
    assert test["fused"].shape == (64, 5) and test["group"].max() <= 2
    again = run({**TINY_RUN, "method": {"name": "multiloss"}}, tmp_path)  # from the cache
    assert again.metrics == result.metrics and again.history == result.history


def test_corrupt_record_is_recomputed_not_used(tmp_path, capsys):
    config = {**TINY_RUN, "method": {"name": "joint"}}
    first = run(config, tmp_path)
    (first.path / "result.json").write_text("{truncated")
    second = run(config, tmp_path)
    assert "recomputing" in capsys.readouterr().out
    assert second.metrics == first.metrics


def test_method_hooks_are_called_in_order_with_the_epoch_state(tiny_data):
    calls = []

    class Recording(METHODS["joint"]):
        def param_groups(self, model):
            return [{"params": list(model.encoders["x1"].parameters())},
                    {"params": [p for n, p in model.named_parameters() if not n.startswith("encoders.x1")]}]

        def on_epoch_start(self, state):
            super().on_epoch_start(state)
            # the optimizer's own groups: an lr_scale set here applies to the epoch's steps
            state.param_groups[0]["lr_scale"] = 0.0
            val = list(state.loader("val"))
            calls.append(("start", state.epoch, self.epoch, sum(len(b["label"]) for b in val),
                          state.batch_size, state.record))

        def after_backward(self, model, batch, output):
            if not calls or calls[-1][0] != "backward":
                calls.append(("backward", model.encoders["x1"][0].weight.grad is not None))

        def on_epoch_end(self, state):
            calls.append(("end", state.epoch, "val_acc_fused" in state.record, "train_loss_task" in state.record))

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)
    frozen = model.encoders["x1"][0].weight.detach().clone()
    method = Recording(method_params("joint", {}), model=model)
    Trainer(model, method, TrainConfig(max_epochs=2, patience=5, batch_size=32, progress=False)).fit(tiny_data)
    # 64 validation samples in batches of 32
    assert calls == [("start", 0, 0, 64, 32, None), ("backward", True), ("end", 0, True, True),
                     ("start", 1, 1, 64, 32, None), ("backward", True), ("end", 1, True, True)]
    assert torch.equal(model.encoders["x1"][0].weight, frozen)  # its group's lr_scale was 0


def test_test_split_is_evaluated_each_epoch_only_when_asked(tmp_path):
    """Selection reads the validation split; the test split's per-epoch curve is opt-in, and the
    final test metrics are the same either way."""
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 3}, "method": {"name": "joint"}}
    plain = run(config, tmp_path / "plain")
    curves = run({**config, "train": {**config["train"], "test_every_epoch": True}}, tmp_path / "curves")
    assert not any(k.startswith("test_") for h in plain.history for k in h)
    assert all("test_acc_fused" in h for h in curves.history)
    assert plain.metrics["test_acc_fused"] == curves.metrics["test_acc_fused"]


def test_bf16_autocast_trains_and_keeps_fp32_weights(tmp_path):
    """train.precision=bf16: forward and losses under autocast (here on the CPU), finite losses,
    weights and the saved predictions in fp32."""
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2, "precision": "bf16"},
              "method": {"name": "mcr", "params": {"copies": 4}}}
    result = run(config, tmp_path)
    assert all(math.isfinite(h["train_loss_total"]) for h in result.history)
    assert result.predictions["test"]["fused"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in result.model_state().values() if v.is_floating_point())


def test_fit_runs_the_public_step_and_callbacks_by_event(tiny_data):
    """`fit` goes through `Trainer.step` (what the cost benchmark times), and per-epoch work
    plugs in with add_callback; an unknown event is an error naming the known ones."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)
    trainer = Trainer(model, METHODS["joint"](method_params("joint", {}), model=model),
                      TrainConfig(max_epochs=2, patience=5, batch_size=32, progress=False))
    steps, seen = [], []
    original = trainer.step
    trainer.step = lambda batch, global_step: steps.append(global_step) or original(batch, global_step)
    trainer.add_callback("on_epoch_end", lambda t, epoch, record: seen.append((epoch, sorted(record)[:2])))
    with pytest.raises(ValueError, match="unknown trainer event 'on_step'.*on_epoch_end"):
        trainer.add_callback("on_step", print)
    trainer.fit(tiny_data)
    assert steps == list(range(8))                 # 128 samples / 32 per batch, 2 epochs
    assert [e for e, _ in seen] == [0, 1]
