"""The claims report's verdicts on constructed runs whose truth is known."""
import pandas as pd

from mcrlib.analysis import report


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
                                                     "agm": -0.04, "mlb": 0.0}))
    got = by_claim([c for c in claims if c["data"] == "D"])
    assert got["MCR is above the Ensemble"]["verdict"] == "holds"
    assert got["Joint training is below the Ensemble (the premise)"]["verdict"] == "holds"
    assert got["MCR is above joint training"]["verdict"] == "holds"
    assert got["Most earlier methods are below the Ensemble"]["verdict"] == "holds"   # joint, ogm, agm of 4
    claims, _ = report.benchmark_claims(runs({"ensemble": 0.0, "joint": 0.03, "mcr": -0.04}))
    got = by_claim([c for c in claims if c["data"] == "D"])
    assert got["MCR is above the Ensemble"]["verdict"] == "contradicted"
    assert got["Joint training is below the Ensemble (the premise)"]["verdict"] == "contradicted"
    assert any(c["verdict"] == "paper only, data not available here" and c["data"] == "MOSI V-A-T" for c in claims)


def test_a_best_claim_is_contradicted_by_any_better_rival():
    assert report.best_verdict(["holds", "holds"]) == "holds"
    assert report.best_verdict(["holds", "contradicted"]) == "contradicted"
    assert report.best_verdict(["holds", "inconclusive"]) == "inconclusive"
    synthetic = runs({"joint": 0.0, "ensemble": 0.0, "mcr": 0.05}).assign(ratio=4.0)
    low = runs({"joint": 0.1, "ensemble": 0.05, "mcr": 0.06}).assign(ratio=0.25)
    claims, _ = report.synthetic_claims(pd.concat([synthetic, low]).drop(columns="dataset"))
    got = by_claim(claims)
    assert got["MCR is the most accurate method at the most imbalanced ratio"]["verdict"] == "holds"
    # drops: joint 0.10, ensemble 0.05, MCR 0.01 -> MCR declines slowest
    assert got["MCR's accuracy declines slowest as u1/s grows (0.25 → 4)"]["verdict"] == "holds"


def test_cost_claims_read_the_ratio_columns_only():
    cost = pd.DataFrame({"variant": ["joint", "mcr, permute latent"], "mlp: time (ms)": [1.0, 4.0],
                         "mlp: time / joint": [1.0, 4.0], "resnet: time / joint": [1.0, 1.1]})
    rows = report.cost_claims(cost)
    assert [(r["data"].split()[0], r["verdict"]) for r in rows] == [("mlp", "contradicted"), ("resnet", "holds")]


def test_a_verdict_that_changes_between_runs_is_inconclusive():
    claims = pd.DataFrame([{"claim": "A", "data": "D", "verdict": "holds"}, {"claim": "B", "data": "D", "verdict": "holds"},
                           {"claim": "C", "data": "D", "verdict": "inconclusive"}])
    other = pd.DataFrame([{"claim": "A", "data": "D", "verdict": "holds"}, {"claim": "B", "data": "D", "verdict": "inconclusive"}])
    out = report.with_other_runs(claims, {"threads": other})
    assert out["verdict (threads)"].tolist() == ["holds", "inconclusive", "—"]
    assert out["verdict, all runs"].tolist() == ["holds", "inconclusive (differs between runs)", "inconclusive"]
    assert report.with_other_runs(claims, {}) is claims


def test_fused_term_claims_compare_fused_with_pairwise_on_both_sample_sets():
    three = runs({"joint": 0.0, "mcr": 0.0, "mcr_fused": 0.03})
    fused = three["method"] == "mcr_fused"
    # where x3 is silent, fused and pairwise differ by +-1 point from seed to seed: no effect
    three["acc_x3-silent"] = three["test_acc"] - 0.3 - fused * (0.03 + 0.01 * (-1) ** (three["seed"] // 2))
    claims, families = report.fused_term_claims(three)
    assert [c["data"] for c in claims] == ["synthetic XOR, all test samples", "synthetic XOR, x3-silent samples"]
    assert [c["verdict"] for c in claims] == ["holds", "inconclusive"]     # +3 points; 0 where x3 is silent
    assert set(families["family"]) == {"fused term, all test samples", "fused term, x3-silent samples"}
    assert report.fused_term_claims(three[~fused])[0] == []      # a run without the fused variant
