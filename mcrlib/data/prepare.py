"""Preprocessing: one dataset's public on-disk layout -> cached tensors in data/processed/<name>.

    python -m mcrlib.data.prepare cremad            # reads params.yaml's data.cremad

This is the command of the DVC stage `prepare@<name>`: one stage per dataset of the active
profile (the keys of params.yaml's `data` section), each parameterised by its data root (the
`root` key, else the dataset's environment variable; FSDD's `fsdd_root`, else $MCR_FSDD_ROOT,
else a download). The training runs then read the cached tensors: their dataset params point at
the same folder (`path`, `processed` or `cache_dir`; the profiles set each to data/processed/<name>).
Every preprocessor writes a data report (`report.json`, AV-Digits' `recipe.json`) with what it
kept, skipped, padded or trimmed.
"""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Mapping

import torch

from mcrlib.atomic import atomic_path
from mcrlib.cli import read_yaml, user_errors
from mcrlib.config import ConfigError, from_dict
from mcrlib.data import ave, avdigits, cremad, mosi, sthsth, ucf

PROG = "python -m mcrlib.data.prepare"


def _avdigits(cfg, out: Path) -> dict:
    return avdigits.build(cfg, out, download_to=Path("data/raw/fsdd"))


def _preprocess_of(module):
    return lambda cfg, out: module.preprocess(cfg, out)


# name -> (settings dataclass, preprocess(cfg, out_dir)); the names are the registry's datasets.
PREPARE = {
    "avdigits": (avdigits.AVDigitsConfig, _avdigits),
    "cremad": (cremad.CremadConfig, _preprocess_of(cremad)),
    "ave": (ave.AVEConfig, _preprocess_of(ave)),
    "ucf51": (ucf.UCF51Config, _preprocess_of(ucf)),
    "mosi": (mosi.MosiConfig, _preprocess_of(mosi)),
    "mosei": (mosi.MoseiConfig, _preprocess_of(mosi)),
    "sthsth": (sthsth.SthSthConfig, _preprocess_of(sthsth)),
}


def prepare(name: str, settings: dict, out: str | Path):
    """Preprocess dataset `name` with `settings` (its config's fields) into `out`."""
    if name not in PREPARE:
        raise ConfigError(f"data.{name}: no preprocessing for {name!r}; expected one of {sorted(PREPARE)}")
    config_cls, preprocess = PREPARE[name]
    result = preprocess(from_dict(config_cls, settings or {}, f"data.{name}"), Path(out))
    canonical_torch_files(Path(out))
    return result


def canonical_torch_files(folder: Path) -> None:
    """Rewrite the prepared folder's torch files so that their bytes depend on their content only.

    `torch.save` to a path names the archive inside the file after that path, and the atomic writer
    (mcrlib.atomic) saves under a random temporary name: two preparations of the same data then
    differed byte for byte, and DVC recorded another hash for `data/processed` after every clean
    rebuild. Saved through a file object, the archive is always named "archive". (The run cache's
    own files have the same property; they are not DVC-tracked, and changing the writer changes
    every run key, so that fix waits for the next change of the run key.)"""
    for path in sorted(folder.rglob("*.pt")):
        if not zipfile.is_zipfile(path):
            continue   # not torch's zip format: left as written
        with zipfile.ZipFile(path) as archive:
            if all(name.startswith("archive/") for name in archive.namelist()):
                continue
        content = torch.load(path, weights_only=True, mmap=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(content, handle)


def main(argv=None) -> None:
    """A user's mistake exits with `python -m mcrlib.data.prepare: error: ...` on stderr: status 2
    for a config error (params file missing or malformed, no such section, invalid setting), 1 for
    missing or corrupt data (see mcrlib.cli)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(PREPARE))
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
