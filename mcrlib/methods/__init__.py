"""Training methods by name: `METHODS[name](params, model=..., task=...)`. The registry
(mcrlib.methods.base) imports a method's module when the method is first asked for."""
from mcrlib.methods.base import METHODS, Method, method_params, register, task_loss

__all__ = ["METHODS", "Method", "method_params", "register", "task_loss"]
