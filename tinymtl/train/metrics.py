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
from tinymtl.mtl.model import model_input
from tinymtl.nn.utils import module_device
from tinymtl.train.task_kinds import TASK_KINDS


def task_loss(kind, outputs, y):
    """The training loss of a batch: cross-entropy of logits (N, C), or MSE of outputs (N, 1)."""
    return TASK_KINDS[kind].loss(outputs, y)


def score_sum(kind, outputs, y):
    """The task's score on a batch times its size (``TaskKind.batch_score_sum``): what the
    running mean of a training log adds up."""
    return TASK_KINDS[kind].batch_score_sum(outputs, y)


def softmax(logits):
    """Row-wise class probabilities of NumPy logits (N, C): exp(log_softmax)."""
    return np.exp(numpy_ref.log_softmax(logits))


@no_grad()
def predict_logits(model, task, x, batch_size=1024):
    """Outputs of ``model`` for ``task`` on inputs ``x``, in eval mode, as one NumPy array."""
    was_training = model.training
    model.eval()
    try:
        device = module_device(model)
        parts = [to_numpy(model(model_input(x[k:k + batch_size], device), task).data)
                 for k in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts)


def evaluate(model, task, x, y, batch_size=1024, kind="classification", split="test",
             detail=False):
    """{'<split>_<score>', '<split>_loss', '<split>_<metric>' ...} of ``model`` on a held-out
    set: the kind's headline score first (accuracy, MAE, ...), its loss, then its other
    metrics (``task_kinds``; ``split``: 'valid' or 'test', the prefix of the keys; ``detail``:
    per class values and the confusion matrix too, as the test row has them)."""
    outputs = predict_logits(model, task, x, batch_size)
    if TASK_KINDS[kind].pairwise:  # (a loss within batches: the mean over batches of its size)
        parts = range(0, len(y), batch_size)
        loss = sum(task_loss(kind, Tensor(outputs[k:k + batch_size]), y[k:k + batch_size]).item()
                   * len(y[k:k + batch_size]) for k in parts) / len(y)
    else:
        loss = task_loss(kind, Tensor(outputs), y).item()
    metrics = TASK_KINDS[kind].evaluate(outputs, y, detail=detail)
    headline = TASK_KINDS[kind].score
    row = {f"{split}_{headline}": metrics.pop(headline), f"{split}_loss": float(loss)}
    row.update({f"{split}_{name}": value for name, value in metrics.items()})
    return row


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
    # (a score undefined on a tiny split, None, e.g. a rank correlation of two examples,
    # takes no part in the best or the forgetting)
    rows = [row for row in rows if row["tasks"][task].get(key) is not None]
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
    if test and task in test["tasks"]:  # the test row's other metrics (F1, AUROC, R², ...)
        summary.update({k: v for k, v in test["tasks"][task].items() if k not in summary})
    return summary
