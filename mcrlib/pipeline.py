"""Execute a section notebook with its params.yaml section, as a DVC stage does.

    python -m mcrlib.pipeline notebooks/02_synthetic_study.py --section synthetic

The Jupytext percent file is the source of truth: it is converted in memory and executed by
papermill with the section's keys as parameters (injected after the tagged parameters cell),
in the notebook's folder, with the output folders of the pipeline. The executed copy is
written to results/notebooks/.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import jupytext
import nbformat
import papermill
import traitlets
import yaml
from jupyter_client.manager import AsyncKernelManager

from mcrlib.atomic import atomic_path


class IPCKernelManager(AsyncKernelManager):
    """The notebook's kernel on local IPC sockets: a stage's kernel never listens on TCP, and the
    log carries no warning about unencrypted TCP traffic."""
    transport = traitlets.CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)


def section_params(params_file: Path, section: str) -> dict:
    params = yaml.safe_load(params_file.read_text()) or {}
    if section not in params:
        raise SystemExit(f"{params_file} has no section {section!r}; sections: {sorted(params)}")
    return params[section]


def execute(notebook: Path, section: str, *, root: Path, params_file: Path, also: tuple[str, ...] = ()) -> Path:
    """Run `notebook` with the keys of `section` as parameters, and each section named in `also`
    as one dict parameter of that name (an analysis that reads other sections' runs)."""
    root = root.resolve()
    here = notebook.parent.resolve()     # the kernel's working directory
    rel = lambda path: os.path.relpath(path, here)   # injected paths do not depend on the checkout's place
    source = jupytext.read(notebook)
    declared = _declared_parameters(source)
    # What every stage offers; a notebook gets those its parameters cell declares, so papermill
    # never reports a "Passed unknown parameter" that is not a mistake.
    standard = {
        "root_dir": rel(root),
        "results_dir": rel(root / "results" / section),
        "figures_dir": rel(root / "figures"),
        "cache_dir": os.environ.get("MCR_RUN_CACHE", rel(root / ".mcr-cache" / "runs")),
    }
    parameters = {
        **section_params(params_file, section),
        **{name: section_params(params_file, name) for name in also},
        **{k: v for k, v in standard.items() if k in declared},
    }
    output = root / "results" / "notebooks" / f"{notebook.stem}.ipynb"
    with atomic_path(output) as tmp:
        papermill.execute_notebook(source, str(tmp), parameters=parameters,
                                   kernel_name="python3", cwd=str(notebook.parent.resolve()),
                                   progress_bar=False, log_output=True, kernel_manager_class=IPCKernelManager)
        _drop_volatile(tmp)
    return output


def _drop_volatile(path: Path) -> None:
    """Remove what changes on every execution and says nothing about the results (timestamps,
    durations, temporary paths, progress-bar widgets), so a rebuilt notebook is identical and git
    shows no change when the numbers did not change."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for key in ("duration", "start_time", "end_time", "input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    for number, cell in enumerate(nb.cells):
        cell.id = f"cell-{number}"       # papermill's injected cell gets a random id
        cell.metadata.pop("execution", None)
        for key in ("duration", "start_time", "end_time"):
            cell.metadata.get("papermill", {}).pop(key, None)
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    nbformat.write(nb, path)


def _declared_parameters(notebook) -> set[str]:
    """Names assigned in the notebook's cell tagged `parameters`."""
    import ast
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    return {t.id for c in cells for node in ast.parse(c.source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, help="a notebooks/*.py percent file")
    parser.add_argument("--section", required=True, help="the params.yaml section to inject")
    parser.add_argument("--with", dest="also", nargs="*", default=[],
                        help="other params.yaml sections, each injected as one dict parameter")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    output = execute(args.notebook, args.section, root=Path.cwd(), params_file=args.params, also=tuple(args.also))
    print(f"executed copy: {output}")


if __name__ == "__main__":
    main()
