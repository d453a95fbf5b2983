"""The claims report's verdicts on constructed runs whose truth is known."""
import numpy as np
import pytest
import pandas as pd

from mcrlib.analysis import report, report_text

M = {"D": 0.02, "synthetic": 0.01}     # equivalence margins, as params.yaml declares them


def runs(effects: dict[str, float], units: int = 6, noise: float = 0.005) -> pd.DataFrame:
    rows = []
    for seed in range(units):
        base = 0.6 + 0.02 * seed                      # a unit effect that pairing removes
        wobble = noise * (-1) ** seed
        for method, effect in effects.items():
            rows.append({"dataset": "D", "seed": seed, "method": method, "test_acc": base + effect + (wobble if method != "ensemble" else 0)})
    return pd.DataFrame(rows)


def by_claim(rows):
    return {r["claim"]: r for r in rows}


def test_benchmark_claims_follow_the_paired_intervals():
    claims, families = report.benchmark_claims(runs({"ensemble": 0.0, "joint": -0.05, "mcr": 0.04, "ogm": -0.03,
                                                     "agm": -0.04, "mlb": 0.0}), M)
    got = by_claim([c for c in claims if c["data"] == "D"])
    assert got["MCR is above the Ensemble"]["verdict"] == "holds"
    assert got["Joint training is below the Ensemble (the premise)"]["verdict"] == "holds"
    assert got["MCR is above joint training"]["verdict"] == "holds"
    assert got["Most earlier methods are below the Ensemble"]["verdict"] == "holds"   # joint, ogm, agm of 4
    claims, _ = report.benchmark_claims(runs({"ensemble": 0.0, "joint": 0.03, "mcr": -0.04}), M)
    got = by_claim([c for c in claims if c["data"] == "D"])
    assert got["MCR is above the Ensemble"]["verdict"] == "contradicted"
    assert got["Joint training is below the Ensemble (the premise)"]["verdict"] == "contradicted"
    assert any(c["verdict"] == "paper only, data not available here" and c["data"] == "MOSI V-A-T" for c in claims)


def test_a_best_claim_is_contradicted_by_any_better_rival():
    synthetic = runs({"joint": 0.0, "ensemble": 0.0, "mcr": 0.05}).assign(ratio=4.0)
    low = runs({"joint": 0.1, "ensemble": 0.05, "mcr": 0.06}).assign(ratio=0.25)
    claims, _ = report.synthetic_claims(pd.concat([synthetic, low]).drop(columns="dataset"), M)
    got = by_claim(claims)
    assert got["MCR is the most accurate method at the most imbalanced ratio"]["verdict"] == "holds"
    # drops: joint 0.10, ensemble 0.05, MCR 0.01 -> MCR declines slowest
    assert got["MCR's accuracy declines slowest as u1/s grows (0.25 → 4)"]["verdict"] == "holds"
    # a rival 1 point above MCR at u1/s = 4 contradicts "MCR highest"
    better = runs({"joint": 0.0, "ensemble": 0.0, "mcr": 0.05, "mlb": 0.06}).assign(ratio=4.0)
    low = runs({"joint": 0.1, "ensemble": 0.05, "mcr": 0.06, "mlb": 0.06}).assign(ratio=0.25)
    got = by_claim(report.synthetic_claims(pd.concat([better, low]).drop(columns="dataset"), M)[0])
    assert got["MCR is the most accurate method at the most imbalanced ratio"]["verdict"] == "contradicted"
    assert "vs mlb" in got["MCR is the most accurate method at the most imbalanced ratio"]["ours (points)"]


def test_cost_claims_read_the_ratio_columns_only():
    cost = pd.DataFrame({"variant": ["joint", "mcr, permute latent"], "mlp: time (ms)": [1.0, 4.0],
                         "mlp: time / joint": [1.0, 4.0], "resnet: time / joint": [1.0, 1.1]})
    rows = report.cost_claims(cost)
    assert [(r["data"].split()[0], r["verdict"]) for r in rows] == [("mlp", "contradicted"), ("resnet", "holds")]


def test_other_runs_are_sensitivity_columns_that_decide_nothing():
    claims = pd.DataFrame([{"claim": "A", "data": "D", "verdict": "holds"}, {"claim": "B", "data": "D", "verdict": "holds"},
                           {"claim": "C", "data": "D", "verdict": "inconclusive"}])
    other = pd.DataFrame([{"claim": "A", "data": "D", "verdict": "holds"}, {"claim": "B", "data": "D", "verdict": "inconclusive"}])
    out = report_text.with_other_runs(claims, {"threads": other})
    assert out["sensitivity: threads"].tolist() == ["holds", "inconclusive", "—"]
    assert out["verdict"].tolist() == ["holds", "holds", "inconclusive"]      # this run's verdicts stand


def test_no_difference_within_the_margin_is_equivalent_and_a_wide_interval_is_not():
    claims, _ = report.benchmark_claims(runs({"ensemble": 0.0, "joint": 0.0, "mcr": 0.0}, noise=0.002), M)
    got = by_claim([c for c in claims if c["data"] == "D"])
    assert got["MCR is above the Ensemble"]["verdict"] == "equivalent"
    claims, _ = report.benchmark_claims(runs({"ensemble": 0.0, "joint": 0.0, "mcr": 0.0}, noise=0.05), M)
    row = by_claim([c for c in claims if c["data"] == "D"])["MCR is above the Ensemble"]
    assert row["verdict"] == "inconclusive" and float(row["detectable (points)"]) > 2


def test_crossed_seeds_use_the_blocked_design_and_print_the_speaker_interval():
    rows = []
    for fold in range(6):
        for seed in range(5):
            speaker = 0.05 * (-1) ** fold                   # MCR's gain differs by speaker
            for method, gain in (("ensemble", 0.0), ("joint", -0.02), ("mcr", 0.01 + speaker)):
                rows.append({"dataset": "D", "fold": fold, "seed": seed, "method": method,
                             "test_acc": 0.6 + 0.01 * fold + gain + 0.003 * ((seed * 7 + fold) % 3 - 1)})
    claims, _ = report.benchmark_claims(pd.DataFrame(rows), M)
    got = by_claim([c for c in claims if c["data"] == "D"])
    mcr = got["MCR is above the Ensemble"]
    assert mcr["design"] == "folds fixed, seeds within" and mcr["n"] == 30
    assert mcr["verdict"] == "holds" and mcr["speaker-level interval"] != "—"
    # over speakers the +1 point is not resolved: the speaker-level interval covers 0
    low, high = (float(x) for x in mcr["speaker-level interval"].strip("[]").split(","))
    assert low < 0 < high


def test_primary_claims_are_holm_adjusted_and_a_missing_one_is_listed():
    claims, _ = report.benchmark_claims(runs({"ensemble": 0.0, "joint": -0.05, "mcr": 0.04}), M)
    table, missing = report_text.finalise(pd.DataFrame(claims), ["premise@D", "mcr_vs_joint@D", "mcr_highest@E"])
    primary = table[table["primary"]]
    assert sorted(primary["id"]) == ["mcr_vs_joint@D", "premise@D"] and missing == ["mcr_highest@E"]
    assert (primary["p_holm"] >= primary["p_t"]).all() and primary["p_holm"].notna().all()
    assert table.loc[~table["primary"], "p_holm"].isna().all()
    assert set(table["family"]) == {"primary (Holm)", "exploratory"}
    counts = report_text.verdict_counts(table)
    assert list(counts.columns) == ["holds", "contradicted", "equivalent", "inconclusive"]


def test_fused_term_claims_compare_fused_with_pairwise_on_both_sample_sets():
    three = runs({"joint": 0.0, "mcr": 0.0, "mcr_fused": 0.03})
    fused = three["method"] == "mcr_fused"
    # where x3 is silent, fused and pairwise differ by +-1 point from seed to seed: no effect
    three["acc_x3-silent"] = three["test_acc"] - 0.3 - fused * (0.03 + 0.01 * (-1) ** (three["seed"] // 2))
    claims, families = report.fused_term_claims(three, M)
    assert [c["data"] for c in claims] == ["synthetic XOR, all test samples", "synthetic XOR, x3-silent samples"]
    assert [c["verdict"] for c in claims] == ["holds", "inconclusive"]     # +3 points; 0 where x3 is silent
    assert set(families["family"]) == {"fused term, all test samples", "fused term, x3-silent samples"}
    assert report.fused_term_claims(three[~fused], M)[0] == []      # a run without the fused variant


def confu_runs(effects: dict[str, float], task: str, metric: str, folds=(0,), seeds=range(6)) -> pd.DataFrame:
    """The `confu` stage's long format: one row per (method, fold, seed, task, metric)."""
    rows = []
    for fold in folds:
        for seed in seeds:
            base = 0.5 + 0.03 * fold + 0.01 * seed + 0.004 * (-1) ** seed
            for method, effect in effects.items():
                rows.append({"dataset": "X", "method": method, "fold": fold, "seed": seed, "family": "f",
                             "task": task, "metric": metric, "value": base + effect + 0.003 * (method == "confu") * (-1) ** seed})
    return pd.DataFrame(rows)


def test_confu_claims_compare_confu_with_pairwise_in_each_design():
    task, metric = report.CONFU_XOR[0][2:4]
    xor = pd.concat([confu_runs({"confu": 0.4, "pairwise": 0.0, "symile": 0.45, "gram": 0.1}, task, metric),
                     confu_runs({"confu": 0.5, "pairwise": 0.0}, *report.CONFU_XOR[1][2:4])])
    claims, families = report.confu_xor_claims(xor, M)
    assert [c["verdict"] for c in claims] == ["holds", "holds"] and claims[0]["design"] == "units"
    assert "ConFu − pairwise: +40.0" in claims[0]["ours (points)"] and "gram +10.0" in claims[0]["ours (points)"]
    assert set(families["method"]) == {"confu", "symile", "gram"}
    # AV-Digits: folds as blocks; ConFu below pairwise contradicts the claim
    avd = confu_runs({"confu": -0.1, "pairwise": 0.0}, *report.CONFU_AVDIGITS[0][2:4], folds=range(6), seeds=range(2))
    claims, _ = report.confu_avdigits_claims(avd, M)
    assert claims[0]["verdict"] == "contradicted" and claims[0]["design"] == "folds fixed, seeds within"
    assert report.confu_avdigits_claims(avd[avd["method"] != "pairwise"], M)[0] == []   # no pairwise runs


def test_earlier_methods_come_from_the_registry():
    """Every registered training method counts as an earlier method (MMPareto, ReconBoost and D&R
    included), never MCR itself nor what it is compared against or built from."""
    from mcrlib.methods import METHODS
    assert set(report.earlier_methods()) == set(METHODS) - {"mcr", "ensemble", "unimodal"}
    claims, _ = report.benchmark_claims(runs({"ensemble": 0.0, "joint": 0.0, "mcr": 0.04, "mmpareto": -0.05,
                                              "reconboost": -0.05, "dnr": -0.05}), M)
    most = by_claim([c for c in claims if c["data"] == "D"])["Most earlier methods are below the Ensemble"]
    assert most["ours (points)"] == "3 of 4 significantly below, 0 above, 1 equivalent" and most["verdict"] == "holds"


def test_ensemble_rule_table_repairs_each_method_under_each_rule():
    from mcrlib.analysis.ensemble_rules import premise_by_rule, rule_table
    frame = runs({"ensemble": 0.0, "joint": -0.03, "mcr": 0.0}).assign(ratio=4.0)
    ens = frame["method"] == "ensemble"
    # under probability averaging the Ensemble is 5 points higher; under standardised logits the same
    frame.loc[ens, "acc_fused_probabilities"] = frame.loc[ens, "test_acc"] + 0.05
    frame.loc[ens, "acc_fused_standardised_logits"] = frame.loc[ens, "test_acc"]
    table = rule_table(frame, cell="ratio", declared="logit_sum", methods=["joint", "mcr"], units=("seed",),
                       block=None, margin=0.01, claims={"joint": -1})
    got = {(r["method"], r["rule"]): r for r in table.to_dict("records")}
    assert got[("mcr", "raw logit sum")]["declared"] and not got[("mcr", "probability averaging")]["declared"]
    assert got[("mcr", "probability averaging")]["mean_diff"] == pytest.approx(-0.05)
    assert got[("mcr", "probability averaging")]["verdict"] == "contradicted"
    assert got[("mcr", "raw logit sum")]["verdict"] == "equivalent"
    premise = premise_by_rule(table, "ratio")
    assert premise["verdict"].tolist() == ["holds", "holds", "holds"]   # joint below under every rule
    # a study whose runs lack a rule's column: that rule's Ensemble is missing, its comparisons undefined
    short = rule_table(frame.drop(columns="acc_fused_probabilities"), cell="ratio", declared="logit_sum",
                       methods=["mcr"], units=("seed",), block=None, margin=0.01)
    assert np.isnan(short.loc[short["rule"] == "probability averaging", "mean_diff"]).all()


def test_calibration_text_separates_selection_from_confirmation(tmp_path):
    """The chosen setting's numbers come from the selection seeds; the premise's from the benchmark
    seeds (folds as blocks), printed as a confirmation beside them."""
    import json
    (tmp_path / "calibrate").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "calibrate" / "chosen.json").write_text(json.dumps({
        "avdigits": {"params": {"image_energy": 0.2}, "meets_criterion": False},
        "criterion": {"unimodal_min": 0.5, "unimodal_max": 0.8, "ensemble_gain_min": 0.05, "joint_gap_min": 0.02,
                      "synthetic_unimodal_min": 0.3},
        "selection_seeds": {"benchmarks": list(range(100, 112))}}))
    rows = []
    for fold in range(6):
        for seed in (fold, fold + 6):
            for method, acc in (("unimodal-audio", 0.45), ("unimodal-visual", 0.65), ("ensemble", 0.78),
                                ("joint", 0.75 + 0.004 * (-1) ** (seed // 6))):
                rows.append({"dataset": "AV-Digits", "fold": fold, "seed": seed, "method": method,
                             "test_acc": acc + 0.01 * fold})
    pd.DataFrame(rows).to_csv(tmp_path / "benchmarks" / "runs.csv", index=False)
    text = report_text.calibration_text(tmp_path)
    assert "selection seeds (benchmarks: 100–111)" in text and "at least 2 points below" in text
    assert "no declared setting met the criterion" in text
    confirmation = next(line for line in text.splitlines() if line.startswith("- **confirmation, AV-Digits**"))
    assert "joint − Ensemble -3.0" in confirmation and "over 12 units (folds fixed, seeds within)" in confirmation
    assert "selection_seeds" not in text and "criterion**" not in text


def test_the_report_section_is_validated_with_errors_naming_the_key():
    from mcrlib.analysis.report_text import load_report_config
    from mcrlib.config import ConfigError
    from pathlib import Path
    from mcrlib.profiles import load_profile
    root = Path(__file__).resolve().parents[1]
    for profile in ("quick", "smoke", "paper"):   # every profile's section is valid
        load_report_config(load_profile(profile, root)["report"])
    for bad, key in (({"bogus": 1}, "bogus"), ({"equivalence_margin": {"AV-Digits": 2}}, "report.equivalence_margin.AV-Digits"),
                     ({"primary": "premise@AV-Digits"}, "report.primary"), ({"n_classes": {"x": 1}}, "report.n_classes.x")):
        with pytest.raises(ConfigError, match=key):
            load_report_config(bad)
