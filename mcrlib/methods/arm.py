"""ARM: Asymmetric Reinforcing against Multi-modal Representation Bias.

Reference: Gao, Cao, Zhu, Wang, Hu, AAAI 2025 (arXiv 2501.01240); code Gao-xiyuan/ARM, an
MMPretrain 1.2.0 fork (`mmpretrain/models/necks/gap.py`, `heads/linear_head.py`, `heads/cls_head.py`,
`necks/MI_tool.py`, config `configs/arm/resnet18_ks.py`).

What it changes: the fusion head, `mcrlib.models.arm_fusion.ARMFusion`, which the method asks
for through `model_overrides` (model.fusion = 'arm'; the run's config names it):
  z_f = fuse([z_1; z_2]) (Linear 2d -> d); one shared classifier g (Linear d -> C) on z_f, z_1, z_2;
  p_f, p_1, p_2 = batch means of the true-class softmax probability of g(z_f), g(z_1), g(z_2);
  NMI_m = NMI(z_m; z_f), NCMI_m = normalised CMI(z_m; z_f | z_other), II_m = NMI_m - NCMI_m,
  C_1 = p_f NMI_1 + p_2 II_1,  C_2 = p_f NMI_2 + p_1 II_2   (detached numbers, as the release's),
  logits = g(refuse([(C_2/C_1) z_1 ; (C_1/C_2) z_2]))  (refuse: Linear 2d -> d)
so the lower-contribution modality's features are amplified (and the other's damped).
Loss: CE(logits, y) only. Each training step first computes C from the current batch
(`arm_estimate`, in this file: the head holds only the buffer), then the logits, as the release
does; C stays in the head's buffer, which `model(batch)` (evaluation) uses.
Estimators (histogram plug-in, on the batch's features flattened so that element (i, k) of z_m is
paired with element (i, k) of z_f; equal-width bins over each variable's [min, max], as numpy's
histogram2d/histogramdd): NMI = 2 I(X;Y) / (H(X) + H(Y)) with 30 bins; NCMI = I(X;Y|Z) /
(H(X|Z) + H(Y|Z)) with 2 bins (the release's normalisation: no factor 2, so NCMI <= 1/2).
No encoder or head gradient is rescaled; the constant scale factors scale each encoder's gradient
through the chain rule.

Defaults and sources (release): nmi_bins = 30, cmi_bins = 2 (`linear_head.py`); z_f = Linear(2d, d)
(`gap.py` fc_out 1024 -> 512). The release trains ResNet-18s on Kinetics-Sounds with SGD lr 0.01,
momentum 0.9, weight decay 1e-4, batch 128, 30 epochs (the project's train config applies here).

Not implemented, and why: the paper's balanced min-max loss and dynamic sample-level re-sampling
(named in the paper's summaries) are absent from the release, and their formulas could not be
verified (only the paper's abstract and opening were retrievable). Re-sampling would also need a
hook on the training loader, which the Method interface does not have.
Deviations from the release code:
  * CMI is the standard plug-in I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z) with
    H(X|Z) = H(X,Z) - H(Z). The release's `conditional_entropy` divides by p(z) broadcast along the
    wrong axis and sums unweighted conditional entropies over z, which is not a CMI.
  * The fused-feature Linear is frozen: in the release it only feeds detached estimates and never
    receives a gradient (hence `find_unused_parameters=True`); freezing makes that explicit.
  * Evaluation uses the contributions of the last training step; the release recomputes them on
    each test batch, with the test labels (its p's need the labels).
  * Contributions are floored at 1e-6 (a zero would divide by zero; the release has no guard).
  * PyTorch's default Linear initialisation (the release: N(0, 0.01) for its head Linears).
  * Exactly two modalities with equal latent widths (the shared classifier and the elementwise
    pairing need it), classification only (p is a class probability): otherwise a ConfigError.
  * `model.unimodal_heads` are not trained (as joint training); ARM's own unimodal read-outs
    g(z_m) are available as `model.fusion.classifier`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register, task_loss
from mcrlib.models import arm_fusion   # the head's one home (not re-exported here)


def _bin(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Equal-width bin index over [min, max], the top edge in the last bin (numpy's convention)."""
    lo, hi = x.min(), x.max()
    if hi <= lo:
        return torch.zeros_like(x, dtype=torch.long)
    return ((x - lo) / (hi - lo) * bins).long().clamp_(0, bins - 1)


def _entropy(*binned: torch.Tensor, bins: int) -> float:
    """Plug-in joint entropy (nats) of one or more binned variables."""
    code = torch.zeros_like(binned[0])
    for b in binned:
        code = code * bins + b
    p = torch.bincount(code).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def normalized_mi(x, y, *, bins: int = 30) -> float:
    """NMI = 2 I(X;Y) / (H(X) + H(Y)) from a bins x bins histogram of the flattened x, y."""
    bx, by = (_bin(v.detach().reshape(-1).double().cpu(), bins) for v in (x, y))
    hx, hy = _entropy(bx, bins=bins), _entropy(by, bins=bins)
    mi = hx + hy - _entropy(bx, by, bins=bins)
    return 2 * mi / (hx + hy) if hx + hy > 0 else 0.0


def normalized_cmi(x, y, z, *, bins: int = 2) -> float:
    """I(X;Y|Z) / (H(X|Z) + H(Y|Z)) from a bins^3 histogram of the flattened x, y, z."""
    bx, by, bz = (_bin(v.detach().reshape(-1).double().cpu(), bins) for v in (x, y, z))
    hz = _entropy(bz, bins=bins)
    hx_z, hy_z = _entropy(bx, bz, bins=bins) - hz, _entropy(by, bz, bins=bins) - hz
    cmi = hx_z + hy_z - (_entropy(bx, by, bz, bins=bins) - hz)
    return cmi / (hx_z + hy_z) if hx_z + hy_z > 0 else 0.0


def arm_contributions(nmi, ncmi, p_fused: float, p_uni) -> list[float]:
    """C_m = p_f NMI_m + p_other II_m with II_m = NMI_m - NCMI_m (two modalities)."""
    return [p_fused * nmi[m] + p_uni[1 - m] * (nmi[m] - ncmi[m]) for m in (0, 1)]


@torch.no_grad()
def arm_estimate(fusion, latents, label, *, nmi_bins: int = 30, cmi_bins: int = 2) -> dict:
    """Contributions of the batch (detached numbers) and the terms they are made of, from the
    ARM head's frozen `fuse` (z_f) and shared `classifier` (the p's): {"p": [p_f, p_1, p_2],
    "nmi": [NMI_1, NMI_2], "ncmi": [NCMI_1, NCMI_2], "C": [C_1, C_2]}."""
    z1, z2 = latents
    zf = fusion.fuse_latents(z1, z2)
    p = [fusion.classifier(z).softmax(-1).gather(1, label.view(-1, 1)).mean().item()
         for z in (zf, z1, z2)]
    nmi = [normalized_mi(z, zf, bins=nmi_bins) for z in (z1, z2)]
    ncmi = [normalized_cmi(z, zf, other, bins=cmi_bins) for z, other in ((z1, z2), (z2, z1))]
    return {"p": p, "nmi": nmi, "ncmi": ncmi, "C": arm_contributions(nmi, ncmi, p[0], p[1:])}


@register("arm")
class ARM(Method):
    display = "ARM"
    rank = 100

    @dataclass(frozen=True)
    class Params:
        nmi_bins: int = 30   # histogram bins per variable for NMI(z_m; z_f) (release)
        cmi_bins: int = 2    # histogram bins per variable for CMI(z_m; z_f | z_other) (release)

        def __post_init__(self):
            check(self.nmi_bins >= 2, "method.params.nmi_bins", self.nmi_bins, "an integer >= 2")
            check(self.cmi_bins >= 2, "method.params.cmi_bins", self.cmi_bins, "an integer >= 2")

    @classmethod
    def unsupported(cls, params, task, modalities):
        if task != "classification":
            return "ARM is classification only: its contributions weigh true-class probabilities"
        if len(modalities) != 2:
            return f"ARM re-fuses exactly two modalities, not {len(modalities)}"
        return None

    @classmethod
    def model_overrides(cls, params) -> dict:
        return {"fusion": "arm", "fusion_params": {}}

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if len(model.modalities) != 2:
            raise ConfigError(f"method 'arm' needs exactly two modalities, the model has "
                              f"{list(model.modalities)}; pick two modalities")
        dims = {model.encoders[m].out_dim for m in model.modalities}
        if len(dims) != 1:
            raise ConfigError(f"method 'arm' needs equal latent widths (one classifier is shared by "
                              f"z_f and every z_m), got {sorted(dims)}")
        if task != "classification":
            raise ConfigError("method 'arm' is classification only: its contributions weigh "
                              "true-class probabilities")
        if not isinstance(model.fusion, arm_fusion.ARMFusion):
            raise ConfigError(f"method 'arm' needs model.fusion='arm' (its model_overrides), the "
                              f"model's head is {type(model.fusion).__name__}")
        self.diagnostics: dict[str, float] = {}

    def loss(self, model, batch, output):
        y = batch["label"]
        latents = [output.latents[m] for m in model.modalities]
        est = arm_estimate(model.fusion, latents, y, nmi_bins=self.params.nmi_bins,
                           cmi_bins=self.params.cmi_bins)
        model.fusion.set_contributions(est["C"])
        logits = model.fusion(latents)   # re-fused with this batch's contributions (release order)
        s = [v.item() for v in model.fusion.scales()]
        names = model.modalities
        self.diagnostics = {"p[fused]": est["p"][0],
                            **{f"{k}[{m}]": v for i, m in enumerate(names) for k, v in
                               (("p", est["p"][1 + i]), ("nmi", est["nmi"][i]), ("ncmi", est["ncmi"][i]),
                                ("C", est["C"][i]), ("scale", s[i]))}}
        return {"task": task_loss(logits, y, self.task)}
