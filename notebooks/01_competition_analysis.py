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
# # Competition analysis: appendix A.1, Figure 6
#
# When two modalities train jointly, one can stay under-trained. We follow joint training epoch by
# epoch: the fused test accuracy, and a linear probe (logistic regression on the frozen features)
# on each encoder's features, with the unimodal ensemble's accuracy as a dashed reference. The
# paper's observation: one modality's probe stays near chance under joint training. The same
# curves for MCR sit beside it. Features are recorded during training by a trainer callback
# (`record_features`), never by retraining; the probes are fitted here.
#
# The runs followed are those of the `synthetic` and `benchmarks` sections of the same profile
# (calibrated as their own stages), so they share their data, model and budget. Default profile:
# smoke (profiles/smoke.yaml), which follows the synthetic data only.

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/competition"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from mcrlib.analysis.plots import save_figure
from mcrlib.analysis.tables import export_table, format_pm, mean_std, stable_summary
from mcrlib.atomic import atomic_path, write_text
from mcrlib.profiles import load_stage
from mcrlib.studies import benchmarks as benchmark_study
from mcrlib.studies import synthetic as synthetic_study
from mcrlib.studies.competition import plot_table, run_competition

params = load_stage(profile, "competition", root_dir, reads=("synthetic", "benchmarks"))
synthetic, benchmarks = params["synthetic"], params["benchmarks"]
followed = (synthetic_study.load_study(synthetic) if synthetic else None,
            benchmark_study.load_study({**benchmarks, "datasets": benchmark_study.resolve_datasets(
                benchmarks["datasets"], root_dir)}) if benchmarks else None)
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
curves, ensemble = run_competition(params["competition"], *followed, cache_dir)
with atomic_path(results_dir / "curves.csv") as tmp:
    curves.to_csv(tmp, index=False)
with atomic_path(results_dir / "plot_curves.csv") as tmp:   # `dvc plots`: one column per line
    plot_table(curves).to_csv(tmp, index=False)
curves.head()

# %% [markdown]
# ## Figure 6: fused accuracy and per-encoder probes per epoch (mean over seeds)

# %%
probe_columns = [c for c in curves.columns if c.startswith("probe ") and c != "probe gap"]
datasets, methods_run = list(curves["dataset"].unique()), list(curves["method"].unique())
fig, axes = plt.subplots(len(datasets), len(methods_run), figsize=(4.2 * len(methods_run), 3.2 * len(datasets)),
                         squeeze=False, sharey="row")
for row, dataset in enumerate(datasets):
    reference = ensemble[ensemble["dataset"] == dataset]["ensemble"].mean()
    for col, method in enumerate(methods_run):
        ax = axes[row][col]
        part = curves[(curves["dataset"] == dataset) & (curves["method"] == method)]
        mean = part.groupby("epoch")[["fused", *probe_columns]].mean()
        for column in ["fused", *probe_columns]:
            ax.plot(mean.index, mean[column].values, label=column, lw=2.2 if column == "fused" else 1.5)
        gap = part.groupby("epoch")["probe gap"].mean()
        ax.plot(gap.index, gap.values, ls=":", color="0.2", label="probe gap")
        ax.axhline(reference, ls="--", color="0.4", label="ensemble")
        ax.set(title=f"{dataset}: {method}", xlabel="epoch", ylabel="test accuracy")
        ax.grid(alpha=0.3)
axes[0][-1].legend(frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
fig.tight_layout()
save_figure(fig, figures_dir / "fig6_competition")
plt.show()
plt.close(fig)

# %% [markdown]
# ## At the best epoch: fused accuracy and each encoder's probe (mean ± std over seeds)
# "Best" is the last recorded epoch of each run, i.e. early stopping's stopping point.

# %%
last = curves.sort_values("epoch").groupby(["dataset", "method", "seed"]).tail(1)
long = last.melt(id_vars=["dataset", "method", "seed"], value_vars=["fused", *probe_columns], var_name="head")
long = long.dropna(subset=["value"])  # each dataset has its own modalities
long["row"] = long["method"] + " / " + long["head"]
table = format_pm(mean_std(long, index="row", columns="dataset", value="value"), index="row", columns="dataset")
export_table(table, results_dir / "probe_table", caption="Test accuracy of the fused head and of a linear "
             "probe on each encoder's features after the last epoch (mean ± std over seeds)")
table

# %% [markdown]
# ## Key numbers (nbval checks the shape of the table below, not its digits: CPUs round differently)

# %%
means = last.groupby(["dataset", "method"])[["fused", *probe_columns]].mean().round(4)
# DVC reads a metrics file as nested mappings (a list gives `dvc metrics diff` nothing to compare):
# dataset -> method -> head -> value, each dataset with its own modalities' probes only.
metrics = {dataset: {method: {head: value for head, value in row.items() if pd.notna(value)}
                     for (_, method), row in part.iterrows()} for dataset, part in means.groupby(level="dataset")}
write_text(json.dumps(metrics, indent=1), results_dir / "metrics.json")
print(means.round(3).to_string())

# %%
# NBVAL_CHECK_OUTPUT
print(stable_summary(means))
