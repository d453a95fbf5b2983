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
# # Ablations: paper Tables 2, 3 and 4, and appendix A.6
#
# MCR variants as rows, each an override of MCR's parameters on one base setting (the paper's
# defaults: greedy game, latent permutations, L_MIPD + L_con, latents of this step's training
# pass, clean reference attached), on every configured dataset, mean ± std over seeds:
# - **Table 2**: the game strategy (collaborative, independent, greedy);
# - **Table 3**: the loss components, every subset of {L_MIPD, L_con, L_CEB}; "none" sets the
#   three weights to 0 and leaves CE + λ_uni · the unimodal heads' CE;
# - **Table 4**: the perturbation (noise or zeros in input space, passed through the encoders
#   again; noise, zeros or permutations in latent space);
# - the two choices METHOD.md leaves open: `latent_source` and `detach_reference`;
# - **A.6**: time per training step and peak memory of each perturbation relative to joint
#   training (`benchmarks/cost.py`; measured, never asserted).
#
# On the quick profile the datasets are the synthetic data at a fixed u1/s and AV-Digits. No
# search: every variant changes one thing against the fixed base. Training lives in `mcrlib`
# and its run cache; its default profile below is *smoke* (seconds, profiles/smoke.yaml).

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/ablations"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from mcrlib.analysis.plots import profile_stamp, save_figure
from mcrlib.analysis.report import COST_THRESHOLD
from mcrlib.analysis.tables import export_table, stable_summary
from mcrlib.atomic import atomic_path, write_text
from mcrlib.profiles import load_stage
from mcrlib.studies.ablation_parts import assemble, load_part_inputs
from mcrlib.studies.ablations import TABLES, ablation_table

sys.path.insert(0, str(Path.cwd().parent))   # the repository root: benchmarks/ holds scripts, not library code
from benchmarks.cost import measure_cost  # noqa: E402

study, parts = load_part_inputs(profile, root_dir)   # calibrated where marked
cost = load_stage(profile, "ablations", root_dir)["ablations"]["cost"]
results_dir, figures_dir = Path(results_dir), Path(figures_dir)
print(f"profile {study.profile}: datasets {list(study.datasets)}, seeds {list(study.seeds)}, "
      f"{len(study.variants())} table rows, in {parts} part(s), base MCR params {study.mcr}")

# %% [markdown]
# ## Every variant, from the study's parts
# Per dataset and seed: the unimodal models and joint training (reference rows), then every
# table row. A row that is the base setting is the base run itself, trained once. The study trains
# in parts (params `parts.ablations`; mcrlib/studies/ablation_parts.py): under `dvc repro` each is
# its own stage (`ablations_part@k`, seeds[k::P]) and lands on its own, so here they are only read
# back (a missing or stale part is trained through the run cache, as a run without DVC does).

# %%
runs = assemble(study, parts, cache_dir, results_dir / "parts")
with atomic_path(results_dir / "runs.csv") as tmp:
    runs.to_csv(tmp, index=False)
print(f"{len(runs)} table entries from {runs.drop_duplicates(['dataset', 'seed', 'method', 'setting']).shape[0]} runs")
runs.head()

# %% [markdown]
# ## Tables 2, 3, 4 and the open choices
# Test accuracy (%) at the best-validation epoch. Where a dataset overrides a row (e.g. a
# smaller P for noise input, which costs P extra encoder passes), the caption says so.

# %%
seeds_text = f"mean ± std over seeds {list(study.seeds)}, {study.profile} profile"
notes = {
    "table2_strategy": "greedy: each encoder raises the divergence its own perturbation causes and lowers the others'",
    "table3_components": ("none = CE + lambda_uni x unimodal CE (lambda_M = lambda_con = lambda_ceb = 0); a term that is "
                          f"on keeps the base weight, or {study.component_weights} where the base has it at 0"),
    "table4_perturbation": (f"P = {study.mcr.get('copies', 32)} copies for the noise perturbations and permutations, one "
                            "for zeros; input perturbations pass the perturbed inputs through the encoders again"),
    "open_choices": "latent source of the perturbed latents; clean reference of the divergence detached or not",
}
for table in study.tables:
    wide = ablation_table(runs, table)
    overrides = study.variant_notes(table)
    caption = (f"{TABLES[table][0]}. Test accuracy (%), {seeds_text}; MCR variants as rows, joint training for "
               f"reference; {notes[table]}." + (f" Row overrides: {'; '.join(overrides)}." if overrides else ""))
    export_table(wide, results_dir / table, caption=caption)
    print(caption)
    display(wide)

# %% [markdown]
# ## Appendix A.6: cost of each perturbation relative to joint training
# Every variant's training step timed side by side in one process (order rotating between
# repetitions, ratio to joint within each repetition, median), at the paper's P. Memory is the
# peak a step allocates above what is held before it (see `benchmarks/cost.py`: CUDA allocator
# statistics on a GPU, the process's peak resident size on a CPU).

# %%
frames = []
for kind, spec in cost["models"].items():
    shapes = {m: tuple(s) for m, s in spec["shapes"].items()} if "shapes" in spec else None
    frames.append(measure_cost(model=kind, copies=cost["copies"], batch_size=cost["batch_size"],
                               repeats=cost["repeats"], steps=cost["steps"], threads=cost.get("threads", 1),
                               mcr_params=study.mcr, model_config=spec.get("model"), shapes=shapes,
                               device=cost.get("device", "auto")))
costs = pd.concat(frames, ignore_index=True)
first = costs.iloc[0]
cost_caption = (f"Appendix A.6: time per training step and peak step memory relative to joint training, median of "
                f"{first['repeats']} repetitions of {first['steps']} steps, P = {first['copies']}, batch "
                f"{first['batch_size']}, on {first['device']} ({first['threads']} thread(s)); memory: "
                f"{first['memory_measure']}; {study.profile} profile")
measures = {"time_ms": "time (ms)", "time_ratio": "time / joint", "memory_mib": "memory (MiB)", "memory_ratio": "memory / joint"}
cost_table = costs.pivot(index="variant", columns="model", values=list(measures)).reindex(costs["variant"].unique())
cost_table.columns = [f"{model}: {measures[m]}" for m, model in cost_table.columns]
cost_table = cost_table[sorted(cost_table.columns, key=lambda c: c.split(":")[0])].round(3)
export_table(cost_table, results_dir / "cost", caption=cost_caption)
print(cost_caption)
display(cost_table)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
for ax, column, title in zip(axes, ["time_ratio", "memory_ratio"], ["time per step", "peak step memory"]):
    costs.pivot(index="variant", columns="model", values=column).reindex(costs["variant"].unique()).plot.bar(ax=ax)
    ax.axhline(1, color="0.3", lw=0.8)
    ax.set(title=f"{title} / joint training's", ylabel="ratio to joint training (log scale)", xlabel="")
    ax.set_yscale("log")
    # ticks a reader can read on a log axis (the default gives two)
    ticks = [t for t in (0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50) if t <= 1.3 * costs[column].max()]
    ax.set_yticks(ticks, [f"{t:g}×" for t in ticks])
    ax.minorticks_off()
    ax.tick_params(axis="x", labelrotation=60)
    ax.grid(axis="y", alpha=0.3)
axes[0].axhline(COST_THRESHOLD, color="#c0392b", ls="--", lw=1.2, label=f"\"almost free\": {COST_THRESHOLD}×")
axes[0].legend(frameon=False, fontsize=8)
fig.suptitle(f"A.6: cost of each perturbation ({study.profile} profile, P = {first['copies']}, {first['device']})",
             fontsize=10)
fig.text(0.01, -0.01, cost_caption, wrap=True, fontsize=8.5, ha="left", va="top")
fig.tight_layout()
profile_stamp(fig, study.profile)
save_figure(fig, figures_dir / "a6_cost")
plt.show()
plt.close(fig)

# %% [markdown]
# ## Key numbers (nbval checks the shape of the accuracy table below, not its digits: CPUs round differently)

# %%
means = runs.groupby(["table", "variant", "dataset"], sort=False)["test_acc"].mean().round(4)
metrics = {"test_acc": {t: {v: part.droplevel([0, 1]).to_dict() for v, part in rows.groupby(level=1, sort=False)}
                        for t, rows in means.groupby(level=0, sort=False)},
           "cost": {m: part.set_index("variant")[["time_ratio", "memory_ratio"]].round(3).to_dict("index")
                    for m, part in costs.groupby("model")}}
write_text(json.dumps(metrics, indent=1), results_dir / "metrics.json")
print(means.round(3).to_string())

# %%
# NBVAL_CHECK_OUTPUT
print(stable_summary(means))
