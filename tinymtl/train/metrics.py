"""Evaluation and the per-task numbers a run reports.

forgetting = max(0, (peak - final) / peak): the share of its best test accuracy a task has lost
by the end of training (0 when it ends at its peak).
"""

import numpy as np

from tinymtl.autograd import Tensor, no_grad
from tinymtl.backend import to_numpy
import tinymtl.nn.functional as F


@no_grad()
def predict_logits(model, task, x, batch_size=1024):
    """Logits of ``model`` for ``task`` on inputs ``x``, in eval mode, as one NumPy array."""
    was_training = model.training
    model.eval()
    try:
        parts = [to_numpy(model(Tensor(x[k:k + batch_size]), task).data)
                 for k in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts)


def evaluate(model, task, x, y, batch_size=1024):
    """{'test_accuracy', 'test_loss'} of ``model`` on a held-out set."""
    logits = predict_logits(model, task, x, batch_size)
    loss = F.cross_entropy(Tensor(logits), y).item()
    return {"test_accuracy": float((logits.argmax(1) == y).mean()), "test_loss": float(loss)}


def forgetting(peak, final):
    return max(0.0, (peak - final) / peak) if peak > 0 else 0.0


def task_summary(history, task):
    """Peak, final and forgetting of one task over a run's evaluation history."""
    accuracies = [row["tasks"][task]["test_accuracy"] for row in history if task in row["tasks"]]
    if not accuracies:
        return {"test_accuracy": None, "peak_accuracy": None, "forgetting": None}
    peak, final = max(accuracies), accuracies[-1]
    return {"test_accuracy": final, "peak_accuracy": peak, "forgetting": forgetting(peak, final)}
