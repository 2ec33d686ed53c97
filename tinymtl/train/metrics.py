"""Losses, evaluation and the per-task numbers a run reports, for both kinds of task.

    classification   loss: cross-entropy          score: accuracy (higher is better)
    regression       loss: mean squared error     score: mean absolute error, MAE (lower)

forgetting = max(0, (peak - final) / peak): the share of its best test accuracy a task has lost
by the end of training (0 when it ends at its peak). For regression it is the same share of the
best (lowest) MAE gained back: max(0, (final - best) / final).
"""

import numpy as np

import tinymtl.nn.functional as F
from tinymtl.autograd import Tensor, no_grad
from tinymtl.backend import to_numpy
from tinymtl.backend.kernels import numpy_ref

SCORES = {"classification": "accuracy", "regression": "mae"}


def task_loss(kind, outputs, y):
    """The training loss of a batch: cross-entropy of logits (N, C), or MSE of outputs (N, 1)."""
    if kind == "regression":
        return F.mse_loss(outputs.reshape(-1), Tensor(y))
    return F.cross_entropy(outputs, y)


def score_sum(kind, outputs, y):
    """Σ over the batch of the task's score: correct answers, or absolute errors."""
    outputs = to_numpy(outputs)
    if kind == "regression":
        return float(np.abs(outputs.reshape(-1) - y).sum())
    return int((outputs.argmax(1) == y).sum())


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
    return {f"test_{SCORES[kind]}": score_sum(kind, outputs, y) / len(y),
            "test_loss": float(loss)}


def forgetting(peak, final):
    return max(0.0, (peak - final) / peak) if peak > 0 else 0.0


def task_summary(history, task, kind="classification"):
    """Peak (best), final and forgetting of one task over a run's evaluation history."""
    if kind == "regression":
        errors = [row["tasks"][task]["test_mae"] for row in history if task in row["tasks"]]
        if not errors:
            return {"test_mae": None, "best_mae": None, "forgetting": None}
        best, final = min(errors), errors[-1]
        return {"test_mae": final, "best_mae": best,
                "forgetting": max(0.0, (final - best) / final) if final > 0 else 0.0}
    accuracies = [row["tasks"][task]["test_accuracy"] for row in history if task in row["tasks"]]
    if not accuracies:
        return {"test_accuracy": None, "peak_accuracy": None, "forgetting": None}
    peak, final = max(accuracies), accuracies[-1]
    return {"test_accuracy": final, "peak_accuracy": peak, "forgetting": forgetting(peak, final)}
