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

from mcrlib.analysis.plots import competition_curves, profile_stamp, save_figure
from mcrlib.analysis.tables import display_names, export_table, format_pm, mean_std, stable_summary
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
# Per dataset and method, the fused test accuracy and a linear probe of each encoder's features;
# the last column, the probe gap of each method. Means over the epochs every seed reached.

# %%
probe_columns = [c for c in curves.columns if c.startswith("probe ") and c != "probe gap"]
n_classes = load_stage(profile, "report", root_dir)["report"].get("n_classes") or {}
caption = (f"Competition ({params['competition'].get('profile', profile)} profile): per epoch, the fused head's test "
           f"accuracy and a logistic-regression probe of each encoder's features (fitted on training samples), "
           f"mean over seeds {sorted(int(s) for s in curves['seed'].unique())} and only over the epochs every seed reached (early "
           "stopping ends runs at different epochs); dashed: the Ensemble of the same seeds; dotted: chance. Probe "
           "gap: the stronger encoder's probe minus the weaker's.")
fig = competition_curves(curves, ensemble, chance={d: 1 / n for d, n in n_classes.items() if n},
                         label=lambda m: display_names([m])[0], caption=caption,
                         title="Figure 6: does one encoder fall behind during joint training, and does MCR close the gap?")
profile_stamp(fig, profile)
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
