"""L_MIPD: each encoder's importance, measured by perturbing latents (paper eq. 8-10, A.5).

D_{m<-S}: divergence between the clean prediction and the prediction with the modalities in S
perturbed, where every fusion branch except modality m's is detached, so only encoder m (and
W_m) receives this divergence's gradient. D_all(S): no branch detached.

Strategies (the game of section 3.2), summed over the perturbed subsets S:
  greedy        sum_m [ -sum_{S contains m} D_{m<-S} + sum_{S not containing m} D_{m<-S} ]
  independent   -sum_m sum_{S contains m} D_{m<-S}
  collaborative -sum_S D_all(S)
The loss is lambda_M times that sum. All P perturbed copies are evaluated in one pass of the
fusion head on P*B rows per perturbed subset. A latent perturbation runs no encoder again; an
input perturbation's latents come from the caller (MCR passes the perturbed inputs through the
encoders once per step) as `perturbed`.
"""
from __future__ import annotations

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


def mipd_loss(fusion, clean_logits: torch.Tensor, latents: Sequence[torch.Tensor], *,
              strategy: Strategy, perturbation, divergence: Callable,
              subsets: Literal["singletons", "all"] = "singletons",
              detach_reference: bool = False, generator: torch.Generator | None = None,
              names: Sequence[str] | None = None, perturbed: Sequence[torch.Tensor] | None = None):
    """Returns (sum of signed divergences, {"D[perturbed subset]": divergence value}).

    `fusion` must expose `contributions(latents)` and `combine(contributions, detach)`
    (LateLinearFusion). Multiply the sum by lambda_M outside. `perturbed`: each modality's
    perturbed latents (`perturbation.copies * B` rows), given for input perturbations; by default
    the latents are perturbed here, once per modality and step, shared by every subset S.
    """
    n = len(latents)
    names = names or [str(m) for m in range(n)]
    if perturbed is None:
        draw = perturbation.draw(latents[0].shape[0], latents[0].device, generator)
        perturbed = [perturbation.apply(z, draw) for z in latents]
    reference = clean_logits.repeat(perturbation.copies, *[1] * (clean_logits.dim() - 1))
    reference = reference.detach() if detach_reference else reference
    terms = game_terms(strategy, n, perturbed_subsets(n, subsets))
    total = clean_logits.new_zeros(())
    values: dict[str, float] = {}
    for s in sorted({t[2] for t in terms}):
        mixed = [perturbed[m] if m in s else z.repeat(perturbation.copies, 1) for m, z in enumerate(latents)]
        contributions = fusion.contributions(mixed)
        for sign, live, subset in terms:
            if subset != s:
                continue
            detach = [False] * n if live is None else [j != live for j in range(n)]
            d = divergence(fusion.combine(contributions, detach), reference)
            total = total + sign * d
            # Detaching changes gradients, not values: one value per perturbed subset.
            values[f"D[{'+'.join(names[j] for j in s)}]"] = d.item()
    return total, values
