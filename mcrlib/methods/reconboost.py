"""ReconBoost: alternating boosting of per-modality learners.

Reference: Hua, Xu, Bao, Yang, Huang, "ReconBoost: Boosting Can Achieve Modality Reconcilement",
ICML 2024 (arXiv 2405.09321); code huacong/ReconBoost (`train.py`, `schedule.py`,
`models/dynamic_net.py`); ports GeWu-Lab/BalanceBenchmark (`trainer/ReconBoost_trainer.py`) and
kkontras/MCR (`Bias_Infusion_ReconBoost`).

Learners and ensemble: the learner of modality m is its encoder and its unimodal head, with
output f_m = u_m; the ensemble is F = rate * sum_m f_m. F is the model's fused head
(`model_overrides`: model.fusion = 'unimodal_sum', model.fusion_params = {rate: boost_rate}), so evaluation,
model selection and `model(batch).logits` all read the ensemble.

Schedule (`stage`): the epochs are grouped into stages of `epochs_per_stage` + `correct_epochs`
epochs. Stage s picks modality m = modalities[s mod M] (round robin in the model's order):
  learn, its first `epochs_per_stage` epochs: only learner m trains, on
      L_boost = mean_i (w1 - w2 * p_join,i(y_i)) * (-log p_m,i(y_i)) / C,
    p_join = softmax(rate * sum_{k != m} f_k), detached. This is the reference's
    mean over classes of [-w1 t log p_m + w2 t p_join log p_m] (t one-hot, hence the 1/C:
    the largest weight per sample is w1/C, 5/6 on CREMA-D), averaged over the batch. Samples that
    the other learners already get right weigh less.
    From stage 1 on it adds the reconcilement ("GA") term alpha * MSE(softmax f_m, softmax f_prev),
    the mean over B x C, where f_prev is the output of the previous stage's learner
    (modality modalities[(s-1) mod M], frozen, on its own input), as in all three codes.
  correct, the next `correct_epochs` epochs ("global rectification"): CE(F, y) trains every learner.

`reconcile`: "intended" (default) lets the term's gradient reach f_m (f_prev is a frozen
learner's output, detached), the paper's regulariser. "faithful" reproduces the three codes,
which detach both arguments: the term is computed and logged but adds no gradient (a no-op).

Freezing in a learn stage: the other learners' param groups (and the shared group: whatever
belongs to no learner) get lr_scale 0, set in `on_epoch_start` through the optimizer's groups.
Why lr_scale and not requires_grad: it is the trainer's own mechanism, saved with the optimizer
state (a resumed run is frozen the same way), and it leaves the model's flags untouched for the
code that reads them after training. The loss never reaches a frozen learner either (its logits
are detached), so Adam skips it (no gradient: no moment update, no weight decay; and with lr 0 even
a decay would not move it, since Adam's L2 and AdamW's decoupled decay are both scaled by lr).
Batch norm: the frozen learners run in eval mode for the learn stage (set after the trainer's
model.train()), so their running statistics stay as they are and dropout is off: p_join and
f_prev are the frozen learners' deterministic predictions, the ones the ensemble makes at test.

Defaults and sources:
  w1 = 5.0: README CREMA-D (AVE and ModelNet40 4.0; the MCR release 3 for CREMA-D ResNet, 5 for
    the others); w2 = 1.0 (README, all datasets; MCR release).
  alpha = 0.5: argparse default, BalanceMM, the MCR release (3.0 for AVE ViT).
  epochs_per_stage = 4, correct_epochs = 4: argparse and README (the MCR release: 1/1 for CREMA-D
    and AVE ResNet and Sth-Sth, 4/4 for the CREMA-D Conformer and UCF).
  boost_rate = 1.0: argparse and README (the ensemble's rate, at its initial value).
  reconcile = "intended"; init_from_unimodal = False: the README trains with --use_pretrain "to
    enhance stability"; off here so that it starts from scratch as the other baselines (true: the
    unimodal runs' encoders, the runs Uni-Pre and the ensemble use).

Deviations from the reference code:
  * Each learner has its own linear head (the model's unimodal head). The official code shares
    one two-layer head across the learners (`common_space`, an argparse type=bool that cannot be
    turned off from the command line).
  * The rate is fixed (model.fusion_params.rate); the official code learns it (an nn.Parameter trained in
    the correction phase).
  * One Adam optimizer over the run with the trainer's warm-up and cosine schedule; the official
    code builds a fresh SGD (momentum 0.9, wd 5e-4, lr 0.01, x0.1 every 30 stages) per phase.
  * Every learner is in the ensemble from the first stage (as the official code with
    --use_pretrain; without it the first stage sees an empty ensemble, p_join = 1).
  * The frozen learners are in eval mode (the official code keeps them in train mode).
  * Validation after every epoch and the best epoch among all epochs (the official code tests
    after each learn + correct stage and keeps the best from stage 3 on).
  * Classification only: the boosting weights and the reconcilement are over class probabilities
    (the paper casts its sentiment datasets as classes).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, ModelConfig, check
from mcrlib.methods.base import EpochState, Method, encoder_runs, load_encoders, method_params, register, task_loss
from mcrlib.models.unimodal_sum_fusion import UnimodalSumFusion


def stage(epoch: int, modalities, epochs_per_stage: int, correct_epochs: int):
    """("learn", m) in the learn epochs of modality m's stage, ("correct", None) in its
    correction epochs; stage s = epoch // (epochs_per_stage + correct_epochs) picks
    modalities[s mod M]."""
    s, within = divmod(epoch, epochs_per_stage + correct_epochs)
    if within < epochs_per_stage:
        return "learn", modalities[s % len(modalities)]
    return "correct", None


def boosting_loss(logits: torch.Tensor, others: torch.Tensor, labels: torch.Tensor, *,
                  w1: float, w2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-sample weights): mean_i (w1 - w2 p_join,i(y_i)) (-log p_i(y_i)) / C with
    p = softmax(logits), p_join = softmax(others) (detached: no gradient to the other learners)."""
    y = labels[:, None]
    nll = -logits.log_softmax(-1).gather(1, y).squeeze(1)
    weights = w1 - w2 * others.detach().softmax(-1).gather(1, y).squeeze(1)
    return (weights * nll).mean() / logits.shape[1], weights


def reconcile_loss(logits: torch.Tensor, previous: torch.Tensor, *, alpha: float,
                   mode: str = "intended") -> torch.Tensor:
    """alpha * MSE(softmax logits, softmax previous) over B x C; `previous` is a frozen learner's
    output (detached). "faithful" detaches `logits` too, as the reference codes: no gradient."""
    current = logits.softmax(-1) if mode == "intended" else logits.detach().softmax(-1)
    return alpha * F.mse_loss(current, previous.detach().softmax(-1))


@register("reconboost")
class ReconBoost(Method):
    display = "ReconBoost"
    rank = 120

    @dataclass(frozen=True)
    class Params:
        w1: float = 5.0                 # weight1 of the boosting loss (README CREMA-D; AVE 4)
        w2: float = 1.0                 # weight2, on p_join (README, all datasets)
        alpha: float = 0.5              # weight of the reconcilement term (argparse, BalanceMM)
        epochs_per_stage: int = 4       # learn epochs of a stage's modality (argparse, README)
        correct_epochs: int = 4         # correction epochs after it (argparse `correct_epoch`)
        boost_rate: float = 1.0         # the ensemble's rate (argparse, README)
        reconcile: Literal["intended", "faithful"] = "intended"   # see the module docstring
        init_from_unimodal: bool = False   # start from the unimodal runs' encoders (--use_pretrain)

        def __post_init__(self):
            check(self.w1 > 0, "method.params.w1", self.w1, "a weight > 0")
            # w2 > w1 would give negative sample weights: the loss would push p_m(y) to 0 on the
            # samples the others solve, without bound.
            check(0 <= self.w2 <= self.w1, "method.params.w2", self.w2, f"a weight in [0, w1 = {self.w1}]")
            check(self.alpha >= 0, "method.params.alpha", self.alpha, "a weight >= 0")
            check(self.epochs_per_stage >= 1, "method.params.epochs_per_stage", self.epochs_per_stage,
                  "an integer >= 1")
            check(self.correct_epochs >= 0, "method.params.correct_epochs", self.correct_epochs,
                  "an integer >= 0")
            check(self.boost_rate > 0, "method.params.boost_rate", self.boost_rate, "a rate > 0")
            check(self.reconcile in ("intended", "faithful"), "method.params.reconcile", self.reconcile,
                  "'intended' or 'faithful'")

    # ---- what a run of this method is ----------------------------------------------------
    @classmethod
    def unsupported(cls, params, task, modalities):
        if task != "classification":
            return "ReconBoost's boosting weights and reconcilement are over class probabilities: classification only"
        return None

    @classmethod
    def model_overrides(cls, params) -> dict:
        return {"fusion": "unimodal_sum", "fusion_params": {"rate": params.boost_rate}}

    @classmethod
    def required_runs(cls, config, modalities) -> dict:
        params = method_params(cls.name, config.method.params)
        if not params.init_from_unimodal:
            return {}
        # The unimodal runs are the ones Uni-Pre and the ensemble use: with this method's model
        # fields (its fusion head) reset to their defaults, else they would be other runs.
        defaults = ModelConfig()
        plain = dataclasses.replace(config.model, **{k: getattr(defaults, k) for k in cls.model_overrides(params)})
        return encoder_runs(dataclasses.replace(config, model=plain), modalities)

    @classmethod
    def initialise(cls, model, runs) -> None:
        load_encoders(model, runs)

    # ---- training ------------------------------------------------------------------------
    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if task != "classification":
            raise ConfigError("method.name='reconboost' needs a classification task: its boosting "
                              "weights and reconcilement are over class probabilities")
        if len(model.modalities) < 2:
            raise ConfigError(f"method 'reconboost' boosts two or more modalities, the model has "
                              f"{list(model.modalities)}")
        # The run layer builds the model with model_overrides; with another head the evaluation
        # would read a fused head that no stage trains.
        head = model.fusion
        expected = UnimodalSumFusion.Params(rate=params.boost_rate)
        if not isinstance(head, UnimodalSumFusion) or head.params != expected:
            found = (f"UnimodalSumFusion with rate {head.params.rate}" if isinstance(head, UnimodalSumFusion)
                     else type(head).__name__)
            raise ConfigError(f"method 'reconboost' with boost_rate={params.boost_rate} needs model.fusion="
                              f"'unimodal_sum' with model.fusion_params={{rate: {params.boost_rate}}} (its "
                              f"model_overrides); the model's head is {found}")
        self.modality_names = tuple(model.modalities)
        self._enter(0)
        self.diagnostics: dict[str, float] = {}

    def _enter(self, epoch: int) -> None:
        """The phase of `epoch`: learner (None in a correction epoch) and the previous stage's
        learner (the reconcilement's f_prev; None in stage 0 and in correction epochs)."""
        p = self.params
        phase, self.learner = stage(epoch, self.modality_names, p.epochs_per_stage, p.correct_epochs)
        s = epoch // (p.epochs_per_stage + p.correct_epochs)
        self.previous = (self.modality_names[(s - 1) % len(self.modality_names)]
                         if phase == "learn" and s >= 1 else None)

    def param_groups(self, model):
        """One group per learner (encoder m + unimodal head m, "modality": m), and a shared
        group first for everything else (the fusion head's parameters, if it has any)."""
        learners = {m: [*model.encoders[m].parameters(), *model.unimodal_heads[m].parameters()]
                    for m in model.modalities}
        owned = {id(p) for params in learners.values() for p in params}
        shared = [p for p in [*model.parameters(), *self.parameters()] if p.requires_grad and id(p) not in owned]
        groups = [{"params": shared, "modality": None}] if shared else []
        return groups + [{"params": [p for p in params if p.requires_grad], "modality": m}
                         for m, params in learners.items()]

    def on_epoch_start(self, state: EpochState) -> None:
        super().on_epoch_start(state)
        self._enter(state.epoch)
        for group in state.param_groups:
            # A learn stage trains its learner only; a correction trains everything.
            group["lr_scale"] = 1.0 if self.learner in (None, group.get("modality")) else 0.0
        if self.learner is not None:
            for m in self.modality_names:
                if m != self.learner:   # frozen: batch-norm statistics kept, no dropout
                    state.model.encoders[m].eval()
                    state.model.unimodal_heads[m].eval()
        index = -1.0 if self.learner is None else float(self.modality_names.index(self.learner))
        self.diagnostics = {"learner": index}   # in the history: which learner trained each epoch

    def loss(self, model, batch, output):
        y = batch["label"]
        zero = output.logits.new_zeros(())
        if self.learner is None:   # global rectification: the task loss of the ensemble
            return {"boost": zero, "reconcile": zero, "task": task_loss(output.logits, y, self.task)}
        f = output.unimodal_logits
        # the ensemble's rate is this method's boost_rate, which __init__ checked the head uses
        others = self.params.boost_rate * sum(f[k] for k in self.modality_names if k != self.learner)
        boost, _ = boosting_loss(f[self.learner], others, y, w1=self.params.w1, w2=self.params.w2)
        reconcile = zero
        if self.previous is not None:
            reconcile = reconcile_loss(f[self.learner], f[self.previous], alpha=self.params.alpha,
                                       mode=self.params.reconcile)
        return {"boost": boost, "reconcile": reconcile, "task": zero}
