"""The code each notebook stage runs, written as a small file that DVC can depend on.

    python -m mcrlib.stage_code            # writes results/code/<notebook>.json for notebooks/*.py

A stage that depended on the folder `mcrlib` re-executed after every edit anywhere in the
library: adding the ConFu family, or fixing a report's wording, re-ran the synthetic study's
half-hour analyses and every other notebook, though their runs came back from the run cache
unchanged. Instead, the `code` stage (dvc.yaml) writes one manifest per notebook, and each
notebook stage depends on its own manifest. DVC compares a dependency by its content, so when an
edit leaves a manifest as it was, the stages reading it stay up to date.

A notebook's manifest lists, with the SHA-256 of each file:
  * the mcrlib modules the notebook imports and everything they import (mcrlib.code_closure: every
    import statement, at any depth), through the project's `benchmarks` modules too;
  * for a notebook that trains (it imports mcrlib.studies or mcrlib.runs), the run layer and every
    method's and dataset's module with their closures: a study picks its methods and datasets by
    name from params, so the notebook's own imports do not name them;
  * mcrlib.pipeline, which executes the notebook;
  * every file under mcrlib/ that is not Python (package data, such as CREMA-D's release folds
    and FSDD's checksums), read by code whose closure does not show which.
So an edit to a module outside all of these (another family, a tool) re-executes nothing, and an
edit inside them re-executes exactly the stages whose code it is.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
from pathlib import Path

from mcrlib.atomic import write_text
from mcrlib.code_closure import ROOT, closure, module_file
from mcrlib.data.registry import DATASETS
from mcrlib.methods.base import METHODS

REPO = ROOT.parent
RUN_LAYER = "mcrlib.runs"
TRAINING_PACKAGES = ("mcrlib.studies", "mcrlib.runs")   # importing either means: this notebook trains
OUT_DIR = Path("results/code")


def _imported_names(path: Path) -> set[str]:
    """Every module name an import statement of `path` names (absolute imports only: notebooks
    and the benchmarks modules use no relative ones), with `from a import b` also as `a.b`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _benchmarks_file(name: str) -> Path | None:
    if name.split(".")[0] != "benchmarks":
        return None
    path = REPO.joinpath(*name.split(".")).with_suffix(".py")
    return path if path.is_file() else None


def notebook_code(notebook: str | Path) -> tuple[set[str], set[Path]]:
    """(mcrlib modules, benchmarks files) that `notebook` imports, following the benchmarks
    modules' own imports (mcrlib's are followed later, by `closure`)."""
    modules, files, todo = set(), set(), [Path(notebook)]
    while todo:
        for name in _imported_names(todo.pop()):
            if module_file(name) is not None:
                modules.add(name)
            elif (path := _benchmarks_file(name)) is not None and path not in files:
                files.add(path)
                todo.append(path)
    return modules, files


def stage_files(notebook: str | Path) -> list[Path]:
    """Every file whose content a notebook stage's results depend on (module docstring)."""
    modules, files = notebook_code(notebook)
    modules.add("mcrlib.pipeline")
    if any(m == p or m.startswith(p + ".") for m in modules for p in TRAINING_PACKAGES):
        modules |= {RUN_LAYER, *(METHODS.module_name(n) for n in METHODS),
                    *(DATASETS.module_name(n) for n in DATASETS)}
    files |= set(closure(modules).values())
    files |= {p for p in ROOT.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
              and "__pycache__" not in p.parts}
    return sorted(files)


def manifest(notebook: str | Path) -> dict:
    """{"notebook": its path, "files": {path relative to the repository: SHA-256}}."""
    return {"notebook": Path(notebook).as_posix(),
            "files": {p.relative_to(REPO).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in stage_files(notebook)}}


def write_manifests(notebooks, out_dir: str | Path = OUT_DIR) -> list[Path]:
    """One manifest per notebook, `<out_dir>/<stem>.json`, written atomically; the paths."""
    written = []
    for notebook in notebooks:
        path = Path(out_dir) / f"{Path(notebook).stem}.json"
        write_text(json.dumps(manifest(notebook), indent=1, sort_keys=True) + "\n", path)
        written.append(path)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write each notebook stage's code manifest (module docstring).")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.py")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(Path("notebooks").glob("*.py"))
    if not notebooks:
        parser.error("no notebooks given and none in notebooks/*.py: run from the repository root")
    for path in write_manifests(notebooks, args.out):
        print(f"{path}: {len(json.loads(path.read_text())['files'])} files")


if __name__ == "__main__":
    main()
