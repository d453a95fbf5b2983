"""The reference points: joint training, multi-loss and unimodal training."""
from __future__ import annotations

from dataclasses import dataclass

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register, task_loss


@register("joint")
class JointTraining(Method):
    """Single loss on the fused prediction: CE(h, y)."""
    display = "Joint"
    rank = 10


@register("multiloss")
class MultiLoss(Method):
    """CE(h, y) + uni_weight * sum_m CE(u_m, y) with each modality's own head."""
    display = "Multi-Loss"
    rank = 20

    @dataclass(frozen=True)
    class Params:
        uni_weight: float = 1.0   # weight of the unimodal losses (1: Multi-Loss as in the MLB configs)

        def __post_init__(self):
            check(self.uni_weight >= 0, "method.params.uni_weight", self.uni_weight, "a weight >= 0")

    def loss(self, model, batch, output):
        y = batch["label"]
        uni = sum(task_loss(u, y, self.task) for u in output.unimodal_logits.values())
        return {"task": task_loss(output.logits, y, self.task), "unimodal": self.params.uni_weight * uni}


@register("unimodal")
class Unimodal(Method):
    """One encoder and its linear head trained alone on one modality."""
    display = "Unimodal"
    rank = 5
    earlier_method = False   # a member of the Ensemble, not a multimodal method

    @dataclass(frozen=True)
    class Params:
        modality: str = "x1"      # the modality trained alone (the synthetic datasets' first)

    @classmethod
    def modalities(cls, params, available):
        if params.modality not in available:
            raise ConfigError(f"method.params.modality={params.modality!r} is not a modality of "
                              f"this dataset: expected one of {list(available)}")
        return (params.modality,)
