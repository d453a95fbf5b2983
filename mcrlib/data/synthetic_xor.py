"""Synthetic three-modality data with an XOR-like (synergistic) label, for ConFu's fused term.

Each sample draws two independent uniform factors u, v in {0..C-1}; the label is
y = (u + v) mod C. Modality 1 carries u, modality 2 carries v, modality 3 carries y itself on a
fraction of the samples and nothing on the rest:
    x1 = n1 + mu_{1,u},   x2 = n2 + mu_{2,v},   x3 = n3 + b * mu_{3,y},   b ~ Bernoulli(x3_fraction)
with n_m ~ N(0, I_k), class means of norm `mean_scale` (x3's: `x3_scale`) fixed by the seed, a
fixed random U[0,1]^(k x D) lift per modality (as in mcrlib.data.synthetic) and features
standardised with training statistics.

Because v is uniform and independent of u, y given u is uniform (and so is y given v): x1 alone
and x2 alone are at chance by construction; the pair (x1, x2) determines y. x3 is informative only
on its "x3-informative" group; on the "x3-silent" group, only the pair says anything. Note that
(u + v) mod C is a Latin square in (u, v): no classifier whose logits are a sum of one function of
u and one of v (a late linear fusion head on per-modality encoders) is right on every (u, v); see
docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mcrlib.config import check
from mcrlib.data.spec import DatasetSpec
from mcrlib.data.tensors import TensorSplits

MODALITIES = ("x1", "x2", "x3")
GROUPS = ("x3-informative", "x3-silent")


@dataclass(frozen=True)
class SyntheticXorConfig:
    n_classes: int = 4          # C: u, v and y take C values
    latent_dim: int = 8         # k: dimension of each modality's latent
    input_dim: int = 64         # D: dimension after the fixed random lift
    mean_scale: float = 3.0     # norm of x1's and x2's factor means mu_{1,u}, mu_{2,v}
    x3_scale: float = 1.5       # norm of x3's class means mu_{3,y}
    x3_fraction: float = 0.5    # fraction of samples on which x3 carries y
    n_train: int = 1000
    n_val: int = 500
    n_test: int = 1000
    data_seed: int = 0          # draws means, lifts and samples

    def __post_init__(self):
        check(self.n_classes >= 2, "data.n_classes", self.n_classes, "an integer >= 2")
        check(self.latent_dim >= 1, "data.latent_dim", self.latent_dim, "an integer >= 1")
        check(self.input_dim >= 1, "data.input_dim", self.input_dim, "an integer >= 1")
        for key in ("mean_scale", "x3_scale"):
            check(getattr(self, key) >= 0, f"data.{key}", getattr(self, key), "a number >= 0")
        check(0 <= self.x3_fraction <= 1, "data.x3_fraction", self.x3_fraction, "a fraction in [0, 1]")
        for key in ("n_train", "n_val", "n_test"):
            check(getattr(self, key) >= 2, f"data.{key}", getattr(self, key), "an integer >= 2")


def draw_factors(cfg: SyntheticXorConfig, n: int, gen: torch.Generator):
    """(u, v, y, informative) of n samples: u, v uniform and independent, y = (u + v) mod C,
    informative ~ Bernoulli(x3_fraction) (x3 carries y)."""
    u = torch.randint(cfg.n_classes, (n,), generator=gen)
    v = torch.randint(cfg.n_classes, (n,), generator=gen)
    informative = torch.rand(n, generator=gen) < cfg.x3_fraction
    return u, v, (u + v) % cfg.n_classes, informative


def _draw(cfg: SyntheticXorConfig, n: int, means, lifts, gen: torch.Generator):
    u, v, y, informative = draw_factors(cfg, n, gen)
    centres = (means[0][u], means[1][v], informative[:, None] * means[2][y])
    features = [(torch.randn(n, cfg.latent_dim, generator=gen) + c) @ lift for c, lift in zip(centres, lifts)]
    return features, y, (~informative).long()    # group 0: x3-informative, 1: x3-silent


def _means(cfg: SyntheticXorConfig, scale: float, gen: torch.Generator) -> torch.Tensor:
    mu = torch.randn(cfg.n_classes, cfg.latent_dim, generator=gen)
    return scale * mu / mu.norm(dim=1, keepdim=True)


def load(cfg: SyntheticXorConfig) -> TensorSplits:
    """Train/val/test splits; deterministic in `cfg` (including `cfg.data_seed`)."""
    gen = torch.Generator().manual_seed(cfg.data_seed)
    means = [_means(cfg, cfg.mean_scale, gen), _means(cfg, cfg.mean_scale, gen), _means(cfg, cfg.x3_scale, gen)]
    lifts = [torch.rand(cfg.latent_dim, cfg.input_dim, generator=gen) for _ in MODALITIES]
    splits = {name: _draw(cfg, n, means, lifts, gen)
              for name, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test))}
    stats = [(x.mean(0), x.std(0) + 1e-6) for x in splits["train"][0]]
    out = {}
    for name, (xs, labels, groups) in splits.items():
        out[name] = {**{m: (x - mean) / std for m, x, (mean, std) in zip(MODALITIES, xs, stats)},
                     "label": labels, "group": groups}
    return TensorSplits(out, modalities=MODALITIES, n_classes=cfg.n_classes, group_names=GROUPS)


# Drawn from its params at load: nothing to prepare, no data root.
SPEC = DatasetSpec(name="synthetic_xor", load_config=SyntheticXorConfig, load=load,
                   encoders={m: "mlp" for m in MODALITIES})
