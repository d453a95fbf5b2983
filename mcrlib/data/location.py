"""Where a relative data path points: the project's root, not the process's working directory.

Notebooks run from notebooks/ (DVC stages too: papermill's working directory) and the training
workers inherit it, so a relative path in params (`data/processed/avdigits`) is read relative
to $MCR_PROJECT_ROOT, which `studies.benchmarks.resolve_datasets` sets from the notebook's
`root_dir`. The path itself stays relative in run configs: a run's cache key does not depend on
where the project is checked out, and two clones share their runs.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "MCR_PROJECT_ROOT"


def project_path(path: str | Path) -> Path:
    """`path` under the project root ($MCR_PROJECT_ROOT, else the working directory); an
    absolute path is returned as it is."""
    return Path(os.environ.get(ENV, ".")) / path
