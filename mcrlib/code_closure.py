"""The mcrlib modules a piece of code can import, computed from the source, not kept by hand.

`closure(["mcrlib.runs", "mcrlib.methods.mcr"])` follows every `import mcrlib...` and
`from mcrlib... import ...` statement of those modules (at any depth: function-level imports
count, so lazily imported code is covered), then those of the modules found, and adds each
module's parent packages (importing `mcrlib.data.cremad` runs `mcrlib/data/__init__.py`). Imports
through the registries (importlib, by name) are not followed: a run adds its own method's and
dataset's modules, so editing another method or dataset changes no key.

`source_digest(modules)` hashes the closure's sources: the code part of a run key.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Iterable

import mcrlib

ROOT = Path(mcrlib.__file__).parent
PACKAGE = "mcrlib"


def module_file(name: str) -> Path | None:
    """The source file of module `name` (a module or a package's __init__), None if not ours."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = ROOT.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@functools.lru_cache(maxsize=None)
def _imports(path: Path, mtime_ns: int, module: str) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, path.name == "__init__.py")
            names.add(target)
            # `from mcrlib.data import fsdd` imports the submodule mcrlib.data.fsdd
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if module_file(n) is not None)


def imports_of(name: str) -> frozenset[str]:
    path = module_file(name)
    return _imports(path, path.stat().st_mtime_ns, name)


def closure(modules: Iterable[str]) -> dict[str, Path]:
    """module name -> source file, for `modules` and everything they import from mcrlib."""
    todo, found = list(modules), {}
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = module_file(name)
        if path is None:
            raise ValueError(f"{name!r} is not a module of {PACKAGE} (looked under {ROOT})")
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]   # parent packages
        todo += sorted(imports_of(name))
    return dict(sorted(found.items()))


def source_digest(modules: Iterable[str]) -> str:
    """SHA-256 over the closure's files (path relative to the package, then the bytes)."""
    digest = hashlib.sha256()
    for name, path in closure(modules).items():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
