"""L_MIPD: each encoder's importance, measured by perturbing latents (paper eq. 8-10, A.5).

D_{m<-S}: divergence between the clean prediction and the prediction with the modalities in S
perturbed, where every fusion branch except modality m's is detached, so only encoder m (and
W_m) receives this divergence's gradient. D_all(S): no branch detached.

Strategies (the game of section 3.2), summed over the perturbed subsets S:
  greedy        sum_m [ -sum_{S contains m} D_{m<-S} + sum_{S not containing m} D_{m<-S} ]
  independent   -sum_m sum_{S contains m} D_{m<-S}
  collaborative -sum_S D_all(S)
The loss is lambda_M times that sum.

Two paths compute the same values and the same gradients:
  contributions  a linear fusion head (`fusion.additive`, LateLinearFusion) and a perturbation
                 that acts on the batch's rows (`perturbation.acts_on_rows`: permute, zero-latent):
                 h(z_1[pi], z_2) = (W_1 z_1)[pi] + W_2 z_2 + b, so each modality's contribution
                 W_m z_m is computed once on B rows and the P copies are gathers of it (appendix
                 A.6's "almost free"): O(P*B*C) extra work instead of a fusion pass on P*B x d.
  latents        any other head or perturbation (noise-latent, input perturbations, whose
                 perturbed latents the caller passes as `perturbed`): the fusion head's
                 contributions on the P*B perturbed rows of each subset.
Either way, all (live modality, subset) divergences are evaluated in one batched call, and no
value is read back to the host: the diagnostics are detached device tensors.
"""
from __future__ import annotations

import functools
from itertools import combinations
from typing import Callable, Literal, Sequence

import torch

Strategy = Literal["greedy", "independent", "collaborative"]
STRATEGIES = ("greedy", "independent", "collaborative")


def perturbed_subsets(n_modalities: int, which: Literal["singletons", "all"]) -> list[tuple[int, ...]]:
    """Singletons, or every non-empty subset that is not the full set."""
    if which == "singletons" or n_modalities == 1:
        return [(m,) for m in range(n_modalities)] if n_modalities > 1 else []
    return [s for k in range(1, n_modalities) for s in combinations(range(n_modalities), k)]


def game_terms(strategy: Strategy, n_modalities: int, subsets: Sequence[tuple[int, ...]]):
    """[(sign, live modality or None for all, subset)] that make up the strategy's sum."""
    terms = []
    for s in subsets:
        if strategy == "collaborative":
            terms.append((-1.0, None, s))
            continue
        for m in range(n_modalities):
            if m in s:
                terms.append((-1.0, m, s))
            elif strategy == "greedy":
                terms.append((+1.0, m, s))
    return terms


def uses_contributions(fusion, perturbation, perturbed) -> bool:
    """Whether the contributions path applies (see the module docstring)."""
    return (perturbed is None and fusion.additive
            and getattr(perturbation, "acts_on_rows", False))


def mipd_loss(fusion, clean_logits: torch.Tensor, latents: Sequence[torch.Tensor], *,
              strategy: Strategy, perturbation, divergence: Callable,
              subsets: Literal["singletons", "all"] = "singletons",
              detach_reference: bool = False, generator: torch.Generator | None = None,
              names: Sequence[str] | None = None, perturbed: Sequence[torch.Tensor] | None = None,
              path: Literal["auto", "latents"] = "auto"):
    """Returns (sum of signed divergences, {"D[perturbed subset]": detached divergence tensor}).

    `fusion` must expose `contributions(latents)` and `combine(contributions, detach)`
    (LateLinearFusion). `divergence(pred, reference)` returns one value per row (`jsd_rows`,
    `mse_rows`), broadcasting `reference` (B, C) over leading dimensions. Multiply the sum by
    lambda_M outside. `perturbed`: each modality's perturbed latents (`perturbation.copies * B`
    rows), given for input perturbations; by default the latents are perturbed here, once per
    modality and step, shared by every subset S. `path="latents"` forces the general path (tests).
    """
    n, batch, copies = len(latents), latents[0].shape[0], perturbation.copies
    names = names or [str(m) for m in range(n)]
    terms = game_terms(strategy, n, perturbed_subsets(n, subsets))
    if not terms:
        return clean_logits.new_zeros(()), {}
    chosen = sorted({t[2] for t in terms})
    if path == "auto" and uses_contributions(fusion, perturbation, perturbed):
        return _contribution_path(fusion, clean_logits, latents, terms, chosen, perturbation, divergence,
                                  detach_reference, generator, names)
    if perturbed is None:
        draw = perturbation.draw(batch, latents[0].device, generator)
        perturbed = [perturbation.apply(z, draw) for z in latents]
    per_subset = []
    for s in chosen:
        mixed = [perturbed[m] if m in s else z.repeat(copies, 1) for m, z in enumerate(latents)]
        per_subset.append([c.view(copies, batch, -1) for c in fusion.contributions(mixed)])
    # stacked[m]: modality m's contribution under every chosen subset, (subsets, P, B, C)
    stacked = [torch.stack([contribs[m] for contribs in per_subset]) for m in range(n)]
    lives = sorted({t[1] for t in terms}, key=lambda live: -1 if live is None else live)
    # One prediction per live modality: only its branch keeps its gradient (None: every branch).
    predictions = torch.stack([fusion.combine(stacked, [live is not None and j != live for j in range(n)])
                               for live in lives])             # (lives, subsets, P, B, C)
    reference = clean_logits.detach() if detach_reference else clean_logits
    d = divergence(predictions, reference).flatten(2).mean(-1)  # (lives, subsets)
    signs = [[0.0] * len(chosen) for _ in lives]
    for sign, live, s in terms:
        signs[lives.index(live)][chosen.index(s)] = sign
    total = (d * torch.tensor(signs, dtype=d.dtype, device=d.device)).sum()
    # Detaching changes gradients, not values: one value per perturbed subset.
    values = {f"D[{'+'.join(names[j] for j in s)}]": d[0, i].detach() for i, s in enumerate(chosen)}
    return total, values


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(weight)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        weight, = ctx.saved_tensors
        return grad * weight, None


def scale_grad(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x broadcast to x * weight's shape in the forward pass, its values unchanged; `weight` times
    the gradient in the backward pass (weight 0: x detached). One autograd node, no arithmetic
    in the forward pass."""
    shape = torch.broadcast_shapes(x.shape, weight.shape)
    return _ScaleGrad.apply(x.expand(shape), weight)


@functools.lru_cache(maxsize=64)
def _gradient_weights(terms: tuple, chosen: tuple, n: int, device) -> torch.Tensor:
    """(subsets, n + 1): per perturbed subset, the sum of the signs of each modality's live terms,
    and in the last column of all its terms (the bias and the reference). Built once per game and
    device: a few dozen tiny tensor ops per step otherwise."""
    weight = [[0.0] * (n + 1) for _ in chosen]
    for sign, live, s in terms:
        row = weight[chosen.index(s)]
        for m in range(n) if live is None else [live]:
            row[m] += sign
        row[n] += sign
    return torch.tensor(weight, device=device)


def _contribution_path(fusion, clean_logits, latents, terms, chosen, perturbation, divergence,
                       detach_reference, generator, names):
    """The strategy's sum from one divergence per perturbed subset S. Every term on S has the
    same value D(S) (detaching changes gradients only), and term (sign, live m, S) sends
    sign * dD(S)/dc to c = m's contribution and to the shared bias (and the reference, unless
    detached). So each contribution enters D(S) with its gradient scaled by the sum of the signs
    of its live terms on S, the bias and reference by the sum of all signs on S: the same
    gradients as one divergence per term, with a forward value equal to the strategy's sum."""
    n, batch, copies = len(latents), latents[0].shape[0], perturbation.copies
    draw = perturbation.draw(batch, latents[0].device, generator)
    base = fusion.contributions(latents)                             # W_m z_m on B rows
    moved = [perturbation.apply(c, draw).view(copies, batch, -1) for c in base]
    weight = _gradient_weights(tuple(terms), tuple(chosen), n, clean_logits.device)
    # (subsets, P, B, C) per modality: gathered copies where perturbed, broadcast rows otherwise
    stacked = [torch.stack([moved[m] if m in s else c.expand(copies, *c.shape) for s in chosen])
               for m, c in enumerate(base)]
    shape = (len(chosen), 1, 1, 1)
    prediction = scale_grad(fusion.bias, weight[:, n].view(shape))
    for m in range(n):
        prediction = prediction + scale_grad(stacked[m], weight[:, m].view(shape))
    reference = clean_logits.detach() if detach_reference else clean_logits
    reference = scale_grad(reference.unsqueeze(0), weight[:, n].view(len(chosen), 1, 1)).unsqueeze(1)
    d = divergence(prediction, reference).flatten(1).mean(-1)       # (subsets,): D(S)
    total_sign = weight[:, n]
    total = (total_sign * d.detach()).sum() + (d - d.detach()).sum()
    values = {f"D[{'+'.join(names[j] for j in s)}]": d[i].detach() for i, s in enumerate(chosen)}
    return total, values
