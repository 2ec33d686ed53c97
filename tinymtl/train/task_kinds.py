"""Task kinds: the one table of what differs between kinds of task — the loss they train on, the
score they report, which direction of it is better, and how it is shown.

    kind             loss            score                        better   shown as
    classification   cross-entropy   accuracy (share correct)     higher   percent, 98.8
    regression       MSE             mean absolute error, MAE     lower    as is, 0.0214

Every part that trains, summarises, compares or draws a task asks its kind here (by the
``TaskData.kind`` name), so a new kind is one more row.
"""

import dataclasses
from typing import Callable

import numpy as np

import tinymtl.nn.functional as F
from tinymtl.autograd import Tensor
from tinymtl.backend import to_numpy


def _cross_entropy(outputs, y):
    return F.cross_entropy(outputs, y)


def _squared_error(outputs, y):
    return F.mse_loss(outputs.reshape(-1), Tensor(y))


def _correct(outputs, y):
    return int((to_numpy(outputs).argmax(1) == y).sum())


def _absolute_error(outputs, y):
    return float(np.abs(to_numpy(outputs).reshape(-1) - y).sum())


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """One kind of task (module docstring). ``score``: the metric's name in rows and summaries
    (``test_<score>``); ``best``: the summary key of its best value over a run; ``scale`` and
    ``decimals``: how a value is shown (``show``), ``mean_decimals`` for a mean ± std."""

    name: str
    loss: Callable           # (outputs Tensor, labels array) -> the batch's mean loss, a Tensor
    loss_name: str
    score_sum: Callable      # (outputs, labels) -> the score summed over the batch
    score: str
    abbreviation: str        # the score in a progress bar: acc | mae
    best: str
    higher_is_better: bool
    description: str         # the score in words: accuracy | mean absolute error
    label: str               # column title: what the numbers are
    short_label: str         # the same, short
    scale: float
    decimals: int
    mean_decimals: int

    def show(self, value):
        """A value as tables show it: '98.8' (accuracy, in %), '0.0214' (MAE), '-' for none."""
        return "-" if value is None else f"{self.scale * value:.{self.decimals}f}"

    def show_mean_std(self, value):
        """'98.78 ± 0.53' (accuracy, in %) or '0.0214 ± 0.0010' (MAE) for a (mean, std) pair."""
        mean, std = value
        digits = self.mean_decimals
        return f"{self.scale * mean:.{digits}f} ± {self.scale * std:.{digits}f}"

    def better(self, a, b):
        """Whether score ``a`` is better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def gain(self, value, reference):
        """How much better ``value`` is than ``reference`` (positive: better)."""
        return value - reference if self.higher_is_better else reference - value


TASK_KINDS = {
    "classification": TaskKind(
        name="classification", loss=_cross_entropy, loss_name="cross-entropy",
        score_sum=_correct, score="accuracy", abbreviation="acc", best="peak_accuracy", higher_is_better=True,
        description="accuracy", label="accuracy %", short_label="acc. %", scale=100, decimals=1, mean_decimals=2),
    "regression": TaskKind(
        name="regression", loss=_squared_error, loss_name="MSE",
        score_sum=_absolute_error, score="mae", abbreviation="mae", best="best_mae", higher_is_better=False,
        description="mean absolute error", label="MAE", short_label="MAE", scale=1, decimals=4, mean_decimals=4),
}


def kind_of(name):
    """The TaskKind called ``name`` (ValueError naming the known ones otherwise)."""
    if name not in TASK_KINDS:
        raise ValueError(f"unknown task kind {name!r}; expected one of {', '.join(TASK_KINDS)}")
    return TASK_KINDS[name]
