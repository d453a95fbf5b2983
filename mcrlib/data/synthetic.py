"""Synthetic two-modality data with shared and unique label information (paper section 4.1).

Each sample belongs to one group: "shared" (both modalities carry the label), "unique-1" (only
modality 1 does) or "unique-2" (only modality 2 does). Two generators (`generator`):
- "class_means" (ours): an informative modality is x_m = n_m + mu_{m,y}, with n_m ~ N(0, I_k)
  and random class means of norm `mean_scale` fixed by the seed: the classes are unordered;
- "label_shift" (the paper's literal reading of section 4.1, X_m = N_m + Y): the label itself is
  added along one fixed direction, x_m = n_m + mean_scale * y * 1_k / sqrt(k), so the classes lie
  in order, `mean_scale` apart; mean_scale = sqrt(k) adds y to every coordinate, the text's
  X_m = N_m + Y exactly.
An uninformative modality is x_m = n_m. Each modality's latent has k_m dimensions: k_1 =
`latent_dim`, k_2 = `latent_dim2` (0: the same; the authors' synthetic config has 100 features for
x1 and 10 for x2). A fixed random matrix U[0,1]^(k_m x D) per modality lifts x_m to D dimensions
(as in FactorCL), and features are standardised with training statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mcrlib.config import check
from mcrlib.data.spec import DatasetSpec
from mcrlib.data.tensors import TensorSplits

GROUPS = ("shared", "unique-1", "unique-2")
GENERATORS = ("class_means", "label_shift")


@dataclass(frozen=True)
class SyntheticConfig:
    n_classes: int = 5
    latent_dim: int = 16        # k: dimension of each modality's latent n_m
    input_dim: int = 256        # D: dimension after the fixed random lift
    mean_scale: float = 1.0     # norm of each class mean vector mu_{m,y}
    shared: float = 0.5         # s: fraction of shared samples
    unique1: float = 0.25       # u1: fraction carrying the label in modality 1 only
    unique2: float = 0.25       # u2: fraction carrying the label in modality 2 only
    n_train: int = 2000
    n_val: int = 1000
    n_test: int = 2000
    data_seed: int = 0          # draws class means and lifts; the run seed draws nothing here
    generator: str = "class_means"   # or "label_shift" (x_m = n_m + mean_scale * y * 1/sqrt(k): the paper's text)
    latent_dim2: int = 0        # k_2, x2's latent dimension; 0: latent_dim

    def __post_init__(self):
        check(self.generator in GENERATORS, "data.generator", self.generator, f"one of {list(GENERATORS)}")
        check(self.latent_dim2 >= 0, "data.latent_dim2", self.latent_dim2, "an integer >= 0 (0: latent_dim)")
        check(self.n_classes >= 2, "data.n_classes", self.n_classes, "an integer >= 2")
        check(self.latent_dim >= 1, "data.latent_dim", self.latent_dim, "an integer >= 1")
        check(self.input_dim >= 1, "data.input_dim", self.input_dim, "an integer >= 1")
        check(self.mean_scale >= 0, "data.mean_scale", self.mean_scale, "a number >= 0")
        for key in ("shared", "unique1", "unique2"):
            value = getattr(self, key)
            check(0 <= value <= 1, f"data.{key}", value, "a fraction in [0, 1]")
        total = self.shared + self.unique1 + self.unique2
        check(abs(total - 1) < 1e-6, "data.shared+unique1+unique2", round(total, 6),
              "fractions that sum to 1")
        for key in ("n_train", "n_val", "n_test"):
            check(getattr(self, key) >= 2, f"data.{key}", getattr(self, key), "an integer >= 2")

    @staticmethod
    def for_ratio(ratio: float, unique2: float, **rest) -> "SyntheticConfig":
        """Fractions with u1/s = ratio and u2 fixed: s = (1 - u2) / (1 + ratio)."""
        check(ratio >= 0, "ratio", ratio, "a ratio u1/s >= 0")
        shared = (1 - unique2) / (1 + ratio)
        return SyntheticConfig(shared=shared, unique1=1 - unique2 - shared, unique2=unique2, **rest)


def _draw(cfg: SyntheticConfig, n: int, means, lifts, gen: torch.Generator):
    labels = torch.randint(cfg.n_classes, (n,), generator=gen)
    probs = torch.tensor([cfg.shared, cfg.unique1, cfg.unique2])
    groups = torch.multinomial(probs, n, replacement=True, generator=gen)
    informative = (groups != 2, groups != 1)
    features = []
    for m in range(2):
        k = means[m].shape[1]
        x = torch.randn(n, k, generator=gen)
        shift = means[m][labels] if cfg.generator == "class_means" else \
            (cfg.mean_scale / k ** 0.5) * labels[:, None].float().expand(n, k)
        x = x + informative[m][:, None] * shift
        features.append(x @ lifts[m])
    return features, labels, groups


def load(cfg: SyntheticConfig) -> TensorSplits:
    """Train/val/test splits; deterministic in `cfg` (including `cfg.data_seed`)."""
    gen = torch.Generator().manual_seed(cfg.data_seed)
    dims, means = (cfg.latent_dim, cfg.latent_dim2 or cfg.latent_dim), []
    for m in range(2):
        mu = torch.randn(cfg.n_classes, dims[m], generator=gen)
        means.append(cfg.mean_scale * mu / mu.norm(dim=1, keepdim=True))
    lifts = [torch.rand(dims[m], cfg.input_dim, generator=gen) for m in range(2)]
    splits = {name: _draw(cfg, n, means, lifts, gen)
              for name, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test))}
    train_x = splits["train"][0]
    stats = [(x.mean(0), x.std(0) + 1e-6) for x in train_x]
    out = {}
    for name, (xs, labels, groups) in splits.items():
        out[name] = {"x1": (xs[0] - stats[0][0]) / stats[0][1],
                     "x2": (xs[1] - stats[1][0]) / stats[1][1],
                     "label": labels, "group": groups}
    return TensorSplits(out, modalities=("x1", "x2"), n_classes=cfg.n_classes,
                        group_names=GROUPS)


# Drawn from its params at load: nothing to prepare, no data root.
SPEC = DatasetSpec(name="synthetic", load_config=SyntheticConfig, load=load, encoders={"x1": "mlp", "x2": "mlp"})
