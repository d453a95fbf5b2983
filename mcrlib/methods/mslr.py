"""MSLR: Modality-Specific Learning Rates, dynamic variant.

Reference: Yao & Mihalcea, "Modality-specific Learning Rates for Effective Multimodal Additive
Late-fusion", Findings of ACL 2022 (no official code); implemented as the variant the AGM, MLB
and MCR authors ran (lihong2303/AGM_ICCV2023 `run/CREMAD_main.py`, methods "MSLR";
`Bias_Infusion_MSLR` in kkontras/MLB and kkontras/MCR).

Loss: CE(f, y) only. Modality m trains with learning rate lambda_m * (the scheduled rate),
lambda_m = init_m * ratio_m. Before each epoch e >= 1, acc_m = validation accuracy of m's slice
of the fusion head (f_m = W_m z_m + b/M) for the model after epoch e-1; once K earlier values are
in memory ratio_m = acc_m / mean(the K previous acc_m), else 1; then acc_m joins the memory.
Scaled: the learning rate of every parameter of `model.encoders[m]` (its own param group); the
fusion head and unimodal heads keep the base rate. Regression: ratio_m = mean(K previous MAE) / MAE.

How: each encoder has its own optimizer param group, and the trainer sets every group's lr to
base_lr * lr_scale * schedule(step) before each step; MSLR sets the group's lr_scale = lambda_m.

Which accuracy: the record's val_acc_<m> comes from the unimodal heads, which CE(f) never trains
(chance level), so the sliced accuracy is computed in on_epoch_start from `state.model` over
`state.loader("val")`, reading each modality's share of the fused logits
(`ModelOutput.contributions`, W_m z_m + b/M): the model then is the one validated at the end of
epoch e-1, as the reference reads the last validation log at epoch begin.

Defaults and sources: init = (0.9, 1.1) in modality order or {modality: value} (the authors'
CREMA-D/AVE configs: audio 0.9, visual 1.1; the code's fallback is 1, 1); window K = 5 (the
reference's keep_memory_epoch). Always on (the reference's window 0-1500).

Deviations from the reference code: it multiplies modality-m gradients by lambda_m every step,
an lr change only under SGD (Adam normalises it away); here each group's lr really changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register


def mslr_ratio(now: torch.Tensor, previous: torch.Tensor, *, higher_is_better: bool = True) -> torch.Tensor:
    """acc_now / mean(previous) per modality (MAE: the inverse); 1 where the denominator is 0."""
    mean = previous.mean(0)
    num, den = (now, mean) if higher_is_better else (mean, now)
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.ones_like(now))


@register("mslr")
class MSLR(Method):
    display = "MSLR"
    rank = 70

    @dataclass(frozen=True)
    class Params:
        # initial multipliers, in modality order or {modality: value}: the authors' CREMA-D/AVE
        # configs (audio 0.9, visual 1.1)
        init: Any = (0.9, 1.1)
        window: int = 5          # K, epochs averaged in the denominator: the reference's keep_memory_epoch

        def __post_init__(self):
            ok = isinstance(self.init, (list, tuple, Mapping))
            values = list(self.init.values() if isinstance(self.init, Mapping) else self.init) if ok else []
            ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)
            check(ok, "method.params.init", self.init, "multipliers > 0, in modality order or {modality: value}")
            check(self.window >= 1, "method.params.window", self.window, "an integer >= 1")
            # Normalised to floats (a list becomes a tuple, so the frozen params stay immutable).
            object.__setattr__(self, "init", {k: float(v) for k, v in self.init.items()}
                               if isinstance(self.init, Mapping) else tuple(map(float, self.init)))

        def multipliers(self, modalities) -> list[float]:
            if isinstance(self.init, Mapping):
                check(set(self.init) == set(modalities), "method.params.init", self.init,
                      f"one multiplier for each of the modalities {list(modalities)}")
                return [self.init[m] for m in modalities]
            check(len(self.init) == len(modalities), "method.params.init", self.init,
                  f"{len(modalities)} multipliers, one for each of {list(modalities)} in order")
            return list(self.init)

    @classmethod
    def modalities(cls, params, available):
        params.multipliers(available)  # fails early, before any data or model is built
        return available

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        M = len(model.modalities)
        init = torch.tensor(params.multipliers(model.modalities), dtype=torch.float64)
        self.register_buffer("init", init)
        self.register_buffer("scale", init.clone())                       # lambda_m now
        self.register_buffer("memory", torch.zeros(params.window, M, dtype=torch.float64))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # epochs in memory
        self.names = tuple(model.modalities)
        self.diagnostics: dict[str, float] = {}

    def param_groups(self, model):
        encoders = {id(p) for m in model.modalities for p in model.encoders[m].parameters()}
        shared = [p for p in [*model.parameters(), *self.parameters()]
                  if p.requires_grad and id(p) not in encoders]
        # The shared group first: the trainer's history records param_groups[0]["lr"] as "lr".
        return [{"params": shared, "modality": None},
                *({"params": [p for p in model.encoders[m].parameters() if p.requires_grad], "modality": m}
                  for m in model.modalities)]

    # ---- the multipliers --------------------------------------------------------------------
    def observe(self, metric: torch.Tensor) -> torch.Tensor:
        """Feed one epoch's validation metric per modality; returns the new multipliers."""
        metric = metric.to(self.memory)
        ratio = (mslr_ratio(metric, self.memory, higher_is_better=self.task != "regression")
                 if self.filled.item() >= self.params.window else torch.ones_like(metric))
        self.scale.copy_(self.init * ratio)
        self.memory.copy_(torch.cat([self.memory[1:], metric[None]]))   # keep the last K
        self.filled.add_(1)
        return self.scale

    @torch.no_grad()
    def sliced_metric(self, model, batches) -> torch.Tensor:
        """Validation accuracy (MAE for regression) of each f_m = W_m z_m + b/M, over `batches`
        (on the model's device), in eval mode. The sums stay on the device (float64) and are read
        once, at the end."""
        was_training = model.training
        model.eval()
        total, count = None, 0
        for batch in batches:
            output = model(batch)
            if output.contributions is None:
                raise ConfigError("method.name='mslr' slices the fusion head into per-modality parts: "
                                  "it needs a linear fusion head (model.fusion 'linear' or 'cosine')")
            y = batch["label"]
            hits = [(f.reshape(-1) - y.float()).abs() if self.task == "regression" else f.argmax(-1) == y
                    for f in (output.contributions[m] for m in self.names)]
            sums = torch.stack([hit.double().sum() for hit in hits])
            total = sums if total is None else total + sums
            count += len(y)
        model.train(was_training)
        if total is None:
            return torch.zeros(len(self.names), dtype=torch.float64)
        return total.cpu() / max(count, 1)

    # ---- the hook ---------------------------------------------------------------------------
    def on_epoch_start(self, state):
        super().on_epoch_start(state)
        self.diagnostics = {}
        if state.epoch >= 1:  # as the reference: no update before the first validation
            metric = self.sliced_metric(state.model, state.loader("val"))
            self.observe(metric)
            key = "val_mae_sliced" if self.task == "regression" else "val_acc_sliced"
            self.diagnostics = {f"{key}[{m}]": v for m, v in zip(self.names, metric.tolist())}
        for group in state.param_groups:
            if group.get("modality") is not None:
                group["lr_scale"] = self.scale[self.names.index(group["modality"])].item()
        self.diagnostics.update({f"lr_scale[{m}]": s for m, s in zip(self.names, self.scale.tolist())})
