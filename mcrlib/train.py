"""The one training loop: fit, evaluate, early stopping, checkpoint and resume.

The Trainer knows nothing about any method's internals (it calls the Method's hooks: `loss`,
`backward`, `after_backward`, `on_epoch_start` / `on_epoch_end` with an EpochState), about DVC or
about notebooks. Extra per-epoch work plugs in as callbacks, as in minGPT's trainer:
`trainer.add_callback("on_epoch_end", fn)`, `fn(trainer, epoch, record)` after each epoch's
validation; a callback may add to the record (the test split's metrics for Figure 6's curves,
`evaluate_each_epoch("test")`) or save things (the features of mcrlib.features.FeatureRecorder).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mcrlib import distributed as dist
from mcrlib.atomic import save_torch
from mcrlib.augment import augment_frames
from mcrlib.config import ConfigError, TrainConfig
from mcrlib.data.tensors import TensorSplits
from mcrlib.evaluation import head_metrics, predict
from mcrlib.methods.base import EpochState

EVENTS = ("on_epoch_end",)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} is invalid: this machine has no CUDA device; "
                          "expected 'auto' (the GPU when there is one) or 'cpu'")
    return device


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Linear warm-up to the base lr, then cosine decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int
    best_state: dict
    stopped_early: bool
    predictions: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


class NonFiniteLoss(FloatingPointError):
    pass


def _no_mark(phase: str) -> None:
    """Trainer.step's phase marks when nothing times them."""


class Trainer:
    def __init__(self, model, method, cfg: TrainConfig, *, seed: int = 0, task: str = "classification",
                 checkpoint_path: str | Path | None = None, checkpoint_every_s: float = 0.0,
                 callbacks=(), description: str = ""):
        # Under torchrun (WORLD_SIZE > 1) one process per rank: each takes its own GPU and joins
        # the process group; mcrlib.distributed and docs/distributed.md say what changes.
        self.device = dist.local_device(resolve_device(cfg.device))
        dist.setup(self.device)
        self.distributed = dist.is_distributed()
        if cfg.batch_size % dist.world_size():
            raise ConfigError(f"train.batch_size={cfg.batch_size} is invalid with {dist.world_size()} processes: "
                              "the global batch is split evenly over the ranks, so it must be a multiple "
                              "of the number of processes (WORLD_SIZE)")
        self.model = model.to(self.device)
        self.method = method.to(self.device)
        if self.distributed:
            dist.broadcast_parameters(self.model)
            dist.broadcast_parameters(self.method)
            if dist.rank() > 0:
                # Each rank its own random stream (dropout, MCR's permutations, augmentation);
                # rank 0 keeps the single process's stream.
                torch.manual_seed(seed * 100_003 + 7_919 * dist.rank())
        self.cfg, self.seed, self.task = cfg, seed, task
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        # 0: a checkpoint after every epoch. Otherwise after the first epoch that ends at least
        # this many seconds after the last one: a killed run then loses at most that much work and
        # still resumes exactly (the checkpoint holds every random state). The synthetic MLP's
        # epochs take ~60 ms, and a checkpoint ~15 ms. Under torchrun every epoch: the save is a
        # collective, and the ranks' clocks would not agree on when it is due.
        self.checkpoint_every_s = 0.0 if self.distributed else float(checkpoint_every_s)
        self.callbacks: dict[str, list] = {event: [] for event in EVENTS}
        for fn in callbacks:   # shorthand: on_epoch_end callbacks
            self.add_callback("on_epoch_end", fn)
        self.description = description
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        groups = method.param_groups(self.model)
        for group in groups:
            # Each step a group's lr = base_lr * lr_scale * schedule(step). Methods may set a
            # group's own base_lr, or change its lr_scale at any time (Uni-Pre, MSLR); both are
            # saved with the optimizer's state, so they survive a resume.
            group.setdefault("base_lr", cfg.lr)
            group.setdefault("lr_scale", 1.0)
        # fused: one kernel for all parameters instead of a Python loop over them (CPU and CUDA)
        self.optimizer = opt_cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.schedule = None

    def add_callback(self, event: str, fn) -> None:
        """Run `fn(trainer, epoch, record)` at `event` (one of EVENTS)."""
        if event not in self.callbacks:
            raise ValueError(f"unknown trainer event {event!r}: expected one of {list(self.callbacks)}")
        self.callbacks[event].append(fn)

    def _trigger(self, event: str, *args) -> None:
        for fn in self.callbacks[event]:
            fn(self, *args)

    def autocast(self):
        """bf16 autocast for the forward pass and the losses (train.precision), else nothing."""
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ---- checkpointing -------------------------------------------------------------------
    def checkpoint_state(self, epoch, history, best):
        """The checkpoint. Under torchrun a collective (every rank's random state is gathered,
        for an exact resume); only rank 0 writes it."""
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        state = {"epoch": epoch, "history": history, "best": best,
                 "model": self.model.state_dict(), "method": self.method.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "rng": rng, "cuda_rng": cuda_rng}
        if dist.is_distributed():
            state["rank_rng"] = dist.gather_objects((rng, cuda_rng))
        return state

    def _restore(self):
        if not (self.checkpoint_path and self.checkpoint_path.exists()):
            return 0, [], {"epoch": -1, "score": -math.inf, "state": None, "bad_epochs": 0}
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        except Exception as err:  # a corrupt checkpoint is reported and training restarts
            tqdm.write(f"[mcrlib] ignoring unreadable checkpoint {self.checkpoint_path}: {err}")
            return 0, [], {"epoch": -1, "score": -math.inf, "state": None, "bad_epochs": 0}
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng, cuda_rng = state["rng"], state["cuda_rng"]
        if len(state.get("rank_rng") or ()) == dist.world_size():
            rng, cuda_rng = state["rank_rng"][dist.rank()]
        torch.set_rng_state(rng.cpu())
        if cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([r.cpu() for r in cuda_rng])
        return state["epoch"] + 1, state["history"], state["best"]

    # ---- one epoch -----------------------------------------------------------------------
    def set_lr(self, step: int) -> None:
        # No schedule outside `fit` (the cost benchmark's steps): every group at its base rate.
        factor = self.schedule(step) if self.schedule is not None else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * group["lr_scale"] * factor

    def epoch_state(self, data: TensorSplits, epoch: int, record: dict | None = None) -> EpochState:
        def loader(split: str):
            for batch in data.loader(split, self.cfg.batch_size, epoch, self.seed):
                yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return EpochState(epoch=epoch, model=self.model, param_groups=self.optimizer.param_groups,
                          device=self.device, batch_size=self.cfg.batch_size, seed=self.seed,
                          loader=loader, record=record)

    def step(self, batch: dict, global_step: int, *, mark=None) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch already on the device; returns its detached logs.
        `fit` runs it, and so do the cost benchmark and the profiler, which then time the real
        step. `mark(phase)`, if given, is called as each phase ends ("forward", "loss",
        "backward", "optimizer"): the profiler's clock (benchmarks.profile_run)."""
        mark = mark or _no_mark
        if self.cfg.augment_frames:
            batch = augment_frames(batch, self.model.modalities)
        with self.autocast():
            output = self.model(batch)
            mark("forward")
            terms = self.method.loss(self.model, batch, output)
        total = sum(terms.values())
        # The step's one CPU-GPU sync point: a non-finite term makes the total non-finite, and
        # the optimizer must not step on it. The terms are inspected only when it fails.
        # Under torchrun every rank tests the sum of the ranks' totals, so all stop together.
        if not torch.isfinite(dist.average_tensors([total])[0] if self.distributed else total):
            bad = " and ".join(f"{k!r} is {v.item()}" for k, v in terms.items() if not torch.isfinite(v).all())
            raise NonFiniteLoss(f"loss term {bad or 'total'} at step {global_step}; "
                                "lower the learning rate or check the inputs")
        mark("loss")
        self.optimizer.zero_grad(set_to_none=True)
        self.method.backward(terms, self.model)
        self.method.after_backward(self.model, batch, output)
        # Under torchrun: each rank's final (after any modulation) gradient, averaged over the
        # ranks, so every rank takes the same step.
        if self.distributed:
            dist.average_gradients([*self.model.parameters(), *self.method.parameters()])
        mark("backward")
        self.set_lr(global_step)
        self.optimizer.step()
        mark("optimizer")
        logs = {f"loss_{k}": v.detach() for k, v in terms.items()}
        logs["loss_total"] = total.detach()
        logs.update(self.method.diagnostics)
        return logs

    def _train_epoch(self, data: TensorSplits, epoch: int, steps_per_epoch: int) -> dict[str, float]:
        self.model.train()
        self.method.train()
        self.method.on_epoch_start(self.epoch_state(data, epoch))  # after train(): a method may freeze parts
        # Running sums stay on the device as detached tensors and are read once, at the epoch's
        # end: a `.item()` per term per step would make every step wait for the device.
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for step, batch in enumerate(data.loader("train", self.cfg.batch_size, epoch, self.seed)):
            # under torchrun: this rank's rows of the global batch (the order is the same everywhere)
            if self.distributed:
                batch = dist.shard(batch, self.cfg.batch_size)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            try:
                logs = self.step(batch, epoch * steps_per_epoch + step)
            except NonFiniteLoss as err:
                raise NonFiniteLoss(f"epoch {epoch}: {err}") from None
            for k, v in logs.items():
                sums[k] = sums[k] + v if k in sums else v
            steps += 1
        if steps == 0:
            raise ValueError(f"the training split has fewer samples than one batch "
                             f"(batch_size={self.cfg.batch_size}); lower train.batch_size")
        # under torchrun: rank 0's buffers (state kept from its own shards) on every rank, so
        # that validation, early stopping and the checkpoint agree everywhere
        dist.broadcast_buffers(self.model)
        dist.broadcast_buffers(self.method)
        # one transfer for every sum (a sync point, once per epoch)
        means = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device).reshape(())
                             for v in sums.values()]) / steps
        # under torchrun: the mean over ranks of each rank's mean over its shards
        means = dist.average_tensors([means])[0].tolist()
        return {f"train_{k}": v for k, v in zip(sums, means)}

    def evaluate(self, data: TensorSplits, split: str):
        preds = predict(self.model, data, split, max(256, self.cfg.batch_size), self.device)
        heads = ["fused", *self.model.modalities]
        return preds, head_metrics(preds, heads, self.task)

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, data: TensorSplits) -> FitResult:
        cfg = self.cfg
        if cfg.test_every_epoch and evaluate_each_epoch not in self.callbacks["on_epoch_end"]:
            # The test split each epoch only for per-epoch curves (Figure 6); selection reads val.
            self.add_callback("on_epoch_end", evaluate_each_epoch)
        if self.device.type == "cuda":
            data = data.to(self.device)   # resident on the GPU: batches are gathers, not copies
        self.data = data                  # what is being fit, for callbacks
        steps_per_epoch = len(data.splits["train"]["label"]) // cfg.batch_size
        self.schedule = warmup_cosine(round(cfg.warmup_epochs * steps_per_epoch), cfg.max_epochs * steps_per_epoch)
        start, history, best = self._restore()
        last_checkpoint = time.monotonic()
        stopped_early = best["bad_epochs"] >= cfg.patience
        bar = tqdm(range(start, cfg.max_epochs), desc=self.description or "epochs", leave=False,
                   disable=not cfg.progress or stopped_early or not dist.is_main(), initial=start,
                   total=cfg.max_epochs)
        for epoch in bar:
            if stopped_early:
                break
            record = {"epoch": epoch, "lr": cfg.lr * self.schedule(epoch * steps_per_epoch),
                      **self._train_epoch(data, epoch, steps_per_epoch)}
            record.update({f"val_{k}": v for k, v in self.evaluate(data, "val")[1].items()})
            self.method.on_epoch_end(self.epoch_state(data, epoch, record))
            self._trigger("on_epoch_end", epoch, record)
            # Validation accuracy (classification) or validation L1 (regression), higher is better.
            score = record["val_acc_fused"] if self.task == "classification" else -record["val_loss_fused"]
            if score > best["score"]:
                best = {"epoch": epoch, "score": score, "bad_epochs": 0,
                        "state": copy.deepcopy(self.model.state_dict())}
            else:
                best["bad_epochs"] += 1
            history.append(record)
            stopped_early = best["bad_epochs"] >= cfg.patience
            if self.checkpoint_path and time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                state = self.checkpoint_state(epoch, history, best)   # a collective under torchrun
                if dist.is_main():
                    save_torch(state, self.checkpoint_path)
                last_checkpoint = time.monotonic()
            bar.set_postfix(val_score=f"{score:.3f}", best_epoch=best["epoch"])
        bar.close()
        self.model.load_state_dict(best["state"])
        predictions = {split: self.evaluate(data, split)[0] for split in ("val", "test")}
        return FitResult(history=history, best_epoch=best["epoch"], best_state=best["state"],
                         stopped_early=stopped_early, predictions=predictions)


def evaluate_each_epoch(trainer: Trainer, epoch: int, record: dict) -> None:
    """Callback: the test split's metrics in each epoch's record (train.test_every_epoch)."""
    record.update({f"test_{k}": v for k, v in trainer.evaluate(trainer.data, "test")[1].items()})
