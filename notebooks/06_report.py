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
# # The claims report: which of the paper's claims hold here, by how much, how sure
#
# Reads every section's result files (nothing trains) and writes `results/REPORT.md`: one row per
# claim, the paper's number where it gives one, our paired difference over units, its 95%
# interval and a verdict by the rule printed first (`mcrlib.analysis.paired`). Also the
# per-family comparison table with Wilcoxon and Holm-adjusted p-values, and the quick profile's
# power. Its defaults below read the smoke outputs of the other notebooks.

# %% tags=["parameters"]
profile = "smoke"
sections_dir = "../results/smoke"   # where the sections wrote their results
report_path = "../results/smoke/REPORT.md"
n_classes = {"AV-Digits": 10}
other_runs = {}   # name -> claims.csv of another full run of this profile (other machine or threads)
results_dir = "../results/smoke/report"
root_dir = ".."

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from mcrlib.analysis import report
from mcrlib.atomic import atomic_path, write_text

results = Path(sections_dir)
claims, families = [], []
sections = {"synthetic": ("synthetic/runs.csv", report.synthetic_claims),
            "benchmarks": ("benchmarks/runs.csv", report.benchmark_claims),
            "ablations": ("ablations/runs.csv", report.ablation_claims),
            "three modalities": ("synthetic/three_modal_runs.csv", report.fused_term_claims)}
for section, (file, make) in sections.items():
    frame = report.load_optional(results / file)
    if frame is not None:
        rows, family = make(frame)
        claims += rows
        if len(family):
            families.append(family.assign(section=section))
for file, make in (("ablations/cost.csv", report.cost_claims), ("error_analysis/errors.csv", report.error_claims)):
    frame = report.load_optional(results / file)
    if frame is not None:
        claims += make(frame)
curves = report.load_optional(results / "competition/curves.csv")
if curves is not None:
    claims += report.probe_claims(curves, n_classes)
claims = report.with_other_runs(pd.DataFrame(claims), {name: pd.read_csv(path) for name, path in other_runs.items()})
families = pd.concat(families, ignore_index=True) if families else pd.DataFrame(columns=["section", "half_width"])
claims

# %% [markdown]
# ## Every paired comparison, with Wilcoxon and Holm-adjusted p-values

# %%
results_dir = Path(results_dir)
with atomic_path(results_dir / "comparisons.csv") as tmp:
    families.to_csv(tmp, index=False)
with atomic_path(results_dir / "claims.csv") as tmp:
    claims.to_csv(tmp, index=False)
power = report.power(families) if len(families) else pd.DataFrame()
power

# %%
header = (f"# Which of the paper's claims hold here\n\nRebuilt by `dvc repro` (stage `report`, {profile} profile) from the "
          "sections' result files; the numbers, intervals and verdicts below are computed, not written by hand.")
if other_runs:
    header += ("\n\nThe claims are also checked against other full runs of this profile: "
               + ", ".join(f"**{name}** (`{path.removeprefix('../')}`)" for name, path in other_runs.items())
               + ". A verdict that differs between runs was inconclusive: the column *verdict, all runs* is the one to read. "
               "A different run may also calibrate to a different recipe; its choice is in its folder.")
text = report.render(claims, power, {"text": report.calibration_text(results)}, header)
write_text(text, Path(report_path))
display(Markdown(text))

# %% [markdown]
# ## Verdict counts
# Not compared by nbval: on the smoke profile they depend on which section notebooks have written
# their smoke results; `tests/test_report.py` checks the verdicts on runs whose truth is known.

# %%
print(claims["verdict"].value_counts().sort_index().to_string() if len(claims) else "no claims")
