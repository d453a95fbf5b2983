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
# # Error analysis: paper Figure 5, and robustness to a missing modality
#
# **Figure 5.** The test samples of each (cell, seed) are split by which of that seed's two
# unimodal models are right: *both wrong*, *only modality 1*, *only modality 2*, *both right*.
# Inside each group we measure every multimodal method's accuracy. Joint training that leans on
# its dominant modality does well where that modality's unimodal model is right and poorly where
# only the other one is; a method that also learned the weak modality keeps more of the
# *only modality 2* samples (or *only modality 1*, whichever is weak).
#
# **Synthetic groups.** On the synthetic data the generator says which modality carries each
# sample's label (shared / unique-1 / unique-2), so we can read directly whether a method learned
# each modality's unique information.
#
# **Robustness (beyond the paper).** Each trained model's test accuracy when one modality is
# zeroed, replaced by Gaussian noise or permuted across the batch. The claim to look at: a
# balanced model should lose less when the *dominant* modality goes missing.
#
# Nothing is trained here: the runs are the rows of the synthetic and benchmarks studies' runs
# tables, found in the run cache by their run keys. The `synthetic` and `benchmarks` sections are
# the profile's, as their own stages ran them; the default profile is *smoke* (profiles/smoke.yaml,
# whose notebook 02 and 03 runs are shared through the run cache).

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/error_analysis"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from mcrlib.analysis.errors import plot_error_matrices, summarise
from mcrlib.analysis.plots import profile_stamp, save_figure
from mcrlib.analysis.robustness import dominant_modality, plot_drops
from mcrlib.analysis.run_analyses import read_analyses, study_analyses
from mcrlib.analysis.tables import display_names, export_table, format_pm, mean_std, method_order, stable_summary
from mcrlib.atomic import atomic_path, write_text
from mcrlib.profiles import load_stage
from mcrlib.studies import benchmarks as benchmark_study
from mcrlib.studies import synthetic as synthetic_study
from mcrlib.studies.results import read_runs, study_results

params = load_stage(profile, "error_analysis", root_dir, reads=("synthetic", "benchmarks"))
synthetic, benchmarks = params["synthetic"], params["benchmarks"]
section = params["error_analysis"]
methods, perturbations, perturbation_seed = section["methods"], section["perturbations"], section["perturbation_seed"]
STUDIES = {
    "synthetic": (synthetic_study, synthetic_study.load_study(synthetic), "ratio"),
    "benchmarks": (benchmark_study, benchmark_study.load_study(
        {**benchmarks, "datasets": benchmark_study.resolve_datasets(benchmarks["datasets"], root_dir)}), "dataset"),
}
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
print(f"error analysis, {profile} profile")
for name, (_, study, cell) in STUDIES.items():
    print(f"{name}: {study.profile} profile, {cell} cells, seeds {list(study.seeds)}, {len(study.methods)} methods")

# %% [markdown]
# ## The runs and their analyses, read from the studies' stages
# Each study's stage wrote, beside its runs table (`results/<study>/runs.csv`), what this notebook
# needs from its runs while they were in the run cache (mcrlib/analysis/run_analyses.py): the
# accuracy inside each unimodal-correctness group (`errors.csv`), inside each synthetic generator
# group (`generator.csv`), and each trained run with one modality perturbed (`robustness.csv`).
# So this stage reads files only, and needs neither the run cache nor the machine that trained the
# studies. Under the smoke profile (a run by hand or under nbval, where notebooks 02 and 03 need not
# have run) it runs its own small studies through the run cache and computes the same frames.
# Cells get one label across both studies.

# %%
runs, frames = [], {"errors": [], "generator": [], "robustness": []}
for name, (module, study, cell) in STUDIES.items():
    if profile == "smoke":
        study_runs, _ = module.run_study(study, cache_dir)
        study_frames = study_analyses(study_runs, study_results(study_runs, cache_dir), cell, perturbations,
                                      seed=perturbation_seed, generator_groups=name == "synthetic")
    else:
        study_runs = read_runs(results_dir.parent / name / "runs.csv")
        study_frames = read_analyses(results_dir.parent / name)
    label = (lambda c: f"u1/s = {c:g}") if cell == "ratio" else (lambda c: c)
    runs.append(study_runs.assign(study=name, cell=study_runs[cell].map(label)))
    for key, frame in study_frames.items():
        frames[key].append(frame.assign(study=name, cell=frame[cell].map(label)).drop(columns=cell))
runs = pd.concat(runs, ignore_index=True)
unimodal = runs[runs["method"].str.startswith("unimodal-")]
MODALITIES = {c: tuple(part["method"].str.removeprefix("unimodal-").unique()) for c, part in unimodal.groupby("cell", sort=False)}
CELLS = {name: list(runs.loc[runs.study == name, "cell"].unique()) for name in STUDIES}
ORDER = method_order(set(runs["method"]) - set(unimodal["method"]))
pd.DataFrame({"modalities (1, 2)": MODALITIES}).rename_axis("cell")

# %% [markdown]
# ## Figure 5: accuracy inside each unimodal-correctness group
# Per cell and method a 2x2 matrix: rows modality 1's unimodal model right / wrong, columns
# modality 2's; each square is the method's accuracy (mean ± std over seeds) and the group's
# mean size. The groups of each seed come from that seed's own unimodal runs.

# %%
errors = pd.concat(frames["errors"], ignore_index=True)
with atomic_path(results_dir / "errors.csv") as tmp:
    errors.to_csv(tmp, index=False)
summary = summarise(errors.drop(columns="study"), "cell")
for name in STUDIES:
    part = summary[summary["cell"].isin(CELLS[name])]
    if part.empty:
        continue
    fig = plot_error_matrices(part, "cell", methods, MODALITIES,
                              title=f"Figure 5 ({name}, {STUDIES[name][1].profile} profile): accuracy per "
                                    f"unimodal-correctness group, mean ± std over seeds {list(STUDIES[name][1].seeds)}")
    profile_stamp(fig, STUDIES[name][1].profile)
    save_figure(fig, figures_dir / f"fig5_errors_{name}")
    plt.show()
    plt.close(fig)

# %% [markdown]
# ### Every method in every group (table)

# %%
GROUP_ORDER = ["both wrong", "only modality 1", "only modality 2", "both right"]
text = summary.assign(acc=[f"{m * 100:.1f} ± {0 if pd.isna(s) else s * 100:.1f}" if pd.notna(m) else "–"
                           for m, s in zip(summary["mean"], summary["std"])])
text["row"] = text["cell"] + " · " + text["group"]   # no "|": it would split a Markdown cell
error_table = text.pivot(index="row", columns="method", values="acc")
error_table.insert(0, "n", text.groupby("row")["n"].first().round(1))   # a group's size is the same for every method
rows = [f"{c} · {g}" for c in MODALITIES for g in [*GROUP_ORDER, *sorted(set(text["group"]) - set(GROUP_ORDER))]]
error_table = error_table.reindex(index=[r for r in rows if r in error_table.index],
                                  columns=["n", *[m for m in ORDER if m in error_table.columns]]).fillna("–").rename_axis("cell · group")
export_table(error_table, results_dir / "error_table",
             caption="Accuracy (%) of each method inside each unimodal-correctness group (mean ± std over seeds; "
                     "n: mean group size). Modalities 1, 2: " +
                     "; ".join(f"{c}: {', '.join(m)}" for c, m in MODALITIES.items()))
error_table

# %% [markdown]
# ## Synthetic data: accuracy inside the generator's sample groups
# Shared samples carry the label in both modalities, unique-m samples only in modality m. A
# model that ignored modality 2 is at chance (20% with 5 classes) on the unique-2 samples.

# %%
synthetic_rows = runs["study"] == "synthetic"
generator = pd.concat(frames["generator"], ignore_index=True).drop(columns="study")
# The same numbers notebook 02 reports (its runs table's acc_<group> columns), recomputed from the predictions.
check = runs[synthetic_rows].melt(id_vars=["cell", "seed", "method"], value_vars=["acc_shared", "acc_unique-1", "acc_unique-2"],
                                  var_name="group", value_name="acc_runs").assign(group=lambda f: f["group"].str.removeprefix("acc_"))
assert (generator.merge(check, on=["cell", "seed", "method", "group"]).eval("acc - acc_runs").abs().fillna(0) < 1e-6).all()
generator["column"] = generator["group"].astype(str) + " @ " + generator["cell"]
generator_table = format_pm(mean_std(generator, index="method", columns="column", value="acc"), index="method",
                            columns="column", order=[*sorted(set(generator["method"]) - set(ORDER)), *ORDER])
generator_table = generator_table[[f"{g} @ {c}" for g in ("shared", "unique-1", "unique-2") for c in CELLS["synthetic"]]]
export_table(generator_table, results_dir / "generator_table",
             caption="Synthetic data: test accuracy (%) inside the generator's sample groups, mean ± std over seeds")
generator_table

# %% [markdown]
# ## Robustness to a missing modality
# Every trained model (each method's runs; not the unimodal models nor the ensemble) rebuilt from
# its RunResult by its study's stage, checked to reproduce its stored test predictions, then
# evaluated with one modality zeroed, replaced by Gaussian noise with the batch's per-feature mean
# and std, or permuted across the batch (seeded). `drop` = clean accuracy minus perturbed accuracy.

# %%
robust = pd.concat(frames["robustness"], ignore_index=True)
robust = robust[["cell", *[c for c in robust.columns if c != "cell"]]]
with atomic_path(results_dir / "robustness.csv") as tmp:
    robust.to_csv(tmp, index=False)
DOMINANT = dominant_modality(runs, "cell")   # position of the modality whose unimodal model is best
print({c: MODALITIES[c][p - 1] for c, p in DOMINANT.items()})
for name in STUDIES:
    part = robust[robust["study"] == name]
    fig = plot_drops(part, "cell", ORDER, DOMINANT, label=lambda m: display_names([m])[0],
                     title=f"Accuracy drop with one modality missing ({name}, {STUDIES[name][1].profile} profile)",
                     caption=f"Each trained model's test accuracy minus its accuracy with one modality zeroed, replaced "
                             f"by noise of the batch's per-feature mean and std, or permuted across the batch; mean ± std "
                             f"over seeds {list(STUDIES[name][1].seeds)}; hatched: the dominant modality (the better "
                             f"unimodal model) missing.")
    profile_stamp(fig, STUDIES[name][1].profile)
    save_figure(fig, figures_dir / f"robustness_{name}")
    plt.show()
    plt.close(fig)

# %%
robust["column"] = [("clean" if k == "clean" else f"modality {p} {k}") for p, k in zip(robust["missing"], robust["perturbation"])]
robust["row"] = robust["cell"] + " · " + robust["method"]
stats = robust.groupby(["row", "column"], sort=False).agg(mean=("acc", "mean"), std=("acc", "std"), drop=("drop", "mean")).reset_index()
stats["text"] = [f"{m * 100:.1f} ± {0 if pd.isna(s) else s * 100:.1f}" + ("" if c == "clean" else f" ({-d * 100:+.1f})")
                 for m, s, d, c in zip(stats["mean"], stats["std"], stats["drop"], stats["column"])]
robustness_table = stats.pivot(index="row", columns="column", values="text")
robustness_table = robustness_table[["clean", *[f"modality {p} {k}" for p in sorted(set(robust["missing"]) - {0})
                                                for k in perturbations]]].fillna("–").rename_axis("cell · method")
robustness_table = robustness_table.reindex([f"{c} · {m}" for c in MODALITIES for m in ORDER if f"{c} · {m}" in robustness_table.index])
export_table(robustness_table, results_dir / "robustness_table",
             caption="Test accuracy (%) clean and with one modality perturbed (mean ± std over seeds; in brackets "
                     "the mean change from clean, points). Modalities 1, 2 and the dominant one: " +
                     "; ".join(f"{c}: {', '.join(m)} (dominant {m[DOMINANT[c] - 1]})" for c, m in MODALITIES.items()))
robustness_table

# %% [markdown]
# ### The claim: does a balanced model lose less when the dominant modality goes missing?
# Per cell and perturbation, each method's accuracy drop (points, mean ± std over seeds) when the
# dominant modality (best unimodal model) is perturbed. Lower is more robust. A drop also
# depends on the clean accuracy; the table above gives both.

# %%
robust["dominant"] = robust["missing"] == robust["cell"].map(DOMINANT)
dominant = robust[robust["dominant"]].assign(column=lambda f: f["cell"] + " · " + f["perturbation"])
dominant_table = format_pm(mean_std(dominant, index="method", columns="column", value="drop"),
                           index="method", columns="column", order=ORDER)
dominant_table = dominant_table[[f"{c} · {k}" for c in MODALITIES for k in perturbations if f"{c} · {k}" in dominant_table.columns]].fillna("–")
export_table(dominant_table, results_dir / "dominant_missing_table",
             caption="Accuracy drop (points) when the dominant modality is perturbed, mean ± std over seeds")
dominant_table

# %% [markdown]
# ## Key numbers (nbval checks the shape of the table below, not its digits: CPUs round differently)
# Mean accuracy inside the *only modality 1* / *only modality 2* groups (the samples only one
# unimodal model gets right) for the Figure 5 methods, and the mean drop when the dominant
# modality is permuted.

# %%
only = summary[summary["group"].isin(["only modality 1", "only modality 2"]) & summary["method"].isin(methods)]
only_means = only.pivot_table(index=["cell", "group"], columns="method", values="mean")
only_means = only_means.reindex(columns=[m for m in methods if m in only_means.columns],
                                index=[(c, g) for c in MODALITIES for g in GROUP_ORDER if (c, g) in only_means.index])
drops = dominant.groupby(["cell", "perturbation", "method"], sort=False)["drop"].mean().unstack("method")
drops = drops[[m for m in ORDER if m in drops.columns]]
metrics = {"only_one_right_acc": {f"{c} | {g}": row.round(4).to_dict() for (c, g), row in only_means.iterrows()},
           "dominant_missing_drop": {f"{c} | {k}": row.round(4).to_dict() for (c, k), row in drops.iterrows()},
           "dominant_modality": {c: MODALITIES[c][p - 1] for c, p in DOMINANT.items()}}
write_text(json.dumps(metrics, indent=1), results_dir / "metrics.json")
print(only_means.round(3).to_string())
print(drops.round(3).to_string())

# %%
# NBVAL_CHECK_OUTPUT
print(stable_summary(only_means))
print(stable_summary(drops, low=-1.0, high=1.0))
