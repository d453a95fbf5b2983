"""Training methods by name: `METHODS[name](params, model=..., task=...)`."""
from mcrlib.methods.base import METHODS, Method, method_params, register, task_loss
from mcrlib.methods import (  # noqa: F401  (importing a module registers its methods)
    agm, arm, ensemble, mcr, mlb, mmcosine, mslr, ogm, pmr, simple, unipre)

__all__ = ["METHODS", "Method", "method_params", "register", "task_loss"]
