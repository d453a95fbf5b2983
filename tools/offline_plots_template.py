"""Write .dvc/plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed inlined,
so `dvc plots show` / `dvc plots diff` draw their data plots without a network (DVC's own page
loads them from a CDN and stays blank offline). `.dvc/config` names it (`plots.html_template`).

    make plots-template      # npm pack the three pinned packages, then this script

The versions are the ones DVC's default page loads (dvc_render.vega), so the specs DVC writes
are the ones these libraries read. Their BSD-3-Clause licences are inlined beside them.
"""
from __future__ import annotations

import sys
import tarfile
from pathlib import Path

PACKAGES = {"vega": ("5.20.2", "package/build/vega.min.js"),
            "vega-lite": ("5.2.0", "package/build/vega-lite.min.js"),
            "vega-embed": ("6.18.2", "package/build/vega-embed.min.js")}
OUT = Path(".dvc/plots/offline.html")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot (offline: vega, vega-lite and vega-embed inlined)</title>
{libraries}
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def main(folder: str) -> None:
    blocks = []
    for name, (version, member) in PACKAGES.items():
        with tarfile.open(Path(folder) / f"{name}-{version}.tgz") as archive:
            script = archive.extractfile(member).read().decode()
            licence = archive.extractfile("package/LICENSE").read().decode()
        blocks.append(f"    <!-- {name} {version}, from npm; its licence:\n{licence.replace('--', '- -')}\n    -->\n"
                      f"    <script type=\"text/javascript\">\n{script}\n    </script>")
    # DVC replaces the literal {refresh_tag} and {plot_divs} (str.replace, not format); the page has no
    # {scripts}, so DVC's CDN script tags stay out.
    page = PAGE.replace("{libraries}", "\n".join(blocks))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(page)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
