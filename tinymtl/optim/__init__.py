"""Optimizers, learning-rate schedules and gradient accumulation (PyTorch's names)."""

from tinymtl.optim import lr_scheduler  # noqa: F401
from tinymtl.optim.accumulation import GradientAccumulator
from tinymtl.optim.adam import Adam, AdamW
from tinymtl.optim.optimizer import Optimizer
from tinymtl.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "GradientAccumulator", "lr_scheduler"]
