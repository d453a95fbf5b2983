"""MCR (Algorithm 1, eq. 6):
L = CE(h, y) + lambda_uni * sum_m CE(u_m, y) + lambda_M * L_MIPD + lambda_con * L_con
    + lambda_ceb * L_CEB.

Unlike the authors' release, whose two-modality classifier computes L_MIPD and L_con but never
adds them to the loss it back-propagates, every enabled term here is part of the loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcrlib.config import check
from mcrlib.losses import CEBDecoder, contrastive_loss, jsd, make_perturbation, mipd_loss, mse_divergence
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
        perturbation: Literal["permute", "noise_latent", "zero_latent"] = "permute"
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
        self.divergence = mse_divergence if task == "regression" else jsd
        dims = [model.encoders[m].out_dim for m in model.modalities]
        self.ceb = CEBDecoder(n_classes=model.n_classes, latent_dims=dims) if params.lambda_ceb > 0 else None
        self.diagnostics: dict[str, float] = {}

    def perturbation_latents(self, model, batch, output):
        """The latents to perturb: this step's training-mode latents (the paper: no extra
        encoder pass), or a second, eval-mode pass of the encoders (the release)."""
        if self.params.latent_source == "train":
            return [output.latents[m] for m in model.modalities]
        was_training = model.training
        model.eval()
        latents = model.encode(batch)
        model.train(was_training)
        return [latents[m] for m in model.modalities]

    def loss(self, model, batch, output):
        p, y = self.params, batch["label"]
        latents = [output.latents[m] for m in model.modalities]
        terms = {"task": task_loss(output.logits, y, self.task)}
        if p.lambda_uni > 0:
            terms["unimodal"] = p.lambda_uni * sum(
                task_loss(u, y, self.task) for u in output.unimodal_logits.values())
        if len(latents) > 1 and p.lambda_mipd > 0:
            game, self.diagnostics = mipd_loss(
                model.fusion, output.logits, self.perturbation_latents(model, batch, output),
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
