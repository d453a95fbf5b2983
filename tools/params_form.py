"""Rewrite a params file into the form DVC's YAML writer keeps, so that `dvc exp run -S key=value`
changes only the line of that value.

    python tools/params_form.py params.yaml          # rewrite in place
    python tools/params_form.py --check params.yaml  # exit 1 (and say which lines) if not in that form

`dvc exp run -S` loads params.yaml with ruamel.yaml's round-trip loader and writes it back with
DVC's own dumper (dvc.utils.serialize.modify_yaml). That writer keeps comments, key order and
block layout, but re-emits every flow collection (`[a, b]`, `{k: v}`) itself: one longer than 80
columns is re-wrapped, a block list is re-indented, `""` becomes `''`. A file written in that
writer's own form is its fixed point, so an experiment's `git diff` shows the changed value only.
Here a flow collection that does not fit in 80 columns at its indentation becomes a block
collection; one that fits stays on its line. The values are unchanged (checked).
"""
from __future__ import annotations

import argparse
import difflib
import io
import sys
from pathlib import Path

import yaml
from dvc.utils.serialize._yaml import _dump, parse_yaml_for_update   # what `dvc exp run -S` uses
from ruamel.yaml.comments import CommentedMap, CommentedSeq

WIDTH = 80   # ruamel.yaml's default best_width, which DVC's dumper keeps


def dvc_dump(data) -> str:
    stream = io.StringIO()
    _dump(data, stream)
    return stream.getvalue()


def dvc_round_trip(text: str, path: str = "params.yaml") -> str:
    """`text` as `dvc exp run -S` writes it back when it changes nothing."""
    return dvc_dump(parse_yaml_for_update(text, path))


def _block_long_flows(node, indent: int) -> None:
    if not isinstance(node, (CommentedMap, CommentedSeq)):
        return
    if node.fa.flow_style():
        one_line = dvc_dump({"k": node})
        if len(one_line.splitlines()) > 1 or indent + len(one_line) > WIDTH:
            node.fa.set_block_style()
    for child in (node.values() if isinstance(node, CommentedMap) else node):
        _block_long_flows(child, indent + 2)


def in_dvc_form(text: str, path: str = "params.yaml") -> str:
    """`text` rewritten into DVC's writer's fixed point, with the same values."""
    data = parse_yaml_for_update(text, path)
    _block_long_flows(data, 0)
    out = dvc_dump(data)
    if yaml.safe_load(out) != yaml.safe_load(text):
        raise RuntimeError(f"{path}: rewriting changed a value; nothing written")
    if dvc_round_trip(out, path) != out:
        raise RuntimeError(f"{path}: the rewritten file is still changed by DVC's writer; nothing written")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report the lines DVC's writer would change")
    args = parser.parse_args(argv)
    status = 0
    for path in args.paths:
        text = path.read_text()
        if args.check:
            written = dvc_round_trip(text, str(path))
            if written != text:
                status = 1
                diff = difflib.unified_diff(text.splitlines(), written.splitlines(), str(path),
                                            "as dvc exp run -S writes it", lineterm="", n=0)
                print("\n".join(diff))
                print(f"{path}: not in DVC's writer's form; fix with: python tools/params_form.py {path}")
        else:
            path.write_text(in_dvc_form(text, str(path)))
    return status


if __name__ == "__main__":
    sys.exit(main())
