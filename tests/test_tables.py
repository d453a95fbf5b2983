"""Tables: mean ± std per cell, exported as CSV, Markdown and LaTeX."""
import pandas as pd

from mcrlib.analysis.tables import export_table, format_pm, mean_std


def test_mean_std_table_marks_cells_without_runs(tmp_path):
    runs = pd.DataFrame({"method": ["a", "a", "b"], "dataset": ["d1", "d1", "d2"], "acc": [0.5, 0.7, 0.9]})
    table = format_pm(mean_std(runs, index="method", columns="dataset", value="acc"), index="method", columns="dataset")
    assert table.loc["a", "d1"] == "60.0 ± 14.1" and table.loc["b", "d2"] == "90.0 ± 0.0"
    csv, md, tex = export_table(table, tmp_path / "t", caption="Caption")
    assert md.read_text().startswith("Caption\n\n") and "| a        | 60.0 ± 14.1 | —          |" in md.read_text()
    assert "nan" not in md.read_text() and "nan" not in tex.read_text() and "—" in tex.read_text()
    assert pd.read_csv(csv, index_col=0).loc["a", "d1"] == "60.0 ± 14.1"


def test_stable_summary_prints_shape_not_digits():
    import pandas as pd
    from mcrlib.analysis.tables import stable_summary
    a = pd.DataFrame({"x": [0.3501, float("nan")], "y": [0.2, 0.9]}, index=["joint", "mcr"])
    b = a.copy()
    b.loc["joint", "x"] = 0.3499       # another CPU's rounding, amplified by training
    assert stable_summary(a) == stable_summary(b)
    assert stable_summary(a) == ("rows: ['joint', 'mcr']\ncolumns: ['x', 'y']\n"
                                 "filled: 3 of 4; every value in [0, 1]: True")
    a.loc["mcr", "y"] = 1.5
    assert "every value in [0, 1]: False" in stable_summary(a)
    multi = pd.Series([0.1, 0.2], index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    assert stable_summary(multi).startswith("rows: ['a / 1', 'a / 2']")
