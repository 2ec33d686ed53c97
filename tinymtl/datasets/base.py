"""``TaskData``: one task's train, validation and held-out test arrays, with the manifest that
identifies them.

Text tasks are drawn from a generator's ``sample(rng, max_length) -> (text, label)``. The training
set and the test set use independent random streams, and every test string that also occurs in
the training set is drawn again: **no held-out item is a string the model was trained on**.

The validation split is carved from the training data (``carve_validation``): every choice a
run makes (early stopping, the best checkpoint, a method's ranking) looks at it, and the test
set is evaluated once, at the end, to be reported. Text is carved by distinct strings, so no
validation string is one the model trains on either.
"""

import dataclasses
import hashlib

import numpy as np

from tinymtl.datasets.text import encode


@dataclasses.dataclass
class TaskData:
    """One task's splits. ``kind`` (``train.task_kinds``): ``classification`` (integer labels,
    one output per class), ``multilabel`` ({0, 1} per label), ``regression`` (float targets,
    one output each), ``embedding`` (integer labels, ``embedding_dim`` outputs) or
    ``alignment`` (property profiles (N, D), ``embedding_dim`` + D outputs).
    ``*_attributes`` hold per-example facts beyond the label (e.g. each image's shape class),
    for diagnostics."""

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
    x_valid: np.ndarray = None  # the validation split (``carve_validation``): what choices see
    y_valid: np.ndarray = None
    text_valid: list = dataclasses.field(default_factory=list)
    valid_attributes: dict = dataclasses.field(default_factory=dict)
    embedding_dim: int = 32  # the head's width for an embedding task
    # facts about the data as a whole, not per example: e.g. a food graph's compounds and the
    # markers its generator planted, what salience is scored against
    facts: dict = dataclasses.field(default_factory=dict)

    @property
    def has_valid(self):
        return self.y_valid is not None and len(self.y_valid) > 0

    @property
    def eval_split(self):
        """The split evaluations during training (and every choice) use: 'valid', or 'test'
        for a task without a validation split."""
        return "valid" if self.has_valid else "test"

    def split(self, name):
        """(x, y) of the split ``name``: 'train', 'valid' or 'test'."""
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def num_outputs(self):
        """Width of the task's head: one logit per class (per label, multilabel), one number
        per regression target, or the embedding's dimension."""
        if self.kind == "embedding":
            return self.embedding_dim
        if self.kind == "alignment":  # the embedding, then the predicted profile
            return self.embedding_dim + self.y_train.shape[1]
        if self.kind == "regression":
            return 1 if self.y_train.ndim == 1 else self.y_train.shape[1]
        return len(self.classes)

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


VALID_STREAM = 0x7A11D  # the validation carve's key beside the data seed


def carve_validation(data, size, seed, carved=None):
    """``data`` with (about) ``size`` of its training examples moved to a validation split.

    Which ones: a permutation seeded by (``seed``, the number of training examples), taken in
    order until ``size`` are chosen; for text, by distinct strings, all examples of a string
    going to one side, so the split is as held out as the test set. The rest stay in training
    in their original order. Tasks that label one set of inputs (an image set) carve the same
    examples and keep sharing their arrays (``carved``: {id(x_train): carved arrays}).
    A task that already has a validation split (an official one) is returned as it is."""
    n = len(data.y_train)
    if data.x_valid is not None or size <= 0:
        return data
    if size >= n:
        from tinymtl.errors import DataError

        raise DataError(f"{data.name}: a validation split of {size} leaves no training "
                        f"examples out of {n}; expected fewer (data.valid_fraction or "
                        f"tasks.{data.name}.valid_size)")
    carved = {} if carved is None else carved
    key = id(data.x_train)  # (the array is kept in the entry: its id cannot be reused)
    if key not in carved or carved[key][0] is not data.x_train:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, n,
                                                                         VALID_STREAM])))
        if data.text_train:
            groups = {}
            for index, text in enumerate(data.text_train):
                groups.setdefault(text, []).append(index)
            strings = list(groups)
            chosen = []
            for k in rng.permutation(len(strings)):
                if len(chosen) >= size or len(chosen) + len(groups[strings[k]]) >= n:
                    break
                chosen.extend(groups[strings[k]])
        else:
            chosen = rng.permutation(n)[:size]
        valid = np.zeros(n, dtype=bool)
        valid[chosen] = True
        carved[key] = (data.x_train, valid, data.x_train[~valid], data.x_train[valid])
    _, valid, x_train, x_valid = carved[key]
    train_index, valid_index = np.flatnonzero(~valid), np.flatnonzero(valid)
    return dataclasses.replace(
        data, x_train=x_train, y_train=data.y_train[~valid], x_valid=x_valid,
        y_valid=data.y_train[valid],
        text_train=[data.text_train[k] for k in train_index] if data.text_train else [],
        text_valid=[data.text_train[k] for k in valid_index] if data.text_train else [],
        train_attributes={k: v[~valid] for k, v in data.train_attributes.items()},
        valid_attributes={k: v[valid] for k, v in data.train_attributes.items()},
        manifest=dict(data.manifest, valid_size=int(valid.sum()), valid_seed=seed))
