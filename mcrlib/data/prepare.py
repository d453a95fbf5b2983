"""Preprocessing: one dataset's public on-disk layout -> tensors in data/processed/<name>.

    python -m mcrlib.data.prepare cremad            # reads params.yaml's data.cremad

This is the command of the DVC stage `prepare@<name>`: one stage per dataset of the active
profile (the keys of params.yaml's `data` section), each configured by the dataset's
`PrepareConfig` (its spec, mcrlib.data.spec): the data root is its `root` key, else the
dataset's documented environment variable. The training runs then read the prepared folder
(their load config's `prepared`, data/processed/<name> by default). Every preprocessor writes a
data report (`report.json`, AV-Digits' `recipe.json`) with what it kept, skipped, padded or
trimmed; the last file written is `fingerprint.json`, the folder's content fingerprint, which
keys the runs and is checked whenever the folder is read (mcrlib.data.fingerprint).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Mapping

from mcrlib.cli import read_yaml, user_errors
from mcrlib.config import ConfigError, from_dict
from mcrlib.data import fingerprint
from mcrlib.data.registry import DATASETS

PROG = "python -m mcrlib.data.prepare"


def preparable() -> list[str]:
    """The datasets that have a `prepare` step (all but those drawn from params)."""
    return sorted(name for name in DATASETS if DATASETS[name].prepare is not None)


def prepare(name: str, settings: Mapping | None, out: str | Path):
    """Preprocess dataset `name` with `settings` (its PrepareConfig's fields) into `out`."""
    spec = DATASETS[name]
    if spec.prepare is None:
        raise ConfigError(f"data.{name}: {name!r} has nothing to prepare (its data are drawn from "
                          f"its params); datasets with a prepare step: {preparable()}")
    out = Path(out)
    (out / fingerprint.FILE).unlink(missing_ok=True)   # incomplete until the fingerprint is back
    result = spec.prepare(from_dict(spec.prepare_config, settings or {}, f"data.{name}"), out)
    fingerprint.write(out)
    return result


def main(argv=None) -> None:
    """A user's mistake exits with `python -m mcrlib.data.prepare: error: ...` on stderr: status 2
    for a config error (params file missing or malformed, no such section, invalid setting), 1 for
    missing or corrupt data (see mcrlib.cli)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=preparable())
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=None, help="default: data/processed/<name>")
    args = parser.parse_args(argv)
    out = args.out or Path("data/processed") / args.name
    with user_errors(PROG):
        params = read_yaml(args.params, "params file") or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{args.params}: expected a mapping of sections, got {type(params).__name__}")
        sections = params.get("data") or {}
        if not isinstance(sections, Mapping):
            raise ConfigError(f"{args.params}: data={sections!r} is invalid: expected a mapping of dataset names to settings")
        if args.name not in sections:
            raise ConfigError(f"{args.params} has no data.{args.name} section; it has {sorted(sections)}")
        prepare(args.name, sections[args.name], out)
    for report in ("report.json", "recipe.json"):
        if (out / report).is_file():
            summary = json.loads((out / report).read_text())
            print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (dict, list))}, indent=1))
    print(f"prepared {args.name} in {out}")


if __name__ == "__main__":
    main()
