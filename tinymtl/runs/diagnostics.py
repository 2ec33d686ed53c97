"""``tinymtl diagnose RUN_DIR --task B``: why is a task hard? One report, PNG + JSON.

Given a finished run, for one classification task (B) and, optionally, a task it may depend on
(A, e.g. shape for orientation):

confusion            C[i, j] = number of test items of class i predicted as j
given                accuracy of B where A is predicted correctly / wrongly, and per true A class
entropy              mean H(p) = -Σ_c p_c log p_c of B's predicted distributions against the
                     uniform maximum log K; per A class against log k, the entropy a perfect
                     model must keep when k bins look alike (k-fold symmetry, absolute labels)
samples              a grid of test images per class of B (green: predicted right, red: wrong)
probe                a fresh B head trained on the *frozen* backbone: how much of B the shared
                     features hold, without B's gradient shaping them any further
oracle               the same probe, its input also holding the true A label (one-hot; on a
                     feature map as K constant channels). The gain over the probe is what
                     knowing A adds; a gain the real model cannot have is label leakage
ambiguity            (shapes3 orientation) per shape: rotational order k, 32/k distinguishable
                     bins, accuracy ceiling 1/k for absolute labels (1 when well posed), the
                     test set's ceiling Σ_n ceiling(shape_n) / N, and B's accuracy against it
"""

import json
import math
import pathlib

import numpy as np

from tinymtl import nn
from tinymtl.autograd import Tensor, no_grad
from tinymtl.autograd.ops.shape import broadcast_to, cat
from tinymtl.backend import manual_seed, to_numpy
from tinymtl.backend.random import Generator
from tinymtl.datasets import shapes
from tinymtl.files import write_text
from tinymtl.mtl.heads import make_head
from tinymtl.mtl.model import default_head, feature_shape
from tinymtl.optim import Adam
from tinymtl.report import plots
from tinymtl.runs.setup import model_from_checkpoint
from tinymtl.train import checkpoint
from tinymtl.train.metrics import predict_logits, softmax, task_loss
from tinymtl.train.progress import ProgressBar


class DiagnoseError(ValueError):
    """A run or task that cannot be diagnosed; the message is one line."""


def _mean_where(values, mask):
    """Mean of ``values`` where ``mask`` holds, or None where it never does."""
    return float(values[mask].mean()) if mask.any() else None


def entropy(probabilities):
    """H(p) = -Σ p log p per row, in nats (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probabilities > 0, probabilities * np.log(probabilities), 0.0)
    return -terms.sum(axis=1)


def confusion_matrix(y_true, y_pred, classes):
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def accuracy_given(b_correct, a_true, a_pred, a_classes):
    """B's accuracy where A is right / wrong, and per true A class (with A's own accuracy)."""
    a_correct = a_true == a_pred
    per_class = {name: {"count": int((a_true == k).sum()),
                        "a_accuracy": _mean_where(a_correct, a_true == k),
                        "b_accuracy": _mean_where(b_correct, a_true == k)}
                 for k, name in enumerate(a_classes)}
    return {"b_accuracy_given_a_correct": _mean_where(b_correct, a_correct),
            "b_accuracy_given_a_wrong": _mean_where(b_correct, ~a_correct),
            "a_accuracy": float(a_correct.mean()), "per_a_class": per_class}


def label_ambiguity(shape_ids, b_correct, well_posed, entropies=None):
    """Per shape: symmetry order, distinguishable bins, ceiling, B's accuracy (and, given the
    per-item ``entropies``, their mean beside log(1 / ceiling): the entropy a perfect model keeps
    when 1/ceiling bins look alike); and the test set's ceiling."""
    per_shape = {}
    for k, name in enumerate(shapes.SHAPES):
        mask = shape_ids == k
        ceiling = 1.0 if well_posed else shapes.orientation_ceiling(k)
        per_shape[name] = {
            "symmetry_order": shapes.SYMMETRY[name],
            "distinguishable_bins": shapes.orientation_bins_used(k),
            "ceiling": ceiling, "count": int(mask.sum()),
            "b_accuracy": _mean_where(b_correct, mask)}
        if entropies is not None:
            per_shape[name].update(symmetry_entropy_nats=math.log(1 / ceiling),
                                   mean_entropy_nats=_mean_where(entropies, mask))
    ceilings = np.array([per_shape[shapes.SHAPES[s]]["ceiling"] for s in shape_ids])
    accuracy = float(b_correct.mean())
    return {"well_posed": bool(well_posed), "per_shape": per_shape,
            "ceiling": float(ceilings.mean()), "accuracy": accuracy,
            "share_of_ceiling": accuracy / float(ceilings.mean())}


# -- probes: fresh heads on the frozen backbone ---------------------------------------------------
class ConditionedHead(nn.Module):
    """A head whose input also holds a one-hot label: concatenated to a feature vector, or as
    constant channels to a feature map."""

    def __init__(self, head, conditions):
        super().__init__()
        self.head, self.conditions = head, conditions

    def forward(self, features, onehot=None):
        if onehot is None:
            return self.head(features)
        if features.ndim == 4:
            n, _, height, width = features.shape
            onehot = broadcast_to(onehot.reshape(n, self.conditions, 1, 1),
                                  (n, self.conditions, height, width))
        return self.head(cat([features, onehot], dim=1))


def train_probe(model, data, head_kind, steps, batch_size, lr, seed, conditions=None,
                label="probe", progress=True):
    """Train a fresh head on ``model``'s frozen features (plus one-hot ``conditions`` labels
    (train, test, K), if given); returns its held-out accuracy."""
    shape = feature_shape(model.backbone)
    extra = conditions[2] if conditions is not None else 0
    widened = (shape[0] + extra,) + tuple(shape[1:])
    manual_seed(seed)
    probe = ConditionedHead(make_head(head_kind, widened, data.num_outputs), extra)
    optimizer = Adam(probe.parameters(), lr=lr)
    rng = Generator(seed)
    eye = np.eye(extra, dtype=np.float32) if extra else None
    was_training = model.training
    model.eval()

    @no_grad()
    def features(x):
        return model.backbone(Tensor(x)).detach()

    def onehot(split, index):
        return None if eye is None else Tensor(eye[conditions[split][index]])

    bar = ProgressBar(steps, label, enabled=progress)
    for step in range(steps):
        index = rng.integers(0, len(data.y_train), batch_size)
        optimizer.zero_grad()
        outputs = probe(features(data.x_train[index]), onehot(0, index))
        task_loss(data.kind, outputs, data.y_train[index]).backward()
        optimizer.step()
        bar.update(step + 1)
    bar.close()
    correct = 0
    with no_grad():
        for start in range(0, len(data.y_test), 1024):
            index = np.arange(start, min(start + 1024, len(data.y_test)))
            outputs = probe(features(data.x_test[index]), onehot(1, index))
            correct += int((to_numpy(outputs.data).argmax(1) == data.y_test[index]).sum())
    model.train(was_training)
    return correct / len(data.y_test)


# -- the report -----------------------------------------------------------------------------------
def _given_task(config, tasks, task, given):
    """The task B is checked against: ``given``, else a shape-target task on the same inputs."""
    if given is not None:
        if given not in tasks or given == task:
            raise DiagnoseError(f"--given {given!r}: expected another task of the run "
                                f"({', '.join(t for t in tasks if t != task)})")
        if tasks[given].kind != "classification":
            raise DiagnoseError(f"--given {given!r}: a regression task has no classes")
        if tasks[given].x_test is not tasks[task].x_test:
            raise DiagnoseError(f"--given {given!r}: it does not label the same inputs as "
                                f"{task!r}")
        return given
    for name, spec in config["tasks"].items():
        if name != task and spec.get("target") == "shape" and \
                tasks[name].x_test is tasks[task].x_test:
            return name
    return None


def diagnose(run_dir, task, given=None, probe_steps=1000, out_dir=None, progress=True):
    """Write the report for ``task`` of the run in ``run_dir``; returns it (also report.json)."""
    run_dir = pathlib.Path(run_dir)
    path = run_dir / "checkpoint.h5"
    if not path.exists():
        raise DiagnoseError(f"{run_dir}: no checkpoint.h5 here; expected a run directory "
                            f"written by `tinymtl run`")
    config, tasks, model = model_from_checkpoint(checkpoint.load(path))
    if task not in tasks:
        raise DiagnoseError(f"unknown task {task!r}; this run has {', '.join(tasks)}")
    data = tasks[task]
    if data.kind != "classification":
        raise DiagnoseError(f"task {task!r} is a regression task; diagnose explains "
                            f"classification tasks")
    given = _given_task(config, tasks, task, given)
    out = pathlib.Path(out_dir) if out_dir else run_dir / f"diagnose_{task}"
    out.mkdir(parents=True, exist_ok=True)

    logits = predict_logits(model, task, data.x_test)
    probabilities = softmax(logits.astype(np.float64))
    predicted = probabilities.argmax(1)
    correct = predicted == data.y_test
    classes = data.num_classes
    entropies = entropy(probabilities)
    marginal = np.bincount(predicted, minlength=classes) / len(predicted)
    report = {
        "run": str(run_dir), "task": task, "given": given, "classes": data.classes,
        "test_items": int(len(data.y_test)), "accuracy": float(correct.mean()),
        "chance_accuracy": 1 / classes,
        "confusion": confusion_matrix(data.y_test, predicted, classes).tolist(),
        "entropy": {"mean_nats": float(entropies.mean()), "uniform_max_nats": math.log(classes),
                    "mean_share_of_max": float(entropies.mean() / math.log(classes)),
                    "predicted_classes_nats": float(entropy(marginal[None])[0])},
        "artefacts": {},
    }

    a_true = a_pred = None
    if given is not None:
        a = tasks[given]
        a_true, a_pred = a.y_test, predict_logits(model, given, a.x_test).argmax(1)
        report["given_accuracy"] = accuracy_given(correct, a_true, a_pred, a.classes)
        report["entropy"]["per_given_class"] = {
            name: _mean_where(entropies, a_true == k) for k, name in enumerate(a.classes)}

    spec = config["tasks"][task]
    if spec.get("target") == "orientation" and "shape" in data.test_attributes:
        report["ambiguity"] = label_ambiguity(data.test_attributes["shape"], correct,
                                              bool(spec.get("well_posed")), entropies)

    # probes on the frozen backbone: plain, and with the true given label (oracle)
    head_kind = spec.get("head") or default_head(feature_shape(model.backbone))
    training = config["training"]
    probe_args = dict(steps=probe_steps, batch_size=training["batch_size"],
                      lr=min(training["lr"], 1e-3), seed=config["seed"], progress=progress)
    probe = train_probe(model, data, head_kind, label=f"probe {task}", **probe_args)
    report["probe"] = {"head": head_kind, "steps": probe_steps, "frozen_probe_accuracy": probe,
                       "model_accuracy": report["accuracy"]}
    oracle_labels = None
    if given is not None:
        oracle_labels = (tasks[given].y_train, tasks[given].y_test, tasks[given].num_classes)
        oracle_name = given
    elif "shape" in data.test_attributes:
        oracle_labels = (data.train_attributes["shape"], data.test_attributes["shape"],
                         len(shapes.SHAPES))
        oracle_name = "shape"
    if oracle_labels is not None:
        oracle = train_probe(model, data, head_kind, conditions=oracle_labels,
                             label=f"oracle {task}", **probe_args)
        report["oracle"] = {"conditioned_on": oracle_name, "oracle_probe_accuracy": oracle,
                            "frozen_probe_accuracy": probe, "gain": oracle - probe}

    report["artefacts"]["confusion"] = plots.confusion(
        np.array(report["confusion"]), data.classes, f"{task}: confusion (test set)",
        out / "confusion.png")
    if data.x_test.ndim == 4:
        report["artefacts"]["samples"] = plots.sample_grid(
            data.x_test, data.y_test, predicted, data.classes, out / "samples.png")
    if "ambiguity" in report or given is not None:
        report["artefacts"]["by_given_class"] = plots.accuracy_by_group(
            report, out / "by_class.png")
    write_text(out / "report.json", json.dumps(report, indent=2))
    report["artefacts"]["report"] = str(out / "report.json")
    return report
