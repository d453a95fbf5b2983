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
# # Benchmark calibration: does each benchmark contain the competition?
#
# The paper's premise is that joint training falls below an ensemble of unimodal models because
# one modality suppresses the other. A benchmark can only test a balancing method if it shows
# that problem. Each setting of a grid declared in `params.yaml` (before any of it ran) is trained
# with the unimodal models, the Ensemble and joint training only, never a balancing method, and
# judged by a criterion fixed in `mcrlib/studies/calibration.py`:
# - **(a)** each unimodal accuracy within [min, max]: neither near chance nor near ceiling;
# - **(b)** the Ensemble beats the best unimodal model by at least the set gain: complementary;
# - **(c)** joint training is below the Ensemble, its paired 95% interval excluding zero.
#
# For the synthetic generator: (a) both unimodal models informative at the lowest and highest
# u1/s, (c) joint training falls faster than the Ensemble from the lowest to the highest u1/s.
# The first setting in declared order that meets every criterion is chosen; otherwise the one
# meeting most, and the report says so. Its defaults below are the smoke profile.

# %% tags=["parameters"]
profile = "smoke"
criterion = {"unimodal_min": 0.3, "unimodal_max": 0.95, "ensemble_gain_min": 0.0, "synthetic_unimodal_min": 0.25}
grids = {}
synthetic_grid = {"mean_scale": [1.5, 2.5]}
workers = 1
synthetic = {"profile": "smoke", "ratios": [0.25, 4.0], "unique2": 0.1, "seeds": [0, 1, 2], "methods": ["joint"], "data": {"latent_dim": 8, "input_dim": 64, "n_train": 256, "n_val": 256, "n_test": 512}, "model": {"hidden_dim": 32, "latent_dim": 16}, "train": {"max_epochs": 6, "batch_size": 32, "patience": 6, "progress": False}}
benchmarks = {"datasets": {}, "seeds": [0, 1, 2], "methods": ["joint"]}
results_dir = "../results/smoke/calibration"
figures_dir = "../figures/smoke"
cache_dir = "../.mcr-cache/runs"
root_dir = ".."

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import display

from mcrlib.analysis.tables import export_table
from mcrlib.atomic import write_text
from mcrlib.studies import calibration as cal
from mcrlib.studies.benchmarks import run_study as run_benchmark_study
from mcrlib.studies.grid import run_grid

calibration = cal.load_calibration(dict(profile=profile, criterion=criterion, grids=grids,
                                        synthetic_grid=synthetic_grid, workers=workers))
results_dir = Path(results_dir)
print(f"profile {calibration.profile}; criterion {calibration.criterion}")

# %% [markdown]
# ## Real benchmarks: every setting of each calibrated dataset, over the benchmark's units

# %%
tables, knobs = {}, {}
if calibration.grids and benchmarks.get("datasets"):
    study, labels = cal.benchmark_grid(calibration, benchmarks, root_dir)
    runs, _ = run_benchmark_study(study, cache_dir)
    table = cal.judge_benchmark(runs, labels, calibration.criterion)
    for name in {n for n, _ in labels.values()}:
        tables[name] = table[table["dataset"] == name].reset_index(drop=True)
        knobs[name] = list(calibration.grids[name])
    results_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(results_dir / "benchmark_runs.csv", index=False)
    display(table)

# %% [markdown]
# ## Synthetic generator: the drop from the lowest to the highest u1/s

# %%
frames = []
for label, (setting, study) in cal.synthetic_grid(calibration, synthetic).items():
    part, _ = run_grid(cells=study.ratios, seeds=study.seeds, methods=study.methods, search=study.search,
                       make_config=study.run_config, modalities=lambda _: ("x1", "x2"), cache_dir=cache_dir,
                       workers=study.workers, cell_name="ratio")
    frames.append(part.assign(setting_label=label, setting=json.dumps(setting)))
if frames:
    synthetic_runs = pd.concat(frames, ignore_index=True)
    tables["synthetic"] = cal.judge_synthetic(synthetic_runs, calibration.criterion)
    knobs["synthetic"] = list(calibration.synthetic_grid)
    display(tables["synthetic"])

# %% [markdown]
# ## The calibration tables and the choice

# %%
results_dir.mkdir(parents=True, exist_ok=True)
for name, table in tables.items():
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype == float and column not in knobs[name]:
            shown[column] = shown[column].round(4)
    export_table(shown.set_index("setting"), results_dir / f"calibration_{name}",
                 caption=f"Calibration of {name}: every declared setting, criterion and choice ({calibration.profile} profile)")
chosen = cal.chosen_settings(tables, knobs)
chosen["criterion"] = {k: getattr(calibration.criterion, k) for k in calibration.criterion.__dataclass_fields__}
write_text(json.dumps(chosen, indent=1), results_dir / cal.CHOSEN_FILE)
write_text(json.dumps({name: {"chosen": v["params"], "meets_criterion": v["meets_criterion"]}
                       for name, v in chosen.items() if name != "criterion"}, indent=1), results_dir / "metrics.json")
# NBVAL_CHECK_OUTPUT
print(json.dumps({n: v for n, v in chosen.items() if n != "criterion"}, indent=1))
