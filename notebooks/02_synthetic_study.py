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
# # Synthetic study: paper Figure 1 (right)
#
# Two modalities; each sample is *shared* (both modalities carry the label), *unique-1* or
# *unique-2* (only that modality does). We keep the unique-2 fraction u2 fixed and sweep the
# ratio u1/s. As it grows, modality 1 dominates the training signal while modality 2 carries the
# label on ever fewer samples. The paper's claim: joint training falls fastest, MCR slowest.
#
# Training lives in `mcrlib`; this notebook only chooses runs, reads their results and draws.
# Its section `synthetic` comes from the profile named below: *smoke* by default (seconds,
# profiles/smoke.yaml); `dvc repro` runs the quick profile (`params.yaml`).

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/synthetic"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from mcrlib.analysis.plots import accuracy_against, profile_stamp, save_figure
from mcrlib.analysis.run_analyses import study_analyses, write_analyses
from mcrlib.analysis.tables import display_names, export_table, format_pm, mean_std, method_order, stable_summary
from mcrlib.atomic import atomic_path, write_text
from mcrlib.studies.grid import save_runs
from mcrlib.profiles import load_stage
from mcrlib.studies.results import study_results
from mcrlib.studies.synthetic import load_study, run_study
from mcrlib.studies.three_modal import describe, run_three_modal, three_modal_table

study = load_study(load_stage(profile, "synthetic", root_dir)["synthetic"])   # calibrated where marked
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
example = study.data_config(study.ratios[0], study.seeds[0])
print(f"profile {study.profile}: ratios {list(study.ratios)}, u2 = {study.unique2}, seeds {list(study.seeds)}, "
      f"{example.n_train}/{example.n_val}/{example.n_test} train/val/test samples")

# %% [markdown]
# ## Train (or load from the run cache) every run
# First the search: every method with a coefficient gets the same number of trials from its
# grid, on the search seeds, per ratio; the setting with the best mean *validation* accuracy is
# kept. Then, per ratio and seed, both unimodal models (the ensemble combines them, no
# retraining) and each method at its chosen setting, all with the same model, optimiser, budget
# and early stopping on validation accuracy.

# %%
runs, trials = run_study(study, cache_dir)
save_runs(runs, trials, results_dir)
runs.head()

# %% [markdown]
# ## What the error analysis reads from these runs
# While the runs are in the run cache: the accuracy inside each unimodal-correctness group and each
# generator group, and every trained run with one modality perturbed (the `error_analysis`
# section's perturbations), written beside the runs table (mcrlib/analysis/run_analyses.py).
# Notebook 05 reads these files, so it needs neither the run cache nor this machine.

# %%
errors_section = load_stage(profile, "error_analysis", root_dir)["error_analysis"]
analyses = study_analyses(runs, study_results(runs, cache_dir), "ratio", errors_section["perturbations"],
                          seed=errors_section["perturbation_seed"], generator_groups=True)
print([path.name for path in write_analyses(analyses, results_dir)])

# %% [markdown]
# ### The search: validation accuracy of every trial (the selected one marked)

# %%
if not trials.empty:
    search_table = (trials.groupby(["method", "ratio", "trial", "selected"], sort=False)
                    .agg(setting=("trial", lambda t: ""), val_acc=("val_acc", "mean")).reset_index())
    search_table["setting"] = [json.dumps(study.search.trials(m)[t]) for m, t in
                               zip(search_table["method"], search_table["trial"])]
    export_table(search_table.drop(columns="trial").set_index("method"), results_dir / "search_table",
                 caption="Search: mean validation accuracy of each trial over the search seeds")
    display(search_table.drop(columns="trial"))

# %% [markdown]
# ## Figure 1: test accuracy against u1/s
# Left: the unimodal models, the Ensemble, joint training and MCR, with the 95% interval of each
# mean over the seeds. Right: every method's paired difference from the Ensemble (points), so a
# difference of a point is visible; joint training and MCR with their 95% bands.

# %%
ORDER = method_order(["unimodal-x1", "unimodal-x2", *study.methods])
summary = mean_std(runs, index="method", columns="ratio", value="test_acc")
caption = (f"Synthetic study ({study.profile} profile): test accuracy against u1/s, u2 = {study.unique2} fixed; "
           f"mean over {len(study.seeds)} seeds (each seed redraws the data and the model), bands the 95% t interval "
           f"of the mean; {example.n_train} train / {example.n_val} val / {example.n_test} test samples per run; "
           f"the synthetic Ensemble sums the unimodal models' raw logits (the authors' rule). Chance: "
           f"1/{example.n_classes}.")
fig = accuracy_against(runs, x="ratio", methods=ORDER, chance=1 / example.n_classes, logx=True,
                       xlabel="u1 / s  (unique-1 over shared samples)", caption=caption,
                       title="Figure 1 (right): synthetic data, accuracy as modality 1's unique share grows",
                       label=lambda m: display_names([m])[0])
profile_stamp(fig, study.profile)
save_figure(fig, figures_dir / "fig1_synthetic")
plt.show()
plt.close(fig)

# %% [markdown]
# ## Table: every method per ratio, and accuracy inside each sample group
# The group split says directly whether a method learned each modality's unique information:
# a model that ignores modality 2 is near chance on the unique-2 samples.

# %%
table = format_pm(summary, index="method", columns="ratio", order=ORDER)
table.columns = [f"u1/s = {c:g}" for c in table.columns]
with atomic_path(results_dir / "plot_fig1.csv") as tmp:   # `dvc plots`: accuracy against u1/s, a column per method
    summary.pivot(index="ratio", columns="method", values="mean").reindex(columns=ORDER).reset_index().to_csv(tmp, index=False)
export_table(table, results_dir / "fig1_table", caption=caption)
groups = runs.melt(id_vars=["method", "ratio", "seed"], value_vars=["acc_shared", "acc_unique-1", "acc_unique-2"],
                   var_name="group", value_name="acc")
groups["cell"] = groups["group"].str.removeprefix("acc_") + " @ " + groups["ratio"].map("{:g}".format)
group_table = format_pm(mean_std(groups, index="method", columns="cell", value="acc"),
                        index="method", columns="cell", order=ORDER)
export_table(group_table, results_dir / "group_table", caption="Test accuracy inside each sample group")
table

# %%
group_table

# %% [markdown]
# ## Three modalities with an XOR-like label: ConFu's fused contrastive term
# A second generator (`mcrlib/data/synthetic_xor.py`): x1 carries a factor u, x2 a factor v, both
# uniform and independent, and the label is y = (u + v) mod C, so x1 alone and x2 alone are at
# chance and only the pair says anything; x3 carries y itself, on a fraction of the samples
# ("x3-informative") and on none of the others ("x3-silent"). MCR with ConFu's fused term
# (`contrastive_terms: fused`: each pair of latents, fused, aligned with the third) is compared
# with MCR (its pairwise L_con), joint training, the Ensemble and the unimodal models, over the
# same seeds, with the same model and budget; paired differences over seeds with Student-t 95%
# intervals (`mcrlib.analysis.paired`).
#
# Read the x3-silent column with this in mind: every model here has the late linear fusion head,
# whose logits are a sum of one function of x1 and one of x2 (and one of x3), and no such sum
# has its maximum at (u + v) mod C for every (u, v) (summed over all cells, the correct label's
# logits and those of any shifted label y + s have the same total). On the x3-silent samples a
# method can beat chance only partly, whatever its training signal; the fused term shapes the
# encoders' latents, not the head's additivity.

# %%
if study.three_modal is not None:
    three_runs = run_three_modal(study, cache_dir)
    with atomic_path(results_dir / "three_modal_runs.csv") as tmp:
        three_runs.to_csv(tmp, index=False)
    three_table = three_modal_table(three_runs)
    export_table(three_table, results_dir / "three_modal_table",
                 caption=(f"Three-modality XOR case, {study.profile} profile: test accuracy (mean ± std, %) "
                          f"and paired differences over seeds (points, Student-t 95% interval); "
                          f"{describe(study)}."))
    display(three_table)

# %% [markdown]
# ## Key numbers (nbval checks the shape of the table below, not its digits: CPUs round differently)

# %%
means = runs.groupby(["method", "ratio"])["test_acc"].mean().unstack()
metrics = {"mean_test_acc": {m: {f"{r:g}": round(v, 4) for r, v in row.items()} for m, row in means.iterrows()}}
mcr_first = {f"{r:g}": means[r].drop([i for i in means.index if i.startswith("unimodal")]).idxmax() == "mcr"
             for r in means.columns}
metrics["mcr_first_at_ratio"] = mcr_first
write_text(pd.Series(metrics).to_json(indent=1), results_dir / "metrics.json")
print(means.round(3).to_string())

# %%
# NBVAL_CHECK_OUTPUT
print(stable_summary(means))
