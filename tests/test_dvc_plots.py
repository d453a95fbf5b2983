"""`dvc plots show` draws offline: the project's plots page inlines vega instead of loading a CDN."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_configured_plots_page_inlines_the_libraries():
    config = (ROOT / ".dvc" / "config").read_text()
    assert "html_template = plots/offline.html" in config
    page = (ROOT / ".dvc" / "plots" / "offline.html").read_text()
    assert page.count("{plot_divs}") == 1 and "{scripts}" not in page   # DVC's CDN tags have nowhere to go
    assert "src=\"http" not in page and "cdn.jsdelivr" not in page
    for name in ("vega 5.20.2", "vega-lite 5.2.0", "vega-embed 6.18.2"):
        assert f"<!-- {name}, from npm" in page
    assert page.count("Redistribution and use in source and binary forms") == 3   # the BSD licences


def test_dvc_plots_show_writes_a_page_without_a_network_dependency(tmp_path):
    out = tmp_path / "plots"
    done = subprocess.run(["dvc", "plots", "show", "results/synthetic/plot_fig1.csv", "-x", "ratio", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    page = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "vegaEmbed(" in page and "plot_fig1" in page
