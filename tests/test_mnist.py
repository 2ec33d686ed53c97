"""MNIST loading: sha256 before any unpickling, arrays-only unpickling, IDX files, a clear hint."""

import gzip
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.datasets import load_task, mnist


def test_a_file_with_another_sha256_is_refused_before_unpickling(monkeypatch):
    opened = []
    monkeypatch.setattr(mnist._ArraysOnlyUnpickler, "load", lambda self: opened.append(1))
    payload = gzip.compress(pickle.dumps(([np.zeros(3)],)))
    with pytest.raises(mnist.DataError, match="refusing to open it"):
        mnist.read_pickle(payload)
    assert not opened, "the file was unpickled before its sha256 was checked"


def test_only_numpy_arrays_can_be_unpickled():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2]))
    good = gzip.compress(pickle.dumps(arrays, protocol=2))
    loaded = mnist.read_pickle(good, expected_sha256=hashlib.sha256(good).hexdigest())
    np.testing.assert_array_equal(loaded[0], arrays[0])

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    evil = gzip.compress(pickle.dumps(Evil()))
    with pytest.raises(mnist.DataError, match="refusing to unpickle"):
        mnist.read_pickle(evil, expected_sha256=hashlib.sha256(evil).hexdigest())


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def fetch_fake_mnist(directory, train=64, test=32, cycle_labels=False):
    """Random 28x28 'digits' as IDX files in ``directory``, converted into the (temporary)
    datasets cache by ``tinymtl data fetch mnist --idx``; labels random, or 0-9 in turn."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("t10k", test)):
        write_idx(directory / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        labels = (np.arange(count) % 10 if cycle_labels else rng.integers(0, 10, count))
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    result = CliRunner().invoke(main, ["data", "fetch", "mnist", "--idx", str(directory)])
    assert result.exit_code == 0, result.output


def test_idx_files_convert_into_the_cache(tmp_path, data_dir):
    rng = np.random.default_rng(0)
    images = {split: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
              for split, n in (("train", 30), ("t10k", 12))}
    labels = {split: rng.integers(0, 10, len(images[split]), dtype=np.uint8) for split in images}
    for split in images:
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images[split])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels[split])
    result = CliRunner().invoke(main, ["data", "fetch", "mnist", "--idx", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = load_task("digits", "mnist")
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_test[:, 0] * 255, images["t10k"], atol=1e-4)
    np.testing.assert_array_equal(data.y_train, labels["train"])


def test_missing_data_tells_the_user_the_command(data_dir, tmp_path):
    with pytest.raises(mnist.DataError, match="tinymtl data fetch mnist"):
        load_task("digits", "mnist")
    config = tmp_path / "mnist.yaml"
    config.write_text("tasks: {digits: {generator: mnist}}\nmodel: {encoder: cnn}\n")
    result = CliRunner().invoke(main, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == \
        f"error: {mnist.FETCH_HINT} (looked for {mnist.path()})"
    assert not (tmp_path / "run").exists()


def test_bad_idx_file_is_a_clear_error(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(mnist.DataError, match="not an IDX file"):
        mnist.read_idx(tmp_path / "x")


def test_permuted_mnist_shuffles_every_image_by_one_fixed_permutation(tmp_path, data_dir):
    fetch_fake_mnist(tmp_path, train=40, test=20)
    plain = load_task("p0", "mnist")
    first, again, other = (load_task(f"p{k}", "mnist", permutation=k) for k in (3, 3, 5))
    order = np.random.default_rng(3).permutation(784)
    for split in ("x_train", "x_test"):
        x, permuted = getattr(plain, split), getattr(first, split)
        np.testing.assert_array_equal(permuted.reshape(len(x), -1), x.reshape(len(x), -1)[:, order])
        np.testing.assert_array_equal(getattr(again, split), permuted)  # same seed, same task
        assert not np.array_equal(getattr(other, split), permuted)
        # each image's pixels stay contiguous, so a batch gather reads whole rows
        assert permuted.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(first.y_train, plain.y_train)


def test_the_whole_training_set_keeps_its_official_validation_split(tmp_path, data_dir,
                                                                    monkeypatch):
    """All of MNIST's training images: the last OFFICIAL_VALID are the validation split (not
    carved), also after choosing digits or permuting pixels (here on a fake 64-image MNIST,
    with the constants scaled down to it)."""
    from tinymtl.datasets import load_tasks

    fetch_fake_mnist(tmp_path, train=64, test=32)
    monkeypatch.setattr(mnist, "TRAINING_IMAGES", 64)
    monkeypatch.setattr(mnist, "OFFICIAL_VALID", 16)
    whole = mnist.load()
    assert (len(whole.y_train), len(whole.y_valid), len(whole.y_test)) == (48, 16, 32)
    data = load_tasks({"digits": {"generator": "mnist"}}, valid_fraction=0.5)["digits"]
    np.testing.assert_array_equal(data.x_valid, whole.x_valid)  # not carved again
    np.testing.assert_array_equal(data.x_train, whole.x_train)
    split = mnist.load(digits=[3, 7])
    keep = np.isin(whole.y_valid, [3, 7])
    np.testing.assert_array_equal(split.x_valid, whole.x_valid[keep])
    permuted = mnist.load(permutation=5)
    order = np.random.default_rng(5).permutation(784)
    np.testing.assert_array_equal(permuted.x_valid.reshape(16, -1),
                                  whole.x_valid.reshape(16, -1)[:, order])
