"""Atomic writes: write to a temporary file beside the target, then rename over it, so a
killed process never leaves a half-written result behind."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path in the target's folder; renamed to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch(obj, path: str | Path) -> None:
    """torch.save, atomically. Through a file object: saved to a path, torch names the archive
    inside the file after that (random, temporary) path, and equal content gave unequal bytes."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
