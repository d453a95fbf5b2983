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
# # Real benchmarks: paper Figure 4 and Table 1
#
# Every method on every configured dataset, mean ± std over seeds (or folds): Table 1's layout,
# and Figure 4's accuracy gain over the Ensemble. On the quick profile the dataset is AV-Digits
# (real spoken digits from FSDD paired with UCI handwritten digits, split by speaker); the paper
# profile configures CREMA-D, AVE, UCF-51, CMU-MOSI/MOSEI and Something-Something V2.
# Figure 4 has one row per backbone family: the ResNet-18 family and the pretrained-encoder
# ("Conformer") family of paper A.3 (CREMA-D: Wav2Vec2 + face features; AVE: HuBERT + ViViT;
# each encoder followed by a Conformer), given by each dataset entry's `family` and `model.encoders`.
# This notebook only reads run results; training lives in `mcrlib` and its run cache.
# Its default profile is *smoke* (profiles/smoke.yaml): a small synthetic dataset, so it runs anywhere,
# once with MLP encoders and once with `conformer-tiny`: the pretrained family's exact code path
# (transformers' Wav2Vec2 and HuBERT classes, torchaudio's Conformer) from tiny random configs,
# each modality's 64 features read as a waveform. It checks the two-family layout, not accuracy.

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/benchmarks"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
from pathlib import Path

import matplotlib.pyplot as plt

from mcrlib.analysis.plots import gain_bars, profile_stamp, save_figure
from mcrlib.analysis.run_analyses import write_analyses
from mcrlib.analysis.tables import display_names, export_table, format_pm, mean_std, method_order, stable_summary
from mcrlib.atomic import write_text
from mcrlib.profiles import load_stage
from mcrlib.studies.benchmark_parts import assemble, load_part_inputs
from mcrlib.studies.grid import save_runs

study, parts, errors_section = load_part_inputs(profile, root_dir)   # calibrated where marked
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
print(f"profile {study.profile}: datasets {list(study.datasets)}, seeds {list(study.seeds)}, "
      f"{len(study.methods)} methods, in {parts} part(s)")

# %% [markdown]
# ## Every run, from the study's parts
# Per dataset and seed: the unimodal models (the Ensemble combines them; Uni-Pre starts from
# them) and every method, with the same model, optimiser, budget and early stopping. The study
# trains in parts (params `parts.benchmarks`; mcrlib/studies/benchmark_parts.py): under `dvc repro` each is
# its own stage (`benchmarks_part@k`, fold k's seeds), committed as it lands, and this notebook only
# reads them. A part that is missing, or whose run keys are not the study's now, is trained here
# through the run cache. Each part also holds what the error analysis (notebook 05) reads from its
# runs: unimodal-correctness groups and every trained run with one modality perturbed.

# %%
study_frames = assemble(study, parts, cache_dir, results_dir / "parts", perturbations=errors_section["perturbations"],
                        perturbation_seed=errors_section["perturbation_seed"])
runs, trials = study_frames["runs"], study_frames["search"]
save_runs(runs, trials, results_dir)
write_analyses({name: study_frames[name] for name in ("errors", "robustness")}, results_dir)
# A method that cannot run on a dataset (its task or modalities) is skipped there: "—" in the tables.
skipped = {f"{m} on {d}": study.skipped(m, d) for d in study.datasets for m in study.methods if not study.runs_on(m, d)}
print("skipped:", skipped or "none")
runs.head()

# %% [markdown]
# ## Table 1 layout: the unimodal models, then every method in the registry's order

# %%
TABLE_ORDER = method_order(runs["method"])
caption = (f"Test accuracy (%), mean ± std over seeds {list(study.seeds)}, {study.profile} profile; "
           "each column a dataset")
table = format_pm(mean_std(runs, index="method", columns="dataset", value="test_acc"),
                  index="method", columns="dataset", order=TABLE_ORDER)
export_table(table, results_dir / "table1", caption=caption)
table

# %% [markdown]
# ## Figure 4: each method against the Ensemble, paired, with the report's 95% intervals
# One panel per dataset (its backbone family in the heading): accuracy minus the Ensemble's on the
# same unit, with the interval REPORT.md gives the comparison (folds as fixed blocks on AV-Digits),
# the Ensemble's own accuracy in the heading, and the equivalence band ±Δ in grey.

# %%
order = [m for m in TABLE_ORDER if m != "ensemble" and not m.startswith("unimodal")]
families = study.families()        # the backbone family of each dataset
panels = {f"{dataset} ({family} family)": dataset for family, labels in families.items() for dataset in labels}
margins = load_stage(profile, "report", root_dir)["report"].get("equivalence_margin", {})
caption = (f"Benchmarks ({study.profile} profile): each method's test accuracy minus the Ensemble's on the same "
           f"unit (a fold and seed; seeds {list(study.seeds)}, seed i on fold i mod F), mean and 95% interval; "
           "grey: the declared equivalence margin ±Δ. Positive: above the Ensemble. Every method with the same "
           "model, budget and early stopping.")
fig = gain_bars(runs, panels=panels, order=order, label=lambda m: display_names([m])[0],
                margin={d: next((v for k, v in margins.items() if k in d), None) for d in panels.values()},
                title="Figure 4: every method against the Ensemble", caption=caption)
profile_stamp(fig, study.profile)
save_figure(fig, figures_dir / "fig4_benchmarks")
plt.show()
plt.close(fig)

# %% [markdown]
# ## Key numbers (nbval checks the shape of the table below, not its digits: CPUs round differently)

# %%
# Figure 4's panels: the families and their datasets
print({family: labels for family, labels in families.items()})
means = runs.groupby(["dataset", "method"])["test_acc"].mean().unstack(0)
write_text(means.round(4).to_json(indent=1), results_dir / "metrics.json")
print(means.round(3).to_string())

# %%
# NBVAL_CHECK_OUTPUT
print({family: labels for family, labels in families.items()})
print(stable_summary(means))
