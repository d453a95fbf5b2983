"""How many cached runs an edit of each mcrlib module would retrain.

    python -m benchmarks.cache_reach                          # every module, the current cache
    python -m benchmarks.cache_reach mcrlib/losses/jsd.py     # one module

Reads every entry of the run cache that is current (its directory name is the run key its
config gets from today's code and data), and for each module counts the runs whose key covers
it: the import closure of the run layer, the run's method and dataset (mcrlib.run_key), and the
closures of the runs it is built from (an ensemble's members). An edit to a module retrains
exactly those runs; a module no run imports retrains none.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from mcrlib.code_closure import ROOT, closure
from mcrlib.config import RunConfig, from_dict
from mcrlib.errors import DataError
from mcrlib.run_key import code_modules, required_runs, run_key
from mcrlib.runs import DEFAULT_CACHE


def covered(config: RunConfig) -> set[str]:
    """The files whose edit changes this run's key."""
    files = {p.relative_to(ROOT.parent).as_posix() for p in closure(code_modules(config)).values()}
    for member in required_runs(config).values():
        files |= covered(member)
    return files


def current_entries(cache: Path) -> list[RunConfig]:
    configs = []
    for record in tqdm(sorted(cache.glob("*/result.json")), desc="cache entries"):
        try:
            config = from_dict(RunConfig, json.loads(record.read_text())["config"])
            if run_key(config) == record.parent.name:
                configs.append(config)
        except (ValueError, KeyError, DataError):
            continue   # made by other code, from other data, or unreadable: not current
    return configs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="files under mcrlib/ (default: every module)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    configs = current_entries(args.cache)
    counts = Counter(f for config in configs for f in covered(config))
    every = sorted(p.relative_to(ROOT.parent).as_posix() for p in ROOT.rglob("*.py"))
    print(f"{len(configs)} current runs in {args.cache}")
    print("| module | runs an edit retrains |\n|:--|--:|")
    for module in args.modules or every:
        print(f"| {module} | {counts.get(module, 0)} |")


if __name__ == "__main__":
    main()
