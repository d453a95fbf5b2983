"""Content fingerprints of prepared folders.

`prepare` writes `fingerprint.json` beside its outputs: the SHA-256 of every file in the folder
and one digest over them. Whoever reads the folder (the run key, the loaders) calls `verify`,
which recomputes the files' hashes and compares: a file changed, added or removed after
`prepare` is a DataError that names it, never silently read. The fingerprint enters every run
key, so runs trained on other data are never returned from the run cache.

Hashing is memoised per process by (path, size, mtime in ns): a worker hashes each file once.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mcrlib.atomic import write_text
from mcrlib.errors import DataError

FILE = "fingerprint.json"
_MEMO: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _MEMO[key] = digest.hexdigest()
    return _MEMO[key]


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != FILE and not p.name.startswith(".")}


def _digest(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def write(folder: str | Path) -> str:
    """Record the folder's content (the last step of `prepare`); returns the fingerprint."""
    folder = Path(folder)
    files = _files(folder)
    fingerprint = _digest(files)
    write_text(json.dumps({"fingerprint": fingerprint, "files": files}, indent=1), folder / FILE)
    return fingerprint


def verify(folder: str | Path, dataset: str = "") -> str:
    """The fingerprint `prepare` recorded for `folder`, after checking that every file still
    has the recorded content; a DataError otherwise."""
    folder = Path(folder)
    redo = f"rerun `python -m mcrlib.data.prepare {dataset or '<name>'}` (DVC: `dvc repro prepare@{dataset or '<name>'}`)"
    record_path = folder / FILE
    if not record_path.is_file():
        what = "does not exist" if not folder.is_dir() else f"has no {FILE}: it was not written by `prepare`, or not completely"
        raise DataError(f"prepared data folder {folder} {what}: {redo}")
    try:
        record = json.loads(record_path.read_text())
        recorded, fingerprint = dict(record["files"]), record["fingerprint"]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{record_path} is unreadable ({err}): {redo}") from None
    found = _files(folder)
    changed = sorted(n for n in recorded.keys() & found.keys() if recorded[n] != found[n])
    problems = ([f"changed after prepare: {', '.join(changed)}"] if changed else []) + \
        ([f"missing: {', '.join(sorted(recorded.keys() - found.keys()))}"] if recorded.keys() - found.keys() else []) + \
        ([f"not written by prepare: {', '.join(sorted(found.keys() - recorded.keys()))}"] if found.keys() - recorded.keys() else [])
    if problems:
        raise DataError(f"prepared data in {folder} differ from what `prepare` wrote ({'; '.join(problems)}): {redo}")
    return fingerprint
