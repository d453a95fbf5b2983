"""The same small hyperparameter search for every method, selected on validation only.

Each method with a coefficient gets the same number of trials (the product of its grid); a
setting is chosen per method and study cell by the mean validation accuracy over the search
seeds (ties go to the first setting in grid order), and only then are all seeds run with it.
Test accuracy never enters the choice.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from mcrlib.config import ConfigError, check
from mcrlib.methods import method_params
from mcrlib.sweep import result_key, run_all


@dataclass(frozen=True)
class SearchConfig:
    seeds: tuple[int, ...] = (0,)
    grid: dict = field(default_factory=dict)   # method -> {param: [values]}
    # cell (dataset label) -> {method: {param: [values]}}: a method's grid on one cell, where the
    # shared grid cannot apply (MSLR's per-modality multipliers on a three-modality dataset).
    # Same number of trials as the shared grid: every method keeps the same budget everywhere.
    cells: dict = field(default_factory=dict)

    def __post_init__(self):
        check(len(self.seeds) > 0, "search.seeds", list(self.seeds), "a non-empty list of seeds")
        sizes = {}
        for where, grid in [("search.grid", self.grid)] + [(f"search.cells.{c}", g) for c, g in self.cells.items()]:
            check(isinstance(grid, dict), where, grid, "a mapping of methods to {param: [values]}")
            for method, params in grid.items():
                check(isinstance(params, dict) and params and all(isinstance(v, list) and v for v in params.values()),
                      f"{where}.{method}", params, "a mapping of parameter names to non-empty lists of values")
                if where != "search.grid":
                    check(method in self.grid, f"{where}.{method}", params, f"a method of search.grid {sorted(self.grid)}")
                trials = [dict(zip(params, v)) for v in itertools.product(*params.values())]
                for trial in trials:
                    method_params(method, trial)   # every setting is valid before anything trains
                sizes[(where, method)] = len(trials)
        if len(set(sizes.values())) > 1:
            raise ConfigError(f"search gives different numbers of trials "
                              f"{ {f'{w}.{m}': n for (w, m), n in sizes.items()} }; every method must get the same budget")

    def trials(self, method: str, cell=None) -> list[dict]:
        """Parameter overrides of each trial of `method` on `cell` ([{}] for a method without a grid)."""
        params = self.cells.get(cell, {}).get(method, self.grid.get(method, {}))
        return [dict(zip(params, values)) for values in itertools.product(*params.values())] or [{}]


def select(search: SearchConfig, methods, cells, make_config: Callable, cache_dir, workers: int = 1,
           desc: str = "search", include: Callable = lambda method, cell: True):
    """Run every trial of every searched method in every cell on the search seeds.

    `make_config(method, cell, seed, overrides)` builds a RunConfig. Returns
    ({(method, cell): chosen overrides}, DataFrame of all trials with their run key and
    validation accuracy).
    """
    labelled = [((m, cell, i, seed), make_config(m, cell, seed, trial))
                for m in methods if m in search.grid for cell in cells if include(m, cell)
                for i, trial in enumerate(search.trials(m, cell)) for seed in search.seeds]
    results = run_all([c for _, c in labelled], cache_dir, workers, desc=desc)
    rows = [{"method": m, "cell": cell, "trial": i, "seed": seed, **search.trials(m, cell)[i],
             "run_key": result_key(r), "val_acc": r.metrics["val_acc_fused"]}
            for ((m, cell, i, seed), _), r in zip(labelled, results)]
    trials = pd.DataFrame(rows)
    chosen = {(m, cell): {} for m in methods for cell in cells}
    if not trials.empty:
        mean_val = trials.groupby(["method", "cell", "trial"], sort=False)["val_acc"].mean().reset_index()
        for (m, cell), part in mean_val.groupby(["method", "cell"], sort=False):
            best = part.loc[part["val_acc"].idxmax(), "trial"]   # first maximum: grid order breaks ties
            chosen[(m, cell)] = search.trials(m, cell)[int(best)]
        trials["selected"] = [search.trials(m, c)[t] == chosen[(m, c)] for m, c, t in
                              zip(trials["method"], trials["cell"], trials["trial"])]
    return chosen, trials
