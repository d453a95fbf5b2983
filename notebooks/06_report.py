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
# # The claims report: which of the paper's claims hold here, by how much, how sure
#
# Reads every section's result files (nothing trains) and writes `results/REPORT.md`: one row per
# claim, the paper's number where it gives one, our paired difference over units, its 95%
# interval and one of four verdicts by the rule printed first (`mcrlib.analysis.inference`:
# holds, contradicted, equivalent within the declared margin, inconclusive with the difference
# the design can detect); the declared primary claims Holm-adjusted together; every comparison
# with the Ensemble under each of the authors' rules; and the profile's power. It reads the results of its profile's other sections (beside its own results folder) and
# writes REPORT.md there; the default profile, smoke, reads the other notebooks' smoke outputs.

# %% tags=["parameters"]
profile = "smoke"   # profiles/<profile>.yaml over params.yaml ("quick": params.yaml itself, as dvc repro runs)
results_dir = "../results/smoke/report"
root_dir = ".."

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from mcrlib.analysis import report, report_text
from mcrlib.analysis.authors_values import against_authors, against_authors_markdown
from mcrlib.analysis.ensemble_rules import rule_table
from mcrlib.atomic import atomic_path, write_text
from mcrlib.profiles import load_stage

params = load_stage(profile, "report", root_dir, reads=("synthetic", "benchmarks"), calibrated=False)
section = report_text.load_report_config(params["report"])   # a bad key or value: a ConfigError naming it
n_classes, other_runs = section.n_classes, section.other_runs or {}
margins, primary = section.equivalence_margin, list(section.primary)
results = Path(results_dir).parent          # the profile's results: every section's folder
report_path = results / "REPORT.md"
claims, families = [], []
sections = {"synthetic": ("synthetic/runs.csv", report.synthetic_claims),
            "benchmarks": ("benchmarks/runs.csv", report.benchmark_claims),
            "ablations": ("ablations/runs.csv", report.ablation_claims),
            "three modalities": ("synthetic/three_modal_runs.csv", report.fused_term_claims),
            "ConFu, XOR": ("confu/xor_runs.csv", report.confu_xor_claims),
            "ConFu, AV-Digits": ("confu/avdigits_runs.csv", report.confu_avdigits_claims)}
for name, (file, make) in sections.items():
    frame = report_text.load_optional(results / file)
    if frame is not None:
        rows, family = make(frame, margins)
        claims += rows
        if len(family):
            families.append(family.assign(section=name))
frame = report_text.load_optional(results / "ablations/cost.csv")
if frame is not None:
    claims += report.cost_claims(frame)
frame = report_text.load_optional(results / "error_analysis/errors.csv")
if frame is not None:
    claims += report.error_claims(frame, margins)
curves = report_text.load_optional(results / "competition/curves.csv")
if curves is not None:
    claims += report.probe_claims(curves, n_classes)
claims, missing_primary = report_text.finalise(pd.DataFrame(claims), primary)
claims = report_text.with_other_runs(claims, {name: pd.read_csv(path) for name, path in other_runs.items()})
families = (pd.concat(families, ignore_index=True) if families
            else pd.DataFrame(columns=["section", "half_width", "detectable"]))
claims

# %% [markdown]
# ## Every comparison against the Ensemble, under each of the authors' rules

# %%
rules = []
for study, file, cell in (("synthetic", "synthetic/runs.csv", "ratio"), ("benchmarks", "benchmarks/runs.csv", "dataset")):
    frame = report_text.load_optional(results / file)
    if frame is None or "ensemble" not in set(frame["method"]):
        continue
    declared = params[study].get("method_params", {}).get("ensemble", {}).get("combine", "standardised_logits")
    frame = frame[~frame["method"].str.startswith("unimodal")]
    units, block = (("fold", "seed"), "fold") if "fold" in frame else (("seed",), None)
    label = "synthetic" if study == "synthetic" else next(iter(frame["dataset"]))
    table = rule_table(frame, cell=cell, declared=declared, methods=[m for m in ("joint", "mcr") if m in set(frame["method"])],
                       units=units, block=block, margin=report.margin_for(label, margins), claims={"joint": -1})
    rules.append(table.assign(study=study).rename(columns={cell: "cell"}))
rules = pd.concat(rules, ignore_index=True) if rules else pd.DataFrame()
if len(rules):
    rules["cell"] = [f"u1/s = {c:g}" if s == "synthetic" else c for s, c in zip(rules["study"], rules["cell"])]
rules

# %% [markdown]
# ## Every paired comparison, and the power of the profile

# %%
results_dir = Path(results_dir)
for frame, name in ((families, "comparisons.csv"), (claims, "claims.csv"), (rules, "ensemble_rules.csv")):
    with atomic_path(results_dir / name) as tmp:
        frame.to_csv(tmp, index=False)
power = report_text.power(families) if len(families) else pd.DataFrame()
power

# %%
header = (f"# Which of the paper's claims hold here\n\nRebuilt by `dvc repro` (stage `report`, {profile} profile) from the "
          "sections' result files; the numbers, intervals and verdicts below are computed, not written by hand.")
benchmark_runs = report_text.load_optional(results / "benchmarks/runs.csv")
authors = against_authors(benchmark_runs) if benchmark_runs is not None else against_authors(pd.DataFrame(
    columns=["dataset", "method", "test_acc"]))
with atomic_path(results_dir / "against_authors.csv") as tmp:
    authors.to_csv(tmp, index=False)
text = report_text.render(header=header, claims=claims, power_table=power,
                          calibration=report_text.calibration_text(results),
                          rules=rules, counts_before=section.counts_before,
                          missing_primary=missing_primary, against_authors=against_authors_markdown(authors))
write_text(text, Path(report_path))
display(Markdown(text))

# %% [markdown]
# ## Verdict counts
# Not compared by nbval: on the smoke profile they depend on which section notebooks have written
# their smoke results; `tests/test_report.py` checks the verdicts on runs whose truth is known.

# %%
print(report_text.verdict_counts(claims).to_string() if len(claims) else "no claims")
