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
