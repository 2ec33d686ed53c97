"""Task kinds: the one table of what differs between kinds of task — the loss they train on, the
score they report (the headline, which every choice and table uses), the other metrics of each
evaluation, which direction is better, and how a score is shown.

    kind            loss                    score (headline)     better  also reported
    classification  cross-entropy           accuracy             higher  macro and weighted F1,
                                                                         one-vs-rest AUROC;
                                                                         per class P/R/F1 and
                                                                         the confusion (test)
    multilabel      binary cross-entropy    micro F1             higher  macro F1, subset and
                    per label                                            Hamming accuracy, AUROC
    regression      MSE                     MAE                  lower   RMSE, R²
    embedding       batch-hard triplet      recall@1             higher  recall@5, mAP
                    (margin 0.2, unit       (leave-one-out
                    vectors)                retrieval by cosine)
    alignment       profile triplet         distance ρ           higher  neighbour recall@k,
                    (margin 0.2) on the     (Spearman: embedding         the profile's MAE,
                    embedding + MSE of      vs profile distances)        RMSE, R², ρ
                    the predicted profile

Labels: class ids (N,) for classification and embedding, {0, 1} (N, L) for multilabel,
targets (N,) or (N, D) for regression, property profiles (N, D) for alignment, whose head has
E + D outputs: an embedding of E, then its prediction of the D properties. The metrics are ``scores.py``'s. Every part that
trains, summarises, compares or draws a task asks its kind here (by the ``TaskData.kind``
name), so a new kind is one more row.
"""

import dataclasses
from typing import Callable

import numpy as np

import tinymtl.nn.functional as F
from tinymtl.autograd import Tensor
from tinymtl.backend import to_numpy
from tinymtl.train import scores

TRIPLET_MARGIN = 0.2  # of the embedding kind's loss, between unit vectors (distances in [0, 2])


def _target(outputs, y, dtype=None):
    """The labels ``y`` (host memory, as batches are drawn) as a Tensor where ``outputs`` are."""
    y = np.asarray(y) if dtype is None else np.asarray(y, dtype)
    return Tensor(y, device=outputs.device)


def _cross_entropy(outputs, y):
    return F.cross_entropy(outputs, _target(outputs, y))


def _binary_cross_entropy(outputs, y):
    return F.binary_cross_entropy_with_logits(
        outputs, _target(outputs, np.asarray(y, np.float32).reshape(outputs.shape)))


def _squared_error(outputs, y):
    if y.ndim == 1:
        return F.mse_loss(outputs.reshape(-1), _target(outputs, y))
    return F.mse_loss(outputs, _target(outputs, y, outputs.dtype))


def _triplet(outputs, y):
    return F.batch_hard_triplet_loss(outputs, _target(outputs, y), margin=TRIPLET_MARGIN)


def _alignment(outputs, y):
    """An alignment task's loss: the embedding's profile triplet loss + the MSE of the
    predicted profile (the last D outputs, D the profile's width)."""
    width = y.shape[1]
    embedding, predicted = outputs[:, :-width], outputs[:, -width:]
    return F.profile_triplet_loss(embedding, y, margin=TRIPLET_MARGIN) + \
        F.mse_loss(predicted, _target(outputs, y, outputs.dtype))


def _correct(outputs, y):
    return int((to_numpy(outputs).argmax(1) == y).sum())


def _absolute_error(outputs, y):
    """Σ over the batch of each example's absolute error (its mean over outputs)."""
    if y.ndim == 1:
        return float(np.abs(to_numpy(outputs).reshape(-1) - y).sum())
    return float(np.abs(to_numpy(outputs) - y).mean(1).sum())


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """One kind of task (module docstring). ``score``: the metric's name in rows and summaries
    (``test_<score>``); ``best``: the summary key of its best value over a run; ``scale`` and
    ``decimals``: how a value is shown (``show``), ``mean_decimals`` for a mean ± std."""

    name: str
    loss: Callable           # (outputs Tensor, labels array) -> the batch's mean loss, a Tensor
    loss_name: str
    score_sum: Callable      # (outputs, labels) -> the score summed over the batch, or None
    metrics: Callable        # (outputs, labels, detail) -> {metric: value}, ``scores.py``
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
    pairwise: bool = False   # its loss compares the examples of a batch with each other

    def batch_score_sum(self, outputs, y):
        """The score of a batch times its size, what a running mean over batches adds up:
        ``score_sum`` where the score is a sum over examples (correct answers, absolute
        errors), else the batch's own score (an F1, a recall@1 within the batch) × its size."""
        if self.score_sum is not None:
            return self.score_sum(outputs, y)
        value = self.metrics(to_numpy(outputs), y)[self.score]
        return 0.0 if value is None else value * len(y)

    def evaluate(self, outputs, y, detail=False):
        """{metric: value} of outputs (NumPy) against labels, the headline ``score`` among
        them (exactly Σ/N where the score is a sum over examples); ``detail`` adds per-class
        values and the confusion matrix."""
        metrics = self.metrics(outputs, y, detail=detail)
        if self.score_sum is not None:
            metrics[self.score] = self.score_sum(outputs, y) / len(y)
        return metrics

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
        score_sum=_correct, metrics=scores.classification_scores,
        score="accuracy", abbreviation="acc", best="peak_accuracy", higher_is_better=True,
        description="accuracy", label="accuracy %", short_label="acc. %", scale=100, decimals=1, mean_decimals=2),
    "multilabel": TaskKind(
        name="multilabel", loss=_binary_cross_entropy, loss_name="binary cross-entropy",
        score_sum=None, metrics=scores.multilabel_scores,
        score="micro_f1", abbreviation="F1", best="best_micro_f1", higher_is_better=True,
        description="micro-averaged F1", label="micro F1 %", short_label="F1 %", scale=100, decimals=1, mean_decimals=2),
    "regression": TaskKind(
        name="regression", loss=_squared_error, loss_name="MSE",
        score_sum=_absolute_error, metrics=scores.regression_scores,
        score="mae", abbreviation="mae", best="best_mae", higher_is_better=False,
        description="mean absolute error", label="MAE", short_label="MAE", scale=1, decimals=4, mean_decimals=4),
    "embedding": TaskKind(
        name="embedding", loss=_triplet, loss_name="batch-hard triplet",
        score_sum=None, metrics=scores.retrieval_scores,
        score="recall_at_1", abbreviation="R@1", best="best_recall_at_1", higher_is_better=True,
        description="recall@1 of leave-one-out retrieval", label="recall@1 %", short_label="R@1 %", scale=100, decimals=1,
        mean_decimals=2, pairwise=True),
    "alignment": TaskKind(
        name="alignment", loss=_alignment, loss_name="profile triplet + MSE",
        score_sum=None, metrics=scores.alignment_scores,
        score="distance_spearman", abbreviation="ρ", best="best_distance_spearman",
        higher_is_better=True, description="Spearman ρ of embedding vs property distances",
        label="distance ρ", short_label="ρ", scale=1, decimals=3, mean_decimals=3,
        pairwise=True),
}


def kind_of(name):
    """The TaskKind called ``name`` (ValueError naming the known ones otherwise)."""
    if name not in TASK_KINDS:
        raise ValueError(f"unknown task kind {name!r}; expected one of {', '.join(TASK_KINDS)}")
    return TASK_KINDS[name]
