"""Losses, evaluation and the per-task numbers a run reports, for every kind of task (the loss,
score and direction of each kind are in ``task_kinds.TASK_KINDS``).

forgetting = max(0, (peak - final) / peak): the share of its best test accuracy a task has lost
by the end of training (0 when it ends at its peak). For regression it is the same share of the
best (lowest) MAE gained back: max(0, (final - best) / final).
"""

import numpy as np

from tinymtl.autograd import Tensor, no_grad
from tinymtl.backend import to_numpy
from tinymtl.backend.kernels import numpy_ref
from tinymtl.train.task_kinds import TASK_KINDS


def task_loss(kind, outputs, y):
    """The training loss of a batch: cross-entropy of logits (N, C), or MSE of outputs (N, 1)."""
    return TASK_KINDS[kind].loss(outputs, y)


def score_sum(kind, outputs, y):
    """Σ over the batch of the task's score: correct answers, or absolute errors."""
    return TASK_KINDS[kind].score_sum(outputs, y)


def softmax(logits):
    """Row-wise class probabilities of NumPy logits (N, C): exp(log_softmax)."""
    return np.exp(numpy_ref.log_softmax(logits))


@no_grad()
def predict_logits(model, task, x, batch_size=1024):
    """Outputs of ``model`` for ``task`` on inputs ``x``, in eval mode, as one NumPy array."""
    was_training = model.training
    model.eval()
    try:
        parts = [to_numpy(model(Tensor(x[k:k + batch_size]), task).data)
                 for k in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts)


def evaluate(model, task, x, y, batch_size=1024, kind="classification"):
    """{'test_accuracy' | 'test_mae', 'test_loss'} of ``model`` on a held-out set."""
    outputs = predict_logits(model, task, x, batch_size)
    loss = task_loss(kind, Tensor(outputs), y).item()
    return {f"test_{TASK_KINDS[kind].score}": score_sum(kind, outputs, y) / len(y),
            "test_loss": float(loss)}


def forgetting(peak, final):
    return max(0.0, (peak - final) / peak) if peak > 0 else 0.0


def task_summary(history, task, kind="classification"):
    """Peak (best), final and forgetting of one task over a run's evaluation history:
    {test_accuracy, peak_accuracy, forgetting} or {test_mae, best_mae, forgetting}."""
    kind = TASK_KINDS[kind]
    test = f"test_{kind.score}"
    values = [row["tasks"][task][test] for row in history if task in row["tasks"]]
    if not values:
        return {test: None, kind.best: None, "forgetting": None}
    final = values[-1]
    if kind.higher_is_better:
        best = max(values)
        return {test: final, kind.best: best, "forgetting": forgetting(best, final)}
    best = min(values)
    return {test: final, kind.best: best,
            "forgetting": max(0.0, (final - best) / final) if final > 0 else 0.0}
