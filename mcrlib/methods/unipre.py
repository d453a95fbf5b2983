"""Uni-Pre: encoders initialised from the unimodal models, then the fusion head trained on CE(h).

  unipre_frozen     encoders frozen: no gradient, batch-norm statistics kept (eval mode)
  unipre_finetuned  encoders fine-tuned at `encoder_lr_scale` x the learning rate (paper A.4:
                    one order of magnitude lower, 0.1)

The unimodal models are the runs of the `unimodal` method with the same data, model, training
budget and seed, read through the run cache (the same runs the ensemble combines).
"""
from __future__ import annotations

from dataclasses import dataclass

from mcrlib.config import check
from mcrlib.methods.base import Method, register, unimodal_configs


class _UniPre(Method):
    uses_unimodal_runs = True

    @classmethod
    def pretrained_encoders(cls, config, modalities):
        return unimodal_configs(config, modalities)


@register("unipre_frozen")
class UniPreFrozen(_UniPre):
    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        model.encoders.requires_grad_(False)

    def on_epoch_start(self, epoch, trainer, data):
        super().on_epoch_start(epoch, trainer, data)
        trainer.model.encoders.eval()  # keep batch-norm running statistics and disable dropout


@register("unipre_finetuned")
class UniPreFinetuned(_UniPre):

    @dataclass(frozen=True)
    class Params:
        encoder_lr_scale: float = 0.1

        def __post_init__(self):
            check(self.encoder_lr_scale > 0, "method.params.encoder_lr_scale", self.encoder_lr_scale,
                  "a learning-rate multiplier > 0")

    def param_groups(self, model):
        encoder_ids = {id(p) for p in model.encoders.parameters()}
        rest = [p for p in [*model.parameters(), *self.parameters()] if id(p) not in encoder_ids]
        return [{"params": list(model.encoders.parameters()), "lr_scale": self.params.encoder_lr_scale},
                {"params": rest}]
