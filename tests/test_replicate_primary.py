"""The other-kernel replicate of the primary claims: its own cache, the Holm family completed, flips named."""
import numpy as np
import pandas as pd
import pytest

from benchmarks import replicate_primary as rp

PRIMARY = ["premise@D", "mcr_vs_ensemble@D", "mcr_vs_joint@D", "greedy_best@D", "mcr_highest@synthetic"]


def bench_runs(mcr_gain):
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(6):
        for seed in (fold, fold + 6):
            for method, acc in (("ensemble", 0.80), ("joint", 0.76), ("mcr", 0.76 + mcr_gain)):
                rows.append({"dataset": "D", "fold": fold, "seed": seed, "method": method,
                             "test_acc": acc + 0.01 * fold + rng.normal(0, 0.003)})
    return pd.DataFrame(rows)


def ablation_runs():
    rows = []
    for fold in range(6):
        for seed in (fold, fold + 6):
            for variant, acc in (("greedy", 0.78), ("collaborative", 0.77), ("independent", 0.70)):
                rows.append({"dataset": "D", "fold": fold, "seed": seed, "table": "table2_strategy",
                             "variant": variant, "test_acc": acc + 0.002 * ((seed * 7) % 3)})
    return pd.DataFrame(rows)


def test_replicate_claims_complete_the_holm_family_with_the_main_runs_other_primaries():
    main = pd.DataFrame([{"id": "mcr_highest@synthetic", "claim": "MCR highest", "data": "synthetic", "verdict": "inconclusive",
                          "p_t": 0.5, "low": -0.01, "high": 0.03, "margin": 0.01, "95% interval": "[-1.0, +3.0]"}])
    params = {"equivalence_margin": {"D": 0.02}, "primary": PRIMARY}
    claims = rp.replicate_claims(bench_runs(0.03), ablation_runs(), main, params)
    assert "mcr_highest@synthetic" not in set(claims["id"])            # borrowed for Holm only
    primary = claims[claims["family"] == "primary (Holm)"].set_index("id")
    assert set(primary.index) == set(PRIMARY) - {"mcr_highest@synthetic"}
    assert primary.loc["mcr_vs_joint@D", "verdict"] == "holds" and primary.loc["premise@D", "verdict"] == "holds"
    # Holm over five p-values: the smallest is multiplied by 5, not by the 4 rerun here
    smallest = primary["p_t"].idxmin()
    assert primary.loc[smallest, "p_holm"] == pytest.approx(5 * primary.loc[smallest, "p_t"])


def test_side_by_side_names_flips_and_moves():
    main = pd.DataFrame({"id": ["a", "b", "c"], "family": ["primary (Holm)"] * 3, "verdict": ["holds", "holds", "inconclusive"],
                         "95% interval": ["[+1, +2]"] * 3, "p_holm": [0.01, 0.02, 0.5]})
    rep = pd.DataFrame({"id": ["a", "b", "c"], "verdict": ["holds", "contradicted", "holds"],
                        "95% interval": ["[+1, +2]"] * 3, "p_holm": [0.01, 0.01, 0.04]})
    assert rp.side_by_side(rep, main)["differs"].tolist() == ["same", "FLIP holds/contradicted", "moved"]


def test_it_refuses_to_run_without_kernel_settings_or_into_the_main_cache(monkeypatch, capsys):
    for key in rp.KERNEL_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit):
        rp.main([])
    assert "ATEN_CPU_CAPABILITY" in capsys.readouterr().err
    for key in rp.KERNEL_ENV:
        monkeypatch.setenv(key, "default")
    with pytest.raises(SystemExit):
        rp.main(["--cache", str(rp.ROOT / ".mcr-cache" / "runs")])
    assert "main run cache" in capsys.readouterr().err



def test_the_replicates_studies_load_from_the_committed_params():
    """The replicate builds its two studies from params.yaml as committed (calibrated from
    results/calibrate/chosen.json); a study that refuses its section would fail only hours into a run."""
    bench = rp.benchmark_study(workers=1)
    assert list(bench.methods) == ["ensemble", "joint", "mcr"] and set(bench.method_params) <= {"mcr"}
    declared = rp.load_stage("quick", "benchmarks", rp.ROOT)["benchmarks"]
    assert list(bench.seeds) == list(declared["seeds"]) and set(bench.datasets) == {"AV-Digits"}
    abl = rp.ablation_study(workers=1)
    assert [spec["name"] for spec in abl.datasets.values()] == ["avdigits"]
    assert list(abl.tables) == rp.PRIMARY_TABLES


def test_settings_that_change_no_operation_are_refused(monkeypatch, capsys):
    """ATEN_CPU_CAPABILITY set to the CPU's own family changes no operation of the fingerprint:
    the replicate would repeat the main run, so it refuses before training anything."""
    native = rp.kernel_fingerprint({})
    assert rp.changed_operations({"ATEN_CPU_CAPABILITY": native["capability"].lower()}) == []
    for key in rp.KERNEL_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", native["capability"].lower())
    with pytest.raises(SystemExit):
        rp.main(["--cache", "/nonexistent/replicate-cache"])
    assert "own kernels" in capsys.readouterr().err


def test_onednn_at_sse41_changes_the_resnets_convolutions():
    """The default setting of the replicate: on any CPU with AVX2 (every machine this project
    targets), oneDNN capped at SSE4.1 computes the convolutions with other kernels, and so rounds
    them differently, while ATen's own family stays the machine's."""
    changed = rp.changed_operations({"ONEDNN_MAX_CPU_ISA": "SSE41"})
    assert "conv 8->8" in changed and "capability" not in changed


def test_runs_equal_to_the_main_run_are_counted():
    main_bench = pd.read_csv(rp.ROOT / "results" / "benchmarks" / "runs.csv").head(8)
    main_abl = pd.read_csv(rp.ROOT / "results" / "ablations" / "runs.csv")
    main_abl = main_abl[main_abl["dataset"] == "AV-Digits"].head(5)
    trained = int((main_bench["method"] != "ensemble").sum()) + len(main_abl)
    assert rp.runs_equal_to_main(main_bench, main_abl) == (trained, trained)
    moved = main_bench.assign(test_acc=main_bench["test_acc"] + 0.01)
    assert rp.runs_equal_to_main(moved, main_abl) == (len(main_abl), trained)
