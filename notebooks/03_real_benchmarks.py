# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# Its own defaults below are the *smoke* profile: a small synthetic dataset, so it runs anywhere,
# once with MLP encoders and once with `conformer-tiny`: the pretrained family's exact code path
# (transformers' Wav2Vec2 and HuBERT classes, torchaudio's Conformer) from tiny random configs,
# each modality's 64 features read as a waveform. It checks the two-family layout, not accuracy.

# %% tags=["parameters"]
profile = "smoke"
smoke_data = {'latent_dim': 8, 'input_dim': 64, 'mean_scale': 2.5, 'n_train': 256, 'n_val': 256, 'n_test': 512}
tiny_speech = {'hidden_size': 16, 'num_hidden_layers': 2, 'num_attention_heads': 2, 'intermediate_size': 32, 'conv_dim': [8, 8], 'conv_kernel': [3, 3], 'conv_stride': [2, 2], 'num_conv_pos_embeddings': 4, 'num_conv_pos_embedding_groups': 2, 'layerdrop': 0.0, 'mask_time_prob': 0.0}
tiny_head = {'bottleneck': 8, 'd_model': 16, 'n_layers': 2, 'n_heads': 2, 'conv_kernel': 3}
datasets = {
    'synthetic (smoke)': {'name': 'synthetic', 'params': smoke_data, 'family': 'MLP'},
    'synthetic (smoke), conformer-tiny': {'name': 'synthetic', 'params': smoke_data, 'family': 'conformer-tiny', 'model': {'encoders': {
        'x1': {'kind': 'speech_conformer', 'backbone': 'wav2vec2', 'random_config': tiny_speech, 'keep_layers': 2, 'head': tiny_head},
        'x2': {'kind': 'speech_conformer', 'backbone': 'hubert', 'random_config': tiny_speech, 'keep_layers': 2, 'head': tiny_head}}}},
}
seeds = [0, 1, 2]
methods = ["ensemble", "joint", "multiloss", "unipre_frozen", "unipre_finetuned", "ogm", "agm", "mlb", "mmpareto", "reconboost", "dnr", "mcr"]
model = {"hidden_dim": 32, "latent_dim": 16}
train = {"max_epochs": 6, "batch_size": 32, "patience": 6, "progress": False}
method_params = {"mcr": {"copies": 8}, "reconboost": {"epochs_per_stage": 1, "correct_epochs": 1}, "dnr": {"reinit_epoch": 2}}
search = {"seeds": [0], "grid": {}}
workers = 1
results_dir = "../results/smoke/benchmarks"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
from pathlib import Path

import matplotlib.pyplot as plt

from mcrlib.analysis.plots import save_figure
from mcrlib.analysis.tables import display_names, export_table, format_pm, mean_std, method_order
from mcrlib.atomic import write_text
from mcrlib.studies.benchmarks import gain_over_ensemble, load_study, resolve_datasets, run_study
from mcrlib.studies.grid import save_runs

study = load_study(dict(profile=profile, datasets=resolve_datasets(datasets, root_dir), seeds=seeds,
                        methods=methods, model=model, train=train, method_params=method_params,
                        search=search, workers=workers))
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
print(f"profile {study.profile}: datasets {list(study.datasets)}, seeds {list(study.seeds)}, "
      f"{len(study.methods)} methods")

# %% [markdown]
# ## Train (or load from the run cache) every run
# Per dataset and seed: the unimodal models (the Ensemble combines them; Uni-Pre starts from
# them) and every method, with the same model, optimiser, budget and early stopping.

# %%
runs, trials = run_study(study, cache_dir)
save_runs(runs, trials, results_dir)
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
# ## Figure 4: accuracy minus the Ensemble's (same seed), mean ± std

# %%
gains = gain_over_ensemble(runs[~runs["method"].str.startswith("unimodal")])
summary = mean_std(gains, index="dataset", columns="method", value="gain")
order = [m for m in TABLE_ORDER if m in set(summary["method"])]
families = study.families()        # one row of panels per backbone family
width = max(len(labels) for labels in families.values())
fig, axes = plt.subplots(len(families), width, figsize=(1.0 + 0.55 * len(order) * width, 3.6 * len(families)),
                         squeeze=False)
for row, (family, labels) in zip(axes, families.items()):
    for ax in row[len(labels):]:
        ax.axis("off")
    for ax, dataset in zip(row, labels):
        part = summary[summary["dataset"] == dataset].set_index("method").reindex(order)
        colors = ["black" if m == "mcr" else "tab:blue" for m in order]
        ax.bar(range(len(order)), part["mean"] * 100, yerr=part["std"].fillna(0) * 100, color=colors, capsize=3)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(order)), display_names(order), rotation=60, ha="right")
        ax.set(title=f"{dataset}\n{family} family", ylabel="accuracy − Ensemble (points)")
fig.suptitle(f"Figure 4: gain over the Ensemble per backbone family ({study.profile} profile, seeds "
             f"{list(study.seeds)})", fontsize=10)
fig.tight_layout()
save_figure(fig, figures_dir / "fig4_benchmarks")
plt.show()
plt.close(fig)

# %% [markdown]
# ## Key numbers (checked by `pytest --nbval-lax` on the smoke profile)

# %%
# Figure 4's panels: the families and their datasets
print({family: labels for family, labels in families.items()})
means = runs.groupby(["dataset", "method"])["test_acc"].mean().unstack(0)
write_text(means.round(4).to_json(indent=1), results_dir / "metrics.json")
# NBVAL_CHECK_OUTPUT
print(means.round(3).to_string())
