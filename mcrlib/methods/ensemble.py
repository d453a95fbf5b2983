"""Ensemble of the unimodal models: no further training, their outputs combined.

References, the authors' own rules (they differ by benchmark):
  - real benchmarks: the MCR release's `Base_Ensemble_Model` (kkontras/MCR; notes-release.md), the
    pre-trained unimodal models with `max_epoch 0`, fused = standardised(u_1) + standardised(u_2);
    their CREMA-D and AVE configs set `norm_decision: "standardization"`;
  - synthetic data: the authors' development repository (kkontras/Synergy, commit 0cade23,
    `configs/SyntheticFCL/ens.json`) sets `norm_decision: false`, the raw logits summed.
Standardising erases what an uninformative modality's model learned (its logits are rightly
flat, and standardisation stretches them to the other member's range), so the rule matters
where one modality carries little label information.

What it computes: its members are the `unimodal` runs with the same data, model, training budget
and seed, one per modality (`required_runs`, roles "member:<modality>"; the same runs Uni-Pre and
the tables use, trained once and shared through the run cache). For the validation and test
splits, fused = combine(logits_1, ..., logits_M) with `combine` one of
  - standardised_logits: sum_m (l_m - mean(l_m)) / (std(l_m) + 1e-8), the mean and std over the
    whole logit tensor of the split (the release's global mean and std);
  - logit_sum: sum_m l_m (Synergy's synthetic ensemble; the same argmax as summed log-softmax up
    to each member's log-normaliser, which differs per sample);
  - probabilities: log(mean_m softmax(l_m)), probability averaging.
The accuracy under every other rule is recorded beside it as `<split>_acc_fused_<rule>`, so the
report shows how much a comparison with the Ensemble depends on the rule. The members' logits
are kept in the predictions under each modality's name, so the per-modality metrics are the
unimodal models'. Each modality's test contribution is measured at the logit level
(`mcrlib.evaluation.modality_contributions`): a member's test logits stand in for a latent.

Defaults and sources: combine = standardised_logits (the release's ensemble); the synthetic
study sets logit_sum (params.yaml), as the authors' synthetic configs do.

Deviations from the reference code: the mean and std are those of the whole split's logits; the
release's are over the logit tensor of the batch it evaluates (notes-release.md), so there a
sample's fused output can depend on the batch it is evaluated in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mcrlib.evaluation import head_metrics, modality_contributions
from mcrlib.methods.base import Method, method_params, register, unimodal_configs

_PREFIX = "member:"


def standardise(logits: torch.Tensor) -> torch.Tensor:
    return (logits - logits.mean()) / (logits.std() + 1e-8)


RULES = ("standardised_logits", "logit_sum", "probabilities")


def combine(logits: list[torch.Tensor], how: str) -> torch.Tensor:
    if how == "probabilities":
        return torch.stack([l.softmax(-1) for l in logits]).mean(0).log()
    if how == "logit_sum":
        return sum(logits)
    return sum(standardise(l) for l in logits)


@register("ensemble")
class Ensemble(Method):
    display = "Ensemble"
    rank = 0
    earlier_method = False   # the reference the earlier methods are compared with
    trains = False

    @dataclass(frozen=True)
    class Params:
        # the release's ensemble; "logit_sum" (the authors' synthetic configs) sums the raw
        # logits, "probabilities" averages the members' softmax
        combine: Literal["standardised_logits", "logit_sum", "probabilities"] = "standardised_logits"

    @classmethod
    def required_runs(cls, config, modalities):
        """The unimodal runs this ensemble combines, one per modality."""
        return {f"{_PREFIX}{m}": c for m, c in unimodal_configs(config, modalities).items()}

    @classmethod
    def compose(cls, config, runs, data):
        params = method_params(config.method.name, config.method.params)
        members = {role[len(_PREFIX):]: result for role, result in runs.items() if role.startswith(_PREFIX)}
        predictions, metrics = {}, {}
        for split in ("val", "test"):
            first = next(iter(members.values())).predictions[split]
            logits = {m: r.predictions[split]["fused"] for m, r in members.items()}
            preds = {k: v for k, v in first.items() if k in ("label", "group")}
            preds.update(logits, fused=combine(list(logits.values()), params.combine))
            predictions[split] = preds
            metrics.update({f"{split}_{k}": v for k, v in
                            head_metrics(preds, ["fused", *logits], data.task).items()})
            for other in (r for r in RULES if r != params.combine):
                alt = {"label": preds["label"], "fused": combine(list(logits.values()), other)}
                metrics[f"{split}_acc_fused_{other}"] = head_metrics(alt, ["fused"], data.task).get("acc_fused")
        if data.task == "classification":
            # A member's raw test logits are permuted (one randperm over the whole split) or
            # replaced by zeros, then combined as above. For standardised_logits this permutes /
            # zeroes its standardised logits exactly (a row permutation keeps the global mean and
            # std, and standardise(0) = 0); for logit_sum a zeroed member adds nothing; for
            # probabilities a zeroed member contributes the uniform distribution.
            test = predictions["test"]
            contributions = modality_contributions(
                lambda parts: combine([parts[m] for m in members], params.combine),
                {m: test[m] for m in members}, test["label"],
                generator=torch.Generator().manual_seed(config.seed))
            metrics.update({f"test_{k}": v for k, v in contributions.items()})
        return predictions, metrics
