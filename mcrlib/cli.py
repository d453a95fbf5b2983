"""How the commands (`mcr-run`, `python -m mcrlib.data.prepare`) answer a user's mistake.

A mistake is reported as one line on stderr, `<prog>: error: <message>` (argparse's form), and a
non-zero exit status, not as a traceback:

- 2, a usage or configuration error: `ConfigError` (unknown key, invalid value, unknown method or
  dataset, a config file that is missing or not YAML) and `yaml.YAMLError` (argparse exits 2 too);
- 1, a data error: `DataError` (input data that is incomplete or corrupt) and `FileNotFoundError`
  (missing data, a download that failed).

Any other exception is a bug and propagates with its traceback.
"""
from __future__ import annotations

import contextlib
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
