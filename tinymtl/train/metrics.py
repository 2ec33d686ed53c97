"""Losses, evaluation and the per-task numbers a run reports, for every kind of task (the loss,
score and direction of each kind are in ``task_kinds.TASK_KINDS``).

forgetting = max(0, (peak - final) / peak): the share of its best validation accuracy a task
has lost by the end of training (0 when it ends at its peak). For regression it is the same
share of the best (lowest) MAE gained back: max(0, (final - best) / final). Choices look at the
validation split only; the test split is evaluated once, at the end, and reported.
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


def evaluate(model, task, x, y, batch_size=1024, kind="classification", split="test"):
    """{'<split>_accuracy' | '<split>_mae', '<split>_loss'} of ``model`` on a held-out set
    (``split``: 'valid' or 'test', the prefix of the keys)."""
    outputs = predict_logits(model, task, x, batch_size)
    loss = task_loss(kind, Tensor(outputs), y).item()
    return {f"{split}_{TASK_KINDS[kind].score}": score_sum(kind, outputs, y) / len(y),
            f"{split}_loss": float(loss)}


def forgetting(peak, final):
    return max(0.0, (peak - final) / peak) if peak > 0 else 0.0


def evaluated_split(row, task, kind):
    """The split ``task`` was evaluated on in an evaluation row: 'valid', or 'test' for a task
    without a validation split (and in runs written before there was one)."""
    return "valid" if f"valid_{TASK_KINDS[kind].score}" in row["tasks"][task] else "test"


def task_summary(history, task, kind="classification", test=None):
    """One task over a run: its evaluations during training (``history``, on the validation
    split) give the final and best value, the step of the best and the forgetting; ``test``
    (the run's one test row, at the end) gives the test score reported. For classification:
    {test_accuracy, valid_accuracy, peak_accuracy, best_step, forgetting} (regression: _mae,
    best_mae). In a run without a validation split the evaluations are on test, as before."""
    rows = [row for row in history if task in row["tasks"]]
    split = evaluated_split(rows[-1], task, kind) if rows else "valid"
    kind = TASK_KINDS[kind]
    key = f"{split}_{kind.score}"
    values = [row["tasks"][task][key] for row in rows]
    test_key = f"test_{kind.score}"
    reported = test["tasks"][task][test_key] if test and task in test["tasks"] else None
    if not values:
        return {test_key: reported, kind.best: None, "best_step": None, "forgetting": None}
    final = values[-1]
    best_at = max(range(len(values)), key=lambda k: (values[k] if kind.higher_is_better
                                                     else -values[k], -k))
    best = values[best_at]
    lost = forgetting(best, final) if kind.higher_is_better else \
        (max(0.0, (final - best) / final) if final > 0 else 0.0)
    summary = {test_key: final if split == "test" else reported, kind.best: best,
               "best_step": rows[best_at]["step"], "forgetting": lost}
    if split == "valid":
        summary[key] = final
    return summary
