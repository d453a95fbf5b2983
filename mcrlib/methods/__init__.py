"""Training methods by name: `METHODS[name](params, model=..., task=...)`."""
from mcrlib.methods.base import METHODS, Method, method_params, register, task_loss
from mcrlib.methods import simple, mcr, ensemble, unipre, ogm, mlb, pmr, mmcosine, agm, mslr  # noqa: F401  (registers the methods)

__all__ = ["METHODS", "Method", "method_params", "register", "task_loss"]
