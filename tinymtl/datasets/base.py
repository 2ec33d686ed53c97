"""``TaskData``: one task's train and held-out test arrays, with the manifest that identifies them.

Text tasks are drawn from a generator's ``sample(rng, max_length) -> (text, label)``. The training
set and the test set use independent random streams, and every test string that also occurs in
the training set is drawn again: **no held-out item is a string the model was trained on**.
"""

import dataclasses
import hashlib

import numpy as np

from tinymtl.datasets.text import encode


@dataclasses.dataclass
class TaskData:
    """One task's splits. ``kind`` is ``classification`` (integer labels, one output per class)
    or ``regression`` (float targets, one output). ``*_attributes`` hold per-example facts
    beyond the label (e.g. each image's shape class), for diagnostics."""

    name: str
    classes: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    text_train: list = dataclasses.field(default_factory=list)
    text_test: list = dataclasses.field(default_factory=list)
    manifest: dict = dataclasses.field(default_factory=dict)
    kind: str = "classification"
    train_attributes: dict = dataclasses.field(default_factory=dict)
    test_attributes: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def num_outputs(self):
        """Width of the task's head: one logit per class, or one number for regression."""
        return 1 if self.kind == "regression" else len(self.classes)

    def token_counts(self, x):
        """Each example's tokens, the unit of token accounting: characters (non-padding ids)
        for text, one per example for images."""
        if x.dtype.kind in "iu":
            return (x != 0).reshape(len(x), -1).sum(1)
        return np.ones(len(x), dtype=np.int64)

    def tokens(self, x):
        return int(self.token_counts(x).sum())


def array_digest(*arrays):
    """sha256 over the arrays' dtypes, shapes and bytes: equal digests mean equal data."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def generate_text_task(name, sample, classes, train_size, test_size, max_length, seed):
    """Draw a text task's splits with ``sample(rng, max_length) -> (text, label)`` (see the
    module docstring for the held-out guarantee)."""
    streams = np.random.SeedSequence([seed, sum(map(ord, name))]).spawn(2)
    train_rng, test_rng = (np.random.Generator(np.random.PCG64(s)) for s in streams)
    train = [sample(train_rng, max_length) for _ in range(train_size)]
    seen = {text for text, _ in train}
    test, attempts = [], 0
    while len(test) < test_size:
        attempts += 1
        if attempts > 50 * test_size:
            raise RuntimeError(f"{name}: cannot draw {test_size} test items unseen in training; "
                               f"lower train_size or raise max_length")
        text, label = sample(test_rng, max_length)
        if text not in seen:
            test.append((text, label))
    text_train, y_train = zip(*train)
    text_test, y_test = zip(*test)
    return TaskData(
        name=name, classes=list(classes),
        x_train=encode(text_train, max_length), y_train=np.array(y_train, dtype=np.int64),
        x_test=encode(text_test, max_length), y_test=np.array(y_test, dtype=np.int64),
        text_train=list(text_train), text_test=list(text_test))
