"""Execute a section notebook under a profile, as a DVC stage does; or every stage of a profile.

    python -m mcrlib.pipeline notebooks/02_synthetic_study.py --section synthetic   # one stage, quick
    python -m mcrlib.pipeline --profile paper        # every stage of dvc.yaml, in its order

The Jupytext percent file is the source of truth: it is converted in memory and executed by
papermill with the profile's name and the standard paths as parameters (injected after the
tagged parameters cell), in the notebook's folder. The notebook loads its sections itself
(mcrlib.profiles.load_stage: params.yaml, the profile's overrides, the calibration's choice).
Each profile writes to its own folders (mcrlib.profiles.results_root / figures_root): quick to
results/ and figures/ (the committed results, rebuilt by `dvc repro`), every other profile to
results/<profile>/ and figures/<profile>/. The executed copy goes to <results>/notebooks/.

A whole profile (`--profile NAME` without a notebook) runs outside DVC: first `prepare` for every
dataset of the profile's `data` section, then each notebook stage of dvc.yaml in the file's order
(which follows the stages' dependencies, tests/test_pipeline.py checks it). Nothing is skipped as
up to date, but every training run comes from the run cache when it is there. params.yaml is
never touched.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import jupytext
import nbformat
import papermill
import traitlets
import yaml
from jupyter_client.manager import AsyncKernelManager

from mcrlib.atomic import atomic_path
from mcrlib.profiles import BASE_PROFILE, figures_root, load_profile, results_root


class IPCKernelManager(AsyncKernelManager):
    """The notebook's kernel on local IPC sockets: a stage's kernel never listens on TCP, and the
    log carries no warning about unencrypted TCP traffic."""
    transport = traitlets.CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    def _ip_default(self) -> str:
        # jupyter_client's default socket prefix, "kernel-ipc", is relative: the kernel binds its
        # sockets in its working directory, notebooks/. A kernel killed with its stage (an
        # interrupted `dvc repro`) left five sockets there, and DVC cannot hash a socket, so the
        # `code` stage, which depends on that folder, failed. A private absolute prefix keeps
        # them out of the checkout.
        if self.transport != "ipc":
            return super()._ip_default()
        self._ipc_dir = tempfile.mkdtemp(prefix="mcr-kernel-")
        return os.path.join(self._ipc_dir, "kernel-ipc")

    def cleanup_ipc_files(self) -> None:
        super().cleanup_ipc_files()
        if getattr(self, "_ipc_dir", None):
            shutil.rmtree(self._ipc_dir, ignore_errors=True)


def execute(notebook: Path, section: str, *, root: Path, profile: str = BASE_PROFILE) -> Path:
    """Run `notebook` (the stage `section`) under `profile`: the notebook gets the profile's name
    and the standard paths its parameters cell declares, and loads its sections itself."""
    root = root.resolve()
    load_profile(profile, root)          # an unknown profile fails here, naming the available ones
    here = notebook.parent.resolve()     # the kernel's working directory
    rel = lambda path: os.path.relpath(path, here)   # injected paths do not depend on the checkout's place
    source = jupytext.read(notebook)
    declared = _declared_parameters(source)
    # What every stage offers; a notebook gets those its parameters cell declares, so papermill
    # never reports a "Passed unknown parameter" that is not a mistake.
    standard = {
        "profile": profile,
        "root_dir": rel(root),
        "results_dir": rel(root / results_root(profile) / section),
        "figures_dir": rel(root / figures_root(profile)),
        "cache_dir": os.environ.get("MCR_RUN_CACHE", rel(root / ".mcr-cache" / "runs")),
    }
    parameters = {k: v for k, v in standard.items() if k in declared}
    output = root / results_root(profile) / "notebooks" / f"{notebook.stem}.ipynb"
    with atomic_path(output) as tmp:
        try:
            papermill.execute_notebook(source, str(tmp), parameters=parameters,
                                       kernel_name="python3", cwd=str(here),
                                       progress_bar=False, log_output=True, kernel_manager_class=IPCKernelManager)
        except papermill.PapermillExecutionError as err:
            # The executed copy up to the failing cell, traceback included, is kept beside where
            # the stage's copy would go; the caller gets one line (StageFailed).
            failed = output.with_suffix(".failed.ipynb")
            shutil.copyfile(tmp, failed)
            raise StageFailed(notebook, section, err, failed) from None
        _drop_volatile(tmp)
    output.with_suffix(".failed.ipynb").unlink(missing_ok=True)
    return output


class StageFailed(RuntimeError):
    """A stage's notebook raised: its message is the notebook's own error, in one line (what a
    ConfigError or DataError says: the key, what was expected, how to fix it), and where the
    executed copy with the full traceback is."""

    def __init__(self, notebook: Path, section: str, err, failed: Path):
        self.ename, self.evalue, self.failed = err.ename, err.evalue, failed
        super().__init__(f"stage {section} ({notebook.name}) failed in cell {err.exec_count}: {err.ename}: "
                         f"{err.evalue}\n  (the executed notebook with the full traceback: {failed})")


def notebook_stages(root: Path) -> list[tuple[str, Path]]:
    """(section, notebook) of every notebook stage of dvc.yaml, in the file's order."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = []
    for name, stage in stages.items():
        argv = shlex.split(stage.get("do", stage)["cmd"])
        if argv[:3] != ["python", "-m", "mcrlib.pipeline"]:
            continue                      # prepare@<dataset>: run from the profile's data section
        args = _parser().parse_args(argv[3:])
        if args.notebook is None or args.section != name:
            raise ValueError(f"dvc.yaml stage {name!r}: expected `python -m mcrlib.pipeline <notebook> "
                             f"--section {name}`, got {stage['cmd']!r}")
        out.append((name, root / args.notebook))
    return out


def run_profile(profile: str, root: Path) -> list[Path]:
    """Every stage under `profile`: prepare each dataset of its `data` section, then each notebook
    stage in dvc.yaml's order. Returns the executed notebooks."""
    from mcrlib.data.prepare import prepare   # what `python -m mcrlib.data.prepare <name>` runs
    root = root.resolve()
    params = load_profile(profile, root)
    for name, settings in (params.get("data") or {}).items():
        print(f"[{profile}] prepare@{name}", flush=True)
        prepare(name, settings, root / "data" / "processed" / name)
    executed = []
    for section, notebook in notebook_stages(root):
        print(f"[{profile}] {section}: {notebook.relative_to(root)}", flush=True)
        executed.append(execute(notebook, section, root=root, profile=profile))
    return executed


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mcrlib.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, nargs="?",
                        help="a notebooks/*.py percent file (without it: every stage of the profile)")
    parser.add_argument("--section", help="the stage's section, which names its results folder")
    parser.add_argument("--profile", default=BASE_PROFILE,
                        help=f"{BASE_PROFILE!r} (params.yaml, the default) or a file of profiles/")
    return parser


def main(argv=None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        load_profile(args.profile, root)
    except ValueError as err:
        parser.error(str(err))
    if args.notebook is not None and not args.section:
        parser.error("a notebook needs --section (its stage in dvc.yaml)")
    try:
        if args.notebook is None:
            outputs = run_profile(args.profile, root)
        else:
            outputs = [execute(args.notebook, args.section, root=root, profile=args.profile)]
    except StageFailed as err:
        raise SystemExit(f"error: {err}") from None   # exit status 1, no Python traceback
    for output in outputs:
        print(f"executed copy: {output}")


if __name__ == "__main__":
    main()
