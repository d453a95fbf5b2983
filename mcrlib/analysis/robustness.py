"""Robustness to a missing modality (beyond the paper): a trained model's test accuracy when one
modality's input is zeroed, replaced by Gaussian noise or permuted across the batch.

A model that leans on its dominant modality collapses when that modality goes missing; a
balanced one should keep more of its accuracy, because the other modality also learned to
predict. Every perturbation touches only the chosen modality's input tensor and is deterministic
for a seed (its own torch.Generator, consumed batch by batch in the test split's fixed order).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import pandas as pd
import torch

from mcrlib.config import RunConfig, from_dict
from mcrlib.data import TensorSplits, load_dataset
from mcrlib.evaluation import head_metrics, predict
from mcrlib.methods import METHODS
from mcrlib.train import resolve_device

PERTURBATIONS = ("zero", "noise", "permute")


def load_trained_model(result, data: TensorSplits | None = None, device: str | torch.device = "cpu"):
    """(model with the run's best-validation weights, in eval mode; its dataset), rebuilt from a
    RunResult's config alone (RunResult.load_model, through mcrlib.build): the config names the
    fusion head its method needed."""
    return result.load_model(data, device)


def perturb(batch: dict, modality: str, kind: str, generator: torch.Generator) -> dict:
    """A copy of `batch` whose `modality` input is replaced; every other entry is the same tensor.
    zero: zeros. noise: N(mean_f, std_f) per feature f with the batch's mean and std, so the scale
    stays and only the information goes. permute: the batch's rows of that modality shuffled, so
    each sample gets another sample's (real, in-distribution) input."""
    x = batch[modality]
    if kind == "zero":
        new = torch.zeros_like(x)
    elif kind == "noise":
        mean, std = x.float().mean(0), x.float().std(0, correction=0)
        new = (mean + std * torch.randn(x.shape, generator=generator, dtype=torch.float32)).to(x.dtype)
    elif kind == "permute":
        new = x[torch.randperm(len(x), generator=generator)]
    else:
        raise ValueError(f"perturbation {kind!r} is unknown: expected one of {list(PERTURBATIONS)}")
    return {**batch, modality: new}


@torch.no_grad()
def perturbed_predictions(model, data: TensorSplits, split: str, modality: str, kind: str, *,
                          seed: int = 0, batch_size: int = 256, device="cpu") -> dict:
    """Fused logits (and labels) over `split` with `modality` perturbed in every batch."""
    generator = torch.Generator().manual_seed(seed)
    fused, labels = [], []
    for batch in data.loader(split, batch_size):
        batch = perturb({m: batch[m] for m in model.modalities}, modality, kind, generator) | {"label": batch["label"]}
        fused.append(model({m: batch[m].to(device) for m in model.modalities}).logits.float().cpu())
        labels.append(batch["label"])
    return {"fused": torch.cat(fused), "label": torch.cat(labels)}


def perturbed_latent(model, x: torch.Tensor, clean: torch.Tensor, modality: str, kind: str,
                     generator: torch.Generator, device="cpu") -> torch.Tensor:
    """`modality`'s latents of a batch whose input `x` is perturbed as `perturb` perturbs it (the
    same draws from `generator`), given that batch's clean latents `clean`. In eval mode an encoder
    maps each sample on its own, so only what a perturbation changes is encoded again:
    permute: the clean latents in the permuted order (no encoder pass); zero: one zero sample,
    encoded once and repeated; noise: the noise, encoded. `perturbed_predictions` (a full forward
    pass on the perturbed batch) is the reference this is tested against."""
    if kind == "permute":
        return clean[torch.randperm(len(x), generator=generator).to(clean.device)]
    if kind == "zero":
        return model.encoders[modality](torch.zeros_like(x[:1]).to(device)).expand_as(clean)
    return model.encoders[modality](perturb({modality: x}, modality, kind, generator)[modality].to(device))


@torch.no_grad()
def robustness(result, kinds: Iterable[str] = PERTURBATIONS, *, seed: int = 0, data=None,
               device=None) -> pd.DataFrame:
    """Test accuracy of one run: clean, and with each modality missing under each perturbation.
    Columns: missing (modality position 1..M, 0 for clean), modality, perturbation, acc.

    Every encoder runs once over the test split; each perturbation then encodes only the modality
    it replaces (`perturbed_latent`), and the fusion head runs on the mixed latents. With two
    modalities and three perturbations that is about 4 encoder passes instead of 14 (issue 23's
    rebuild time: this analysis covers every trained run of the synthetic and benchmark studies)."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in PERTURBATIONS]
    if unknown:
        raise ValueError(f"perturbation {unknown[0]!r} is unknown: expected one of {list(PERTURBATIONS)}")
    config = from_dict(RunConfig, result.config)
    device = resolve_device(config.train.device) if device is None else torch.device(device)
    model, data = load_trained_model(result, data, device)
    batch_size = max(256, config.train.batch_size)   # the trainer's evaluation batches
    batches = [{m: b[m] for m in (*model.modalities, "label")} for b in data.loader("test", batch_size)]
    latents = [model.encode({m: b[m].to(device) for m in model.modalities}) for b in batches]
    labels = torch.cat([b["label"] for b in batches])
    clean = {"fused": torch.cat([model.head(z).logits.float().cpu() for z in latents]), "label": labels}
    # The rebuilt model must give the run's own test predictions (exactly on CPU; a GPU may
    # reorder sums), or every number below would describe another model.
    if not torch.allclose(clean["fused"], result.predictions["test"]["fused"], rtol=1e-3, atol=1e-4):
        raise RuntimeError(f"the model rebuilt from {result.path} does not reproduce its stored test predictions")
    rows = [{"missing": 0, "modality": "", "perturbation": "clean",
             "acc": head_metrics(clean, ["fused"], data.task)["acc_fused"]}]
    for position, modality in enumerate(model.modalities, start=1):
        for kind in kinds:
            generator = torch.Generator().manual_seed(seed)   # as perturbed_predictions draws
            fused = [model.head({**z, modality: perturbed_latent(model, b[modality], z[modality], modality, kind,
                                                                 generator, device)}).logits.float().cpu()
                     for b, z in zip(batches, latents)]
            rows.append({"missing": position, "modality": modality, "perturbation": kind,
                         "acc": head_metrics({"fused": torch.cat(fused), "label": labels}, ["fused"],
                                             data.task)["acc_fused"]})
    return pd.DataFrame(rows)


def robustness_frame(runs: pd.DataFrame, results: Sequence, cell: str, kinds: Iterable[str] = PERTURBATIONS,
                     *, seed: int = 0, device=None) -> pd.DataFrame:
    """`robustness` of every trained multimodal run of a study (not the unimodal runs nor the
    ensemble), with its cell, seed and method, and `drop` = clean accuracy minus accuracy."""
    parts, cached = [], (None, None)   # runs come grouped by cell and seed: keep one dataset
    for (_, row), result in zip(runs.iterrows(), results):
        if row["method"].startswith("unimodal-") or not METHODS[result.config["method"]["name"]].trains:
            continue
        key = json.dumps(result.config["data"], sort_keys=True)
        if cached[0] != key:
            cached = (key, load_dataset(result.config["data"]["name"], result.config["data"]["params"]))
        part = robustness(result, kinds, seed=seed, data=cached[1], device=device)
        part["drop"] = part.loc[part["perturbation"] == "clean", "acc"].item() - part["acc"]
        parts.append(part.assign(**{cell: row[cell], "seed": row["seed"], "method": row["method"]}))
    frame = pd.concat(parts, ignore_index=True)
    return frame[[cell, "seed", "method", "missing", "modality", "perturbation", "acc", "drop"]]


def dominant_modality(runs: pd.DataFrame, cell: str) -> pd.Series:
    """Per cell, the position (1..M) of the modality whose unimodal run has the highest mean test
    accuracy over seeds."""
    uni = runs[runs["method"].str.startswith("unimodal-")].copy()
    uni["position"] = uni.groupby([cell, "seed"], sort=False).cumcount() + 1   # modality order
    return uni.groupby([cell, "position"], sort=False)["test_acc"].mean().unstack().idxmax(axis=1)


def plot_drops(frame: pd.DataFrame, cell: str, methods: Sequence[str], dominant: pd.Series, title: str = "",
               caption: str = "", label=None):
    """Per cell (a row) and perturbation (a column; with one cell, the perturbations as rows): each
    method's accuracy drop (points, mean ±
    std over seeds) when modality 1 and when modality 2 is missing; the dominant one hatched."""
    import matplotlib.pyplot as plt

    from mcrlib.analysis.plots import finish
    label = label or (lambda m: m)
    cells = list(frame[cell].unique())
    kinds = [k for k in PERTURBATIONS if k in set(frame["perturbation"])]
    methods = [m for m in methods if m in set(frame["method"])]
    stats = (frame[frame["perturbation"] != "clean"]
             .groupby([cell, "perturbation", "method", "missing", "modality"])["drop"].agg(["mean", "std"]))
    # One panel per (cell, perturbation): with one cell the perturbations stack as rows, so the
    # figure keeps a readable aspect instead of one 7:1 strip.
    rows, cols = (len(kinds), 1) if len(cells) == 1 else (len(cells), len(kinds))
    fig, axes = plt.subplots(rows, cols, figsize=(0.34 * len(methods) * cols + 2.8, 3.0 * rows), squeeze=False,
                             sharey=len(cells) > 1 and "row")
    grid = axes.reshape(len(cells), len(kinds))
    for axs, c in zip(grid, cells):
        for ax, kind in zip(axs, kinds):
            if (c, kind) not in stats.index:
                ax.axis("off")
                continue
            part = stats.loc[(c, kind)].reset_index()
            count = part["missing"].nunique()
            width = 0.8 / count
            for k, (position, bars) in enumerate(part.groupby("missing")):
                bars = bars.set_index("method").reindex(methods)
                name = bars["modality"].dropna().iloc[0]
                is_dominant = position == dominant.get(c)
                ax.bar([i + (k - (count - 1) / 2) * width for i in range(len(methods))], bars["mean"] * 100,
                       width, yerr=bars["std"].fillna(0) * 100, capsize=2, error_kw={"lw": 0.8, "ecolor": "0.3"},
                       hatch="//" if is_dominant else None,
                       label=f"{name} missing" + (" (dominant)" if is_dominant else ""),
                       color=f"C{k}", edgecolor="white" if is_dominant else None)
            ax.axhline(0, color="0.3", lw=0.8)
            ax.set_xticks(range(len(methods)), [label(m) for m in methods], rotation=60, ha="right", fontsize=8.5)
            ax.set_title(f"{c}: modality {kind}", fontsize=10)
            ax.set_ylabel("accuracy drop (points)", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axs[-1].legend(frameon=False, fontsize=8.5, loc="center left", bbox_to_anchor=(1.01, 0.5))  # bars stay visible
    return finish(fig, title, caption)
