# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # ConFu: contrastive fusion for higher-order alignment, against pairwise alignment, Symile and GRAM
#
# ConFu (Koutoupis et al., "The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal
# Alignment", arXiv 2511.21331, CVPR 2026; code estafons/confu) aligns three modalities
# self-supervised: each modality's embedding z_m, and a fused embedding f_ij of each pair (a
# fusion MLP on the concatenated encodings), contrasted with the remaining modality. Its loss is
# (λ Σ InfoNCE(f_ij, z_k) + (1 − λ) Σ InfoNCE(z_i, z_j)) / 6, λ = 0.5; λ = 0 is the pairwise
# (CLIP-style) baseline. Symile (multilinear inner product) and GRAM (the volume spanned by the
# anchor modality, the caption or x3, with the others) are the higher-order baselines the ConFu
# paper compares with.
# The family lives in `mcrlib/confu` (deviations from the authors' code in each module's docstring);
# it is not MCR's `contrastive_terms: fused` option (docs/methods.md).
#
# Two experiments, recipe fixed in params.yaml (`confu`) before any run:
# - **XOR** (`mcrlib.data.synthetic_xor`): x1 carries u, x2 carries v, x3 carries (u + v) mod C.
#   Every pair of modalities is independent, so pairwise alignment has nothing to align but sample
#   identity; only a term that sees x1 and x2 together can find what x3 depends on. The central
#   claim: ConFu's fused term recovers a dependency that pairwise alignment cannot.
# - **AV-Digits** with captions (ConFu's AV-MNIST protocol): image (8x8 digits), audio (FSDD), and
#   "an image of a <digit>" read by a small GRU trained from scratch; zero-shot classification of
#   the (image, audio) pair and of each alone against the ten captions, retrieval, linear probes;
#   leave-one-speaker-out folds x seeds, folds as fixed blocks.
#
# Every method trains for the same fixed number of epochs (AdamW, cosine schedule; no label, no
# early stopping) and is evaluated once. Each method's two-to-one score is its own: ConFu f_ij · z_k,
# pairwise (z_i + z_j) · z_k, Symile MIP(z_i, z_j, z_k), GRAM −Vol(z_k, z_i, z_j); the "(sum)" rows
# give ConFu, Symile and GRAM the pairwise score too. GRAM's volume has no query vector, so it has
# no "native" probe bar. Retrieval is category-level (a hit at k: an item of the query's class in
# the top k; the modalities share only the class). Its default profile is *smoke* (seconds, the
# XOR case only, profiles/smoke.yaml).

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/confu"
figures_dir = "../figures/smoke"
root_dir = ".."

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from mcrlib.analysis.paired import t_interval
from mcrlib.analysis.plots import finish, profile_stamp, save_figure
from mcrlib.analysis.tables import export_table, stable_summary
from mcrlib.atomic import atomic_path, write_text
from mcrlib.confu.experiment import load_study, paired_table, run_avdigits, run_xor, summary_table
from mcrlib.profiles import load_stage

torch.set_num_threads(1)        # one core: the recipe's budget
study = load_study(load_stage(profile, "confu", root_dir)["confu"])
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
print(f"profile {study.profile}: methods {list(study.methods)}, λ = {study.lam}, τ = {study.tau}, train {study.train}")
print(f"XOR: {study.xor}\nAV-Digits: {study.avdigits}")

# %%
PAIRED_COLUMNS = ["dataset", "family", "task", "metric", "method", "reference", "n", "mean_diff", "low", "high",
                  "p_t", "design", "speaker_low", "speaker_high"]


def write_csv(frame, name):
    with atomic_path(results_dir / f"{name}.csv") as tmp:
        frame.to_csv(tmp, index=False)


def paired_points(results):
    """The paired table, differences in points (percent), for display and export."""
    table = paired_table(results).reindex(columns=PAIRED_COLUMNS)
    for column in ("mean_diff", "low", "high", "speaker_low", "speaker_high"):
        table[column] = (100 * table[column]).round(2)
    return table


def bars(ax, results, rows, title, chance=None):
    """Mean over units of each (task, metric) of `rows` per method, with the 95% t interval."""
    methods = [m for m in study.methods if m in set(results["method"])]
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        means, halves = [], []
        for task, metric in rows:
            values = results.query("method == @method and task == @task and metric == @metric")["value"] * 100
            low, high = t_interval(values.to_numpy())
            means.append(values.mean())
            halves.append(0 if np.isnan(low) else (high - low) / 2)
        ax.bar(np.arange(len(rows)) + (k - (len(methods) - 1) / 2) * width, means, width, yerr=halves, capsize=3,
               label=method)
    if chance is not None:
        ax.axhline(100 * chance, color="0.3", ls="--", lw=1, label="chance")
    # one line per side of the arrow, so neighbouring labels never overlap
    ax.set_xticks(range(len(rows)), [f"{t.replace(' → ', chr(10) + '→ ')}\n[{m}]" for t, m in rows], fontsize=7.5)
    ax.set(title=title, ylabel="%", ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8)


# %% [markdown]
# ## XOR: can the fused term find what x3 depends on?
# Two-to-one retrieval (x1, x2) → x3 and one-to-one x1 → x3, x2 → x3 (R@1, R@5, category-level:
# chance R@1 = 1/C); linear probes of y = (u + v) mod C on each method's two-to-one query (ConFu
# f_12, pairwise z_1 + z_2, Symile z_1 ⊙ z_2), on [z_1 ‖ z_2], and on z_1 or z_2 alone (chance by
# construction). GRAM scores two-to-one by minus the Gram volume (no query vector, no native probe).
# Paired over seeds; each seed draws its own data.

# %%
if study.xor is not None:
    xor, xor_curves = run_xor(study)
    write_csv(xor, "xor_runs")
    write_csv(xor_curves, "xor_curves")
    xor_means, xor_text = (t.droplevel("dataset") for t in summary_table(xor))
    n_classes = study.xor.data.get("n_classes", 4)
    caption = (f"XOR (x3 = noisy (u + v) mod {n_classes}): mean ± std over seeds {list(study.xor.seeds)} (%), "
               f"{study.train.epochs} epochs, {study.profile} profile; chance R@1 = {100 / n_classes:.0f}%.")
    export_table(xor_text, results_dir / "xor_summary", caption=caption)
    print(caption)
    display(xor_text)
    xor_paired = paired_points(xor)
    xor_paired = xor_paired.drop(columns=["dataset", "family", "speaker_low", "speaker_high"])
    export_table(xor_paired.set_index(["task", "metric", "method", "reference"]), results_dir / "xor_paired",
                 caption="XOR: paired differences (points), method − reference over seeds, 95% t interval.")
    display(xor_paired)

# %%
if study.xor is not None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    bars(axes[0], xor, [("x1+x2 (native) → x3", "R@1"), ("x1+x2 (sum) → x3", "R@1"), ("x1 → x3", "R@1"),
                        ("x2 → x3", "R@1")], "retrieval into x3", chance=1 / n_classes)
    bars(axes[1], xor, [("x1+x2 (native) → (u + v) mod C", "acc"), ("x1 ‖ x2 → (u + v) mod C", "acc"),
                        ("x1 → (u + v) mod C", "acc")], "linear probe of (u + v) mod C", chance=1 / n_classes)
    finish(fig, f"XOR: ConFu vs pairwise vs Symile vs GRAM ({study.profile} profile)",
           f"Mean over seeds {list(study.xor.seeds)} with 95% t intervals; native = each method's own two-to-one "
           "score (GRAM's volume has no query vector: no native probe bar).")
    profile_stamp(fig, study.profile)
    save_figure(fig, figures_dir / "confu_xor")
    plt.show()
    plt.close(fig)

# %% [markdown]
# ## AV-Digits with captions: zero-shot, retrieval, probes
# Zero-shot: the (image, audio) pair, image alone and audio alone against the ten caption embeddings
# (acc@1; acc@5 = R@5 into the ten captions). Retrieval: image ↔ audio and the two-to-one
# (image, caption) → audio, (audio, caption) → image over the test speaker's samples. Linear probes
# of the digit on frozen embeddings (fitted on the training speakers). Paired over (fold, seed),
# folds as fixed blocks (the design interval of mcrlib.analysis.inference); the speaker-level
# interval (a t over the six fold means) beside it.

# %%
if study.avdigits is not None:
    avd, avd_curves = run_avdigits(study, Path(root_dir) / "data" / "processed" / "avdigits")
    write_csv(avd, "avdigits_runs")
    write_csv(avd_curves, "avdigits_curves")
    avd_means, avd_text = (t.droplevel("dataset") for t in summary_table(avd))
    caption = (f"AV-Digits + captions: mean ± std over folds {list(study.avdigits.folds)} x seeds "
               f"{list(study.avdigits.seeds)} (%), {study.train.epochs} epochs, {study.profile} profile; chance 10%.")
    export_table(avd_text, results_dir / "avdigits_summary", caption=caption)
    print(caption)
    display(avd_text)
    avd_paired = paired_points(avd).drop(columns=["dataset"])
    export_table(avd_paired.set_index(["family", "task", "metric", "method", "reference"]),
                 results_dir / "avdigits_paired",
                 caption="AV-Digits: paired differences (points), method − reference over (fold, seed), folds as fixed "
                         "blocks, 95% interval; speaker-level interval over the fold means beside it.")
    display(avd_paired)
else:
    print(f"no AV-Digits experiment in the {study.profile} profile")

# %%
if study.avdigits is not None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    bars(axes[0], avd, [("image+audio (native) → caption", "acc@1"), ("image+audio (sum) → caption", "acc@1"),
                        ("image → caption", "acc@1"), ("audio → caption", "acc@1")], "zero-shot (ten captions)",
         chance=0.1)
    bars(axes[1], avd, [("image+audio (native)", "acc"), ("image ‖ audio", "acc"), ("image", "acc"),
                        ("audio", "acc")], "linear probe of the digit", chance=0.1)
    finish(fig, f"AV-Digits + captions: ConFu vs pairwise vs Symile vs GRAM ({study.profile} profile)",
           "Mean over (fold, seed) units with 95% t intervals over the units; native = each method's own "
           "two-to-one score (GRAM's volume has no query vector: no native probe bar).")
    profile_stamp(fig, study.profile)
    save_figure(fig, figures_dir / "confu_avdigits")
    plt.show()
    plt.close(fig)

# %% [markdown]
# ## Key numbers (nbval checks the shape of the table below, not its digits: CPUs round differently)

# %%
frames = {"XOR": xor_means if study.xor is not None else None,
          "AV-Digits": avd_means if study.avdigits is not None else None}
# A score a method does not have (GRAM's native probe) is left out, not written as NaN: NaN is not
# JSON, and DVC compares NaN as changed, so `dvc metrics diff` would list it after every rerun.
metrics = {name: {" | ".join(map(str, key)): {m: round(float(v), 4) for m, v in row.items() if not np.isnan(v)}
                  for key, row in frame.iterrows()} for name, frame in frames.items() if frame is not None}
write_text(json.dumps(metrics, indent=1, ensure_ascii=False), results_dir / "metrics.json")
print(xor_means.round(3).to_string() if study.xor is not None else "no XOR experiment")

# %%
# NBVAL_CHECK_OUTPUT
print(stable_summary(xor_means) if study.xor is not None else "no XOR experiment")
