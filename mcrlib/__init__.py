"""mcrlib: models, losses, methods and the trainer of the MCR paper companion."""
__version__ = "0.1.0"
