"""Errors that mean a user's mistake, not a bug (the commands print them without a traceback)."""
from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used: files missing from a corpus, changed bytes, a bad download."""


class WeightsError(DataError):
    """Pretrained weights that cannot be loaded: a hub id that is neither cached nor downloadable
    (no network), or a local folder without the checkpoint's files."""
