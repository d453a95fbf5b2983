"""Figures a reader can read alone: references marked alike, no colour twice, intervals, chance."""
import matplotlib
import matplotlib.container
import pandas as pd
import pytest

from mcrlib.analysis.plots import REFERENCE_STYLES, accuracy_against, mean_interval, profile_stamp
from mcrlib.analysis.tables import display_names

METHODS = ["unimodal-x1", "unimodal-x2", "ensemble", "joint", "multiloss", "unipre_frozen", "unipre_finetuned",
           "ogm", "agm", "mlb", "mslr", "pmr", "mmcosine", "arm", "mmpareto", "reconboost", "dnr", "mcr"]


@pytest.fixture
def runs():
    return pd.DataFrame([{"method": m, "ratio": r, "seed": s, "test_acc": 0.5 + 0.01 * k - 0.02 * r + 0.01 * s + 0.001 * (k * s % 3)}
                         for k, m in enumerate(METHODS) for r in (0.25, 1.0, 4.0) for s in range(4)])


def test_mean_interval_is_the_t_interval_of_the_mean():
    frame = pd.DataFrame({"mean": [0.5, 0.5], "std": [0.1, 0.1], "count": [4, 1]})
    half = mean_interval(frame)
    assert half[0] == pytest.approx(3.182446 * 0.1 / 2, rel=1e-5)   # t(0.975, 3) * s / sqrt(n)
    assert half[1] == 0   # one unit: no interval


def test_figure_1_marks_the_references_and_gives_every_method_its_own_colour(runs):
    fig = accuracy_against(runs, x="ratio", methods=METHODS, chance=0.2, logx=True, xlabel="u1/s",
                           title="t", caption="what this is", label=lambda m: display_names([m])[0])
    left, right = fig.axes
    labelled = lambda ax: {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(labelled(left)) == {"Unimodal x1", "Unimodal x2", "Ensemble", "Joint", "MCR"}
    assert set(labelled(right)) == set(display_names(METHODS)) - {"Unimodal x1", "Unimodal x2", "Ensemble"}
    others = {name: line for name, line in labelled(right).items() if name not in ("Joint", "MCR")}
    assert len(others) == len(METHODS) - 5
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in others.values()]
    assert len(set(colours)) == len(colours)                                  # no colour twice
    references = {matplotlib.colors.to_hex(s["color"]) for s in REFERENCE_STYLES.values()}
    assert not references & set(colours)                                      # the references stand out
    assert any(list(line.get_ydata()) == [20, 20] for line in left.get_lines())   # chance, 20%
    assert any(list(line.get_ydata()) == [0, 0] for line in right.get_lines())    # the Ensemble, paired
    assert len(left.collections) == 3 and len(right.collections) == 2             # bands: references only
    # the right panel is the paired difference: MCR - Ensemble, in points, at each ratio
    wide = runs.pivot_table(index=["ratio", "seed"], columns="method", values="test_acc")
    expected = ((wide["mcr"] - wide["ensemble"]).groupby(level="ratio").mean() * 100).tolist()
    assert list(labelled(right)["MCR"].get_ydata()) == pytest.approx(expected)
    assert "what this is" in [t.get_text() for t in fig.texts]
    matplotlib.pyplot.close(fig)


def test_a_smoke_figure_says_so_across_it(runs):
    fig = accuracy_against(runs, x="ratio", methods=METHODS, chance=None, xlabel="u1/s", title="t")
    before = [t.get_text() for t in fig.texts]
    profile_stamp(fig, "quick")
    assert [t.get_text() for t in fig.texts] == before
    profile_stamp(fig, "smoke")
    assert [t.get_text() for t in fig.texts] == [*before, "smoke profile: not a result"]
    matplotlib.pyplot.close(fig)


def test_figure_4_bars_are_the_reports_paired_intervals():
    """Each bar is compare()'s paired difference with its 95% interval, on (fold, seed) units with
    folds as blocks; the Ensemble's own accuracy and the units are in the heading."""
    from mcrlib.analysis.inference import compare
    from mcrlib.analysis.plots import gain_bars
    rows = [{"dataset": "AV", "fold": f, "seed": s, "method": m,
             "test_acc": 0.8 + 0.02 * f + {"ensemble": 0, "joint": -0.03, "mcr": 0.01}[m] + 0.004 * ((s * 7 + f) % 3)}
            for f in range(3) for s in (f, f + 3) for m in ("ensemble", "joint", "mcr")]
    runs = pd.DataFrame(rows)
    fig = gain_bars(runs, panels={"AV (resnet family)": "AV"}, order=["joint", "mcr"], margin={"AV": 0.02})
    ax, = fig.axes
    container, = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
    bars = [patch.get_height() for patch in container]
    expected = [compare(runs, method=m, reference="ensemble", units=["fold", "seed"], block="fold") for m in ("joint", "mcr")]
    assert bars == pytest.approx([100 * e["mean_diff"] for e in expected])
    caps = ax.lines   # the error bars' caps sit at the interval's ends
    ends = sorted({round(y, 6) for line in caps for y in line.get_ydata()})
    for e in expected:
        assert round(100 * e["low"], 6) in ends and round(100 * e["high"], 6) in ends
    assert "6 units" in ax.get_title() and f"{100 * runs[runs.method == 'ensemble'].test_acc.mean():.1f}%" in ax.get_title()
    matplotlib.pyplot.close(fig)
