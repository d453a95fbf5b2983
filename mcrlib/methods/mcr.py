"""MCR (Algorithm 1, eq. 6):
L = CE(h, y) + lambda_uni * sum_m CE(u_m, y) + lambda_M * L_MIPD + lambda_con * L_con
    + lambda_ceb * L_CEB.

Unlike the authors' release, whose two-modality classifier computes L_MIPD and L_con but never
adds them to the loss it back-propagates, every enabled term here is part of the loss.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mcrlib.config import check
from mcrlib.losses import CEBDecoder, contrastive_loss, jsd_rows, make_perturbation, mipd_loss, mse_rows
from mcrlib.methods.base import Method, register, task_loss, unimodal_configs


@register("mcr")
class MCR(Method):
    uses_unimodal_runs = True   # with init_from_unimodal

    @dataclass(frozen=True)
    class Params:
        lambda_mipd: float = 0.1     # lambda_M, weight of the game term
        lambda_uni: float = 0.01     # weight of the unimodal heads' losses
        lambda_con: float = 1.0      # weight of the supervised contrastive term
        lambda_ceb: float = 0.0      # weight of the conditional entropy bottleneck term
        copies: int = 32             # P, perturbed copies per batch
        strategy: Literal["greedy", "independent", "collaborative"] = "greedy"
        subsets: Literal["singletons", "all"] = "singletons"
        perturbation: Literal["permute", "noise_latent", "zero_latent", "noise_input", "zero_input"] = "permute"
        latent_source: Literal["train", "eval_reforward"] = "train"
        detach_reference: bool = False
        contrastive: Literal["ntxent", "supcon"] = "ntxent"
        temperature: float = 0.5
        init_from_unimodal: bool = False   # start from the unimodal runs' encoders (METHOD.md table)

        def __post_init__(self):
            for key in ("lambda_mipd", "lambda_uni", "lambda_con", "lambda_ceb"):
                check(getattr(self, key) >= 0, f"method.params.{key}", getattr(self, key), "a weight >= 0")
            check(self.copies >= 1, "method.params.copies", self.copies, "P >= 1 perturbed copies")
            check(self.temperature > 0, "method.params.temperature", self.temperature, "a temperature > 0")

    @classmethod
    def pretrained_encoders(cls, config, modalities):
        if config.method.params.get("init_from_unimodal", False):
            return unimodal_configs(config, modalities)
        return {}

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        self.perturbation = make_perturbation(params.perturbation, params.copies)
        self.divergence = mse_rows if task == "regression" else jsd_rows
        dims = [model.encoders[m].out_dim for m in model.modalities]
        self.ceb = CEBDecoder(n_classes=model.n_classes, latent_dims=dims) if params.lambda_ceb > 0 else None
        self.diagnostics: dict[str, torch.Tensor] = {}   # detached, read by the trainer at its log points

    def perturbation_latents(self, model, batch, output):
        """(latents, perturbed latents or None) for the game. The latents are this step's
        training-mode latents (the paper: no extra encoder pass), or a second, eval-mode pass of
        the encoders (the release). An input perturbation also passes its perturbed inputs, all
        copies stacked, through the encoders in that same mode: one extra pass per modality on
        copies * B rows (None for a latent perturbation, which mipd_loss applies itself)."""
        eval_mode = self.params.latent_source == "eval_reforward"
        latents, perturbed = output.latents, None
        if eval_mode:
            with evaluation_mode(model):
                latents = model.encode(batch)
        if self.perturbation.space == "input":
            draw = self.perturbation.draw(batch["label"].shape[0], batch["label"].device)
            inputs = {m: self.perturbation.apply(batch[m], draw) for m in model.modalities}
            with evaluation_mode(model) if eval_mode else running_stats_kept(model):
                perturbed = model.encode(inputs)
        return ([latents[m] for m in model.modalities],
                None if perturbed is None else [perturbed[m] for m in model.modalities])

    def loss(self, model, batch, output):
        p, y = self.params, batch["label"]
        latents = [output.latents[m] for m in model.modalities]
        terms = {"task": task_loss(output.logits, y, self.task)}
        if p.lambda_uni > 0:
            terms["unimodal"] = p.lambda_uni * unimodal_loss(list(output.unimodal_logits.values()), y, self.task)
        if len(latents) > 1 and p.lambda_mipd > 0:
            clean, perturbed = self.perturbation_latents(model, batch, output)
            game, self.diagnostics = mipd_loss(
                model.fusion, output.logits, clean, perturbed=perturbed,
                strategy=p.strategy, perturbation=self.perturbation, divergence=self.divergence,
                subsets=p.subsets, detach_reference=p.detach_reference, names=model.modalities)
            terms["mipd"] = p.lambda_mipd * game
        if len(latents) > 1 and p.lambda_con > 0:
            labels = None if self.task == "regression" else y
            terms["contrastive"] = p.lambda_con * contrastive_loss(
                latents, labels, form=p.contrastive, temperature=p.temperature)
        if self.ceb is not None:
            terms["ceb"] = p.lambda_ceb * self.ceb(output.logits, latents)
        return terms


def unimodal_loss(logits: list, y, task: str):
    """sum_m loss(u_m, y). For classification, one cross-entropy over the heads' stacked rows
    times M: the same value (every head has B rows) in one kernel instead of M and their sum."""
    if task == "classification":
        return F.cross_entropy(torch.cat(logits), y.repeat(len(logits))) * len(logits)
    return sum(task_loss(u, y, task) for u in logits)


@contextmanager
def evaluation_mode(model):
    """Passes in evaluation mode (batch-norm running statistics, no dropout), as the release's
    re-forward; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def running_stats_kept(model):
    """Training-mode passes that leave every batch-norm layer's running statistics as they were:
    perturbed inputs (zeros, noise) are not data the evaluation-mode model should normalise with.
    The passes update throwaway copies; the original buffers are never written, so the clean
    forward's autograd graph, which saved them, stays valid."""
    names = ("running_mean", "running_var", "num_batches_tracked")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    kept = [{k: getattr(m, k) for k in names} for m in norms]
    for norm, buffers in zip(norms, kept):
        for name, buffer in buffers.items():
            setattr(norm, name, buffer.clone())
    try:
        yield
    finally:
        for norm, buffers in zip(norms, kept):
            for name, buffer in buffers.items():
                setattr(norm, name, buffer)
