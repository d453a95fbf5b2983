"""Uni-Pre: encoders initialised from the unimodal models, then trained with CE(h) of the fusion head.

Reference: the MCR paper's baselines (appendix A.4) and its release (kkontras/MCR `Base_Model`
with encoders from unimodal checkpoints; "frozen" is its `freeze_encoder`: no gradient, batch-norm
statistics not tracked; notes-release.md).

  unipre_frozen     encoders frozen: no gradient, and in eval mode every epoch (batch-norm
                    running statistics kept, no dropout); CE(h) trains the fusion head only
  unipre_finetuned  encoders fine-tuned at `encoder_lr_scale` x the learning rate (their own
                    optimizer group); the fusion head at the full rate

The encoders come from the `unimodal` runs with the same data, model, training budget and seed
(`required_runs`, roles "encoder:<modality>"; read through the run cache, the same runs the
ensemble combines) and are loaded into the model before training (`initialise`). The unimodal
heads are not loaded: CE(h) never reads them.

Defaults and sources: encoder_lr_scale = 0.1 (paper A.4: one order of magnitude lower).

Deviations from the reference code: the release's `pre_frozen.json` sets `freeze_encoder: false`;
here frozen means frozen.
"""
from __future__ import annotations

from dataclasses import dataclass

from mcrlib.config import check
from mcrlib.methods.base import Method, encoder_runs, load_encoders, register


class _UniPre(Method):

    @classmethod
    def required_runs(cls, config, modalities):
        return encoder_runs(config, modalities)

    @classmethod
    def initialise(cls, model, runs):
        load_encoders(model, runs)


@register("unipre_frozen")
class UniPreFrozen(_UniPre):
    display = "Uni-Pre (frozen)"
    rank = 30

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        model.encoders.requires_grad_(False)

    def on_epoch_start(self, state):
        super().on_epoch_start(state)
        # The trainer has just put the model in train mode: keep the unimodal runs' batch-norm
        # running statistics and disable dropout.
        state.model.encoders.eval()


@register("unipre_finetuned")
class UniPreFinetuned(_UniPre):
    display = "Uni-Pre (fine-tuned)"
    rank = 31

    @dataclass(frozen=True)
    class Params:
        encoder_lr_scale: float = 0.1   # paper A.4: the encoders' lr one order of magnitude lower

        def __post_init__(self):
            check(self.encoder_lr_scale > 0, "method.params.encoder_lr_scale", self.encoder_lr_scale,
                  "a learning-rate multiplier > 0")

    def param_groups(self, model):
        encoder_ids = {id(p) for p in model.encoders.parameters()}
        rest = [p for p in [*model.parameters(), *self.parameters()] if id(p) not in encoder_ids]
        return [{"params": list(model.encoders.parameters()), "lr_scale": self.params.encoder_lr_scale},
                {"params": rest}]
