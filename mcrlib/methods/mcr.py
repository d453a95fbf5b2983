"""MCR, the Multimodal Competition Regularizer: the method this project reproduces.

Reference: Kontras, Strypsteen, Chatzichristos, Liang, Blaschko, De Vos, "Multimodal Fusion
Balancing Through Game-Theoretic Regularization" (arXiv 2411.07335), Algorithm 1 and eq. 6; code
kkontras/MCR. docs/methods.md lists what this port follows and where it deviates.

Loss: L = CE(h, y) + lambda_uni * sum_m CE(u_m, y) + lambda_M * L_MIPD + lambda_con * L_con
          + lambda_ceb * L_CEB
(L1 instead of CE and MSE instead of JSD for regression). L_MIPD (mcrlib.losses.mipd_loss) is the
game over the divergences of the fused output when modality subsets are perturbed, each routed to
one encoder by detaching the other fusion branches; L_con a supervised contrastive loss on the
pooled features of all modalities; L_CEB the reconstruction of the features from the detached
fused logits. With init_from_unimodal, the encoders start from the unimodal runs' (`required_runs`,
roles "encoder:<modality>", loaded by `initialise`).

Defaults and sources: lambda_M 0.1, lambda_uni 0.01, lambda_con 1, lambda_ceb 0, P = 32 copies,
greedy strategy, tau 0.5: METHOD.md's CREMA-D ResNet-18 row (the release's run script); singleton
subsets (paper section 3.2; "all" is appendix A.5); latents of the training-mode pass (paper
Algorithm 1, A.6; the release's eval-mode re-forward is `latent_source: eval_reforward`); the
reference h_clean not detached and NT-Xent with labels (the release; the paper's SupCon eq. 15 is
`contrastive: supcon`); init_from_unimodal false (the profiles set it where METHOD.md's table
says the encoders are pre-trained unimodally); contrastive_terms pairwise (the paper's L_con alone).

Option, not in the paper: `contrastive_terms: fused` adds ConFu's fused-modality term (Koutoupis,
Zervou, Kontras, De Vos, Tsakalides, Tsagkatakis, arXiv 2511.21331; code estafons/confu),
lambda_con * mcrlib.losses.fused_contrastive_loss: each pair of modalities, fused as the
normalised sum of their normalised latents, against each remaining modality, in L_con's form and
temperature; logged as its own term, "fused". It needs M >= 3 (`unsupported`). Our reading, not
ConFu's code: no learned fusion MLP (ConFu: one per pair, on the concatenated encoder features),
L_con's supervised form and tau 0.5 (ConFu: CLIP InfoNCE on sample identity, tau 0.07), and the
term is added to L_con at its weight (ConFu: the mean of the six InfoNCE terms); docs/methods.md.

Deviations from the reference code: the release's two-modality classifier computes L_MIPD and
L_con but never adds them to the loss it back-propagates; here every enabled term is part of it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mcrlib.config import ConfigError, check
from mcrlib.losses import CEBDecoder, contrastive_loss, fused_contrastive_loss, jsd_rows, make_perturbation, mipd_loss, mse_rows
from mcrlib.methods.base import Method, encoder_runs, load_encoders, method_params, register, task_loss


@register("mcr")
class MCR(Method):
    display = "MCR"
    rank = 200
    earlier_method = False   # the method the earlier ones are compared with

    @dataclass(frozen=True)
    class Params:
        # Defaults: METHOD.md's CREMA-D ResNet-18 row (the release's run script) unless noted.
        lambda_mipd: float = 0.1     # lambda_M, weight of the game term
        lambda_uni: float = 0.01     # weight of the unimodal heads' losses
        lambda_con: float = 1.0      # weight of the supervised contrastive term (1 in every row)
        lambda_ceb: float = 0.0      # weight of the conditional entropy bottleneck term
        copies: int = 32             # P, perturbed copies per batch (paper: 32)
        strategy: Literal["greedy", "independent", "collaborative"] = "greedy"   # paper's default game
        subsets: Literal["singletons", "all"] = "singletons"   # paper 3.2; "all": appendix A.5
        # the paper's permutation; the others are appendix C.1's alternatives (Table 4)
        perturbation: Literal["permute", "noise_latent", "zero_latent", "noise_input", "zero_input"] = "permute"
        latent_source: Literal["train", "eval_reforward"] = "train"   # paper Alg. 1, A.6 (release: eval)
        detach_reference: bool = False   # the release's main model keeps h_clean attached
        contrastive: Literal["ntxent", "supcon"] = "ntxent"   # the release; the paper's eq. 15: supcon
        # pairwise: L_con alone (the paper); fused: + ConFu's fused-pair-vs-third term (M >= 3)
        contrastive_terms: Literal["pairwise", "fused"] = "pairwise"
        temperature: float = 0.5     # tau (every row)
        init_from_unimodal: bool = False   # start from the unimodal runs' encoders (profiles: as METHOD.md)

        def __post_init__(self):
            for key in ("lambda_mipd", "lambda_uni", "lambda_con", "lambda_ceb"):
                check(getattr(self, key) >= 0, f"method.params.{key}", getattr(self, key), "a weight >= 0")
            check(self.copies >= 1, "method.params.copies", self.copies, "P >= 1 perturbed copies")
            check(self.temperature > 0, "method.params.temperature", self.temperature, "a temperature > 0")

    @classmethod
    def unsupported(cls, params, task, modalities):
        if params.contrastive_terms == "fused" and len(modalities) < 3:
            return (f"MCR's fused contrastive term (contrastive_terms: fused, ConFu) aligns a fused pair of "
                    f"modalities with a third: it needs at least 3 modalities, not {len(modalities)}")
        return None

    @classmethod
    def required_runs(cls, config, modalities):
        # the validated params: config.method.params is the raw dict, without the defaults
        if method_params(config.method.name, config.method.params).init_from_unimodal:
            return encoder_runs(config, modalities)
        return {}

    @classmethod
    def initialise(cls, model, runs):
        load_encoders(model, runs)

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        reason = self.unsupported(params, task, tuple(model.modalities))
        if reason:
            raise ConfigError(f"method 'mcr' cannot run on modalities {list(model.modalities)}: {reason}")
        self.perturbation = make_perturbation(params.perturbation, params.copies)
        self.divergence = mse_rows if task == "regression" else jsd_rows
        dims = [model.encoders[m].out_dim for m in model.modalities]
        if params.lambda_con > 0 and len(set(dims)) > 1:
            widths = {m: d for m, d in zip(model.modalities, dims)}
            raise ConfigError(f"method 'mcr': L_con compares the modalities' latents in one space, so their "
                              f"widths must be equal, got {widths}; give every encoder the same output width "
                              "(model.latent_dim, or each model.encoders entry's head d_model) or set lambda_con: 0")
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
            if p.contrastive_terms == "fused":
                terms["fused"] = p.lambda_con * fused_contrastive_loss(
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
