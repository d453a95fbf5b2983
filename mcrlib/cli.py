"""The `mcr-run` command, and how the commands (`mcr-run`, `python -m mcrlib.data.prepare`) answer
a user's mistake.

`mcr-run` lives here, not in mcrlib.runs, so that this file stays outside every run's code
closure (mcrlib.code_closure): the run layer imports nothing from it, and an edit of the command
line retrains nothing. `python -m mcrlib.cli CONFIG.yaml` is the same command (under torchrun:
`torchrun --nproc_per_node=W -m mcrlib.cli CONFIG.yaml`).

A mistake is reported as one line on stderr, `<prog>: error: <message>` (argparse's form), and a
non-zero exit status, not as a traceback:

- 2, a usage or configuration error: `ConfigError` (unknown key, invalid value, unknown method or
  dataset, a config file that is missing or not YAML) and `yaml.YAMLError` (argparse exits 2 too);
- 1, a data error: `DataError` (input data that is incomplete or corrupt) and `FileNotFoundError`
  (missing data, a download that failed).

Any other exception is a bug and propagates with its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from mcrlib.config import ConfigError
from mcrlib.errors import DataError

USAGE_ERROR = 2
DATA_ERROR = 1


class CommandError(SystemExit):
    """The exit of a command after a user's mistake: `code` is the exit status, `str()` the message
    (already printed to stderr), so in-process callers can check both."""

    def __init__(self, status: int, message: str):
        super().__init__(status)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def user_errors(prog: str):
    """Turn a user's mistake raised inside the block into `<prog>: error: ...` and an exit status
    (usable as `with user_errors(prog):` or as a decorator)."""
    try:
        yield
    except (ConfigError, yaml.YAMLError) as err:
        _fail(prog, err, USAGE_ERROR)
    except (DataError, FileNotFoundError) as err:
        _fail(prog, err, DATA_ERROR)


def _fail(prog: str, err: BaseException, status: int):
    message = str(err)
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise CommandError(status, message) from None


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """The YAML document in `path`; a missing, unreadable or malformed file is a `ConfigError`
    naming it (a command-line argument that is wrong, not missing data)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist" if not path.exists()
                          else f"{what} {str(path)!r} is not a file")
    try:
        with path.open(encoding="utf-8") as stream:
            return yaml.safe_load(stream)
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML:\n{err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err}") from None


def main(argv=None) -> None:
    """mcr-run CONFIG.yaml [--cache DIR]: train one run from a YAML RunConfig, print its metrics.

    A user's mistake exits with `mcr-run: error: ...` on stderr: status 2 for a config error
    (missing or malformed file, unknown key, invalid value), 1 for missing or corrupt data."""
    # Imported here, not at the top: `python -m mcrlib.data.prepare` imports this module for
    # `user_errors`, and must not load torch and the trainer for that.
    from mcrlib import distributed as dist
    from mcrlib.config import RunConfig, from_dict
    from mcrlib.run_key import check_run, key_material, run_key
    from mcrlib.runs import DEFAULT_CACHE, run
    prog = "mcr-run"
    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    parser.add_argument("config", help="YAML file with data/model/train/method/seed keys")
    parser.add_argument("--cache", default=None, help=f"run cache folder (default {DEFAULT_CACHE})")
    parser.add_argument("--explain-key", action="store_true",
                        help="print what the run key covers (filled config, data fingerprint, code digest, "
                             "the runs it is built from) and the key, without training")
    args = parser.parse_args(argv)
    if args.explain_key:
        with user_errors(prog):
            config = check_run(from_dict(RunConfig, read_yaml(args.config)))
            print(json.dumps({"key": run_key(config), **key_material(config)}, indent=1, default=str))
        return
    try:
        with user_errors(prog):
            result = run(read_yaml(args.config), args.cache)
    finally:
        dist.teardown()
    if dist.env_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0:
        return   # under torchrun rank 0 prints
    print(json.dumps(result.metrics, indent=1))
    print(f"saved in {result.path}")


if __name__ == "__main__":
    main()
