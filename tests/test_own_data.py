"""A user's own data (``datasets.files``): NPZ/HDF5 arrays, TSV text pairs and image folders
load as tasks of every kind, train end to end (smoke: every path, resume bitwise), and each bad
file is refused in one line that names it, leaving no run folder."""

import json

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tinymtl import datasets
from tinymtl.cli import main


def blobs(rng, n, classes=3, features=8):
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, features)).astype(np.float32) + 2 * np.eye(classes, features)[y]
    return x.astype(np.float32), y


def write_arrays(path, kind="classification", valid=False, seed=0, **replace):
    """An .npz or .h5 of ``kind``'s labels over 8-feature blobs (``replace``: arrays to swap
    in, e.g. a broken one)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in [("train", 240), ("test", 60)] + ([("valid", 40)] if valid else []):
        x, y = blobs(rng, n)
        if kind == "multilabel":
            y = (rng.random((n, 4)) < 0.4).astype(np.float32)
            x[:, :4] += 2 * y
        elif kind == "regression":
            y = x[:, :2] @ np.array([[1.0, 0.5], [-0.3, 2.0]], np.float32)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    if str(path).endswith(".npz"):
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as f:
            for key, value in arrays.items():
                f[key] = value
    return arrays


def config_file(tmp_path, tasks, encoder="mlp", **training):
    config = {"name": "own", "seed": 0, "tasks": tasks, "model": {"encoder": encoder},
              "training": dict({"steps": 30, "eval_every": 15, "batch_size": 16}, **training),
              "baselines": "none"}
    if encoder == "cnn":
        config["model"].update(channels=[4], features=8)
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(tmp_path, path, *extra):
    return CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                     "--quiet", *extra])


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_arrays_load_as_given_with_the_official_validation_split(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    arrays = write_arrays(path, valid=True)
    spec = {"generator": "arrays", "path": str(path), "classes": ["a", "b", "c"]}
    data = datasets.load_tasks({"t": spec}, valid_fraction=0.1)["t"]
    # the file's valid split is used as it is: nothing carved from train
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(data.split(split)[0], arrays[f"x_{split}"])
        np.testing.assert_array_equal(data.split(split)[1], arrays[f"y_{split}"])
    assert data.classes == ["a", "b", "c"] and data.x_train.dtype == np.float32
    assert data.manifest["sha256"] == datasets.array_digest(
        *[arrays[f"{a}_{s}"] for s in ("train", "valid", "test") for a in "xy"])


def test_without_a_valid_split_one_is_carved_and_sizes_take_a_seeded_subset(tmp_path):
    path = tmp_path / "data.npz"
    write_arrays(path)
    spec = {"generator": "arrays", "path": str(path), "train_size": 100, "test_size": 50}
    first = datasets.load_tasks({"t": spec}, seed=3, valid_fraction=0.1)["t"]
    again = datasets.load_tasks({"t": spec}, seed=3, valid_fraction=0.1)["t"]
    assert (len(first.y_train), len(first.y_valid), len(first.y_test)) == (90, 10, 50)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    other = datasets.load_tasks({"t": spec}, seed=4, valid_fraction=0.1)["t"]
    assert not np.array_equal(first.x_train, other.x_train)


@pytest.mark.parametrize("kind, score", [("classification", "accuracy"),
                                         ("multilabel", "micro_f1"),
                                         ("regression", "mae"),
                                         ("embedding", "recall_at_1")])
def test_every_kind_smokes_through_every_path(tmp_path, kind, score):
    write_arrays(tmp_path / "data.npz", kind=kind)
    path = config_file(tmp_path, {"t": {"generator": "arrays", "path": str(tmp_path / "data.npz"),
                                        "kind": kind}})
    result = run(tmp_path, path)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["tasks"]["t"]
    assert summary["kind"] == kind and summary[f"test_{score}"] is not None
    smoke = CliRunner().invoke(main, ["run", str(path), "--smoke", "--out",
                                      str(tmp_path / "smoke"), "--quiet"])
    assert smoke.exit_code == 0, smoke.output
    assert "bitwise the same weights" in smoke.output


def test_tsv_text_pairs_and_image_folders_train(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "poor"]}
    for split, n in [("train", 120), ("test", 30)]:
        lines = []
        for _ in range(n):
            label = str(rng.choice(["pos", "neg"]))
            lines.append(f"{' '.join(rng.choice(words[label], 2))}\t{label}")
        (tmp_path / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    for split, n in [("train", 20), ("test", 6)]:
        for name, value in [("dark", 40), ("light", 220)]:
            folder = tmp_path / "img" / split / name
            folder.mkdir(parents=True)
            for k in range(n):
                pixels = np.clip(value + rng.integers(-30, 30, (6, 5)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{k}.png")
    text = datasets.load_tasks({"t": {"generator": "tsv", "train": str(tmp_path / "train.tsv"),
                                      "test": str(tmp_path / "test.tsv")}})["t"]
    assert text.classes == ["neg", "pos"] and text.x_train.dtype == np.int64
    assert datasets.decode(text.x_train[:1])[0] == text.text_train[0]
    images = datasets.load_tasks({"t": {"generator": "image_folder",
                                        "root": str(tmp_path / "img"), "channels": 1}})["t"]
    assert images.x_train.shape == (40, 1, 6, 5) and images.classes == ["dark", "light"]
    assert 0 <= images.x_train.min() and images.x_train.max() <= 1
    path = config_file(tmp_path, {"t": {"generator": "tsv", "train": str(tmp_path / "train.tsv"),
                                        "test": str(tmp_path / "test.tsv")}}, encoder="conv")
    assert run(tmp_path, path).exit_code == 0
    path = config_file(tmp_path, {"t": {"generator": "image_folder", "channels": 1,
                                        "root": str(tmp_path / "img")}}, encoder="cnn")
    result = run(tmp_path, path, "--smoke")
    assert result.exit_code == 0, result.output


# -- bad files: one line, naming the file, exit 1, no run folder -------------------------------
def refused(tmp_path, spec, expected, encoder="mlp"):
    path = config_file(tmp_path, {"t": spec}, encoder=encoder)
    result = run(tmp_path, path)
    assert result.exit_code in (1, 2), result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1, line
    assert expected in line, line
    assert not (tmp_path / "run").exists()
    return line


BAD_ARRAYS = {
    "a missing array": ({"y_test": None}, "no array 'y_test'; expected x_train, y_train"),
    "inputs and labels of different lengths": ({"y_train": np.zeros(10, np.int64)},
                                               "the train split has 240 inputs but 10 labels"),
    "a negative label": ({"y_test": -np.ones(60, np.int64)}, "y_test: label -1 at example 0"),
    "float class labels": ({"y_train": np.zeros(240)}, "expected integer class ids"),
    "NaN in the inputs": ({"x_test": np.full((60, 8), np.nan, np.float32)},
                          "x_test: inputs hold NaN or infinity (first at example 0)"),
    "text inputs": ({"x_train": np.array(["a"] * 240)}, "x_train: inputs of dtype <U1"),
    "x_valid alone": ({"x_valid": np.zeros((5, 8), np.float32)},
                      "x_valid and y_valid come together"),
    "inputs of another shape": ({"x_test": np.zeros((60, 9), np.float32)},
                                "the splits' examples differ in shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_arrays_are_refused_in_one_line(tmp_path, case):
    replace, expected = BAD_ARRAYS[case]
    write_arrays(tmp_path / "bad.npz", **replace)
    line = refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "bad.npz")},
                   expected)
    assert "bad.npz" in line


def test_pickled_objects_are_never_loaded(tmp_path):
    write_arrays(tmp_path / "evil.npz", x_train=np.array([object()] * 240, dtype=object))
    refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "evil.npz")},
            "expected plain numeric arrays")


@pytest.mark.parametrize("content, expected", [
    (b"not a zip", "cannot be read"), (None, "no such file or directory")])
def test_unreadable_or_missing_files_are_refused(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "bad.npz").write_bytes(content)
    refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "bad.npz")}, expected)


def test_wrong_kind_labels_and_sizes_are_refused(tmp_path):
    write_arrays(tmp_path / "d.npz", kind="classification")
    refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "d.npz"),
                       "kind": "multilabel"}, "expected 0/1 per example and label")
    refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "d.npz"),
                       "classes": ["a", "b"]}, "expected class ids 0..1")
    refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "d.npz"),
                       "train_size": 500}, "train_size = 500, but the train split has only 240")
    refused(tmp_path, {"generator": "arrays", "path": str(tmp_path / "d.txt")},
            "expected a .npz, .h5 or .hdf5 file")


@pytest.mark.parametrize("train, test, expected", [
    ("good\tpos\nbad pos\n", "good\tpos\n", "train.tsv:2: 'bad pos' has 0 tabs"),
    ("good\tpos\n", "bad\tneg\n", "test.tsv:1: label 'neg' is not a class of the training"),
    ("good\tpos\n", "b@d\tpos\n", "test.tsv:1: input 'b@d' has the character '@'"),
    ("good\tpos\n", "g" * 30 + "\tpos\n", "test.tsv:1: input"),
    ("\n\n", "good\tpos\n", "train.tsv: no text<TAB>label lines"),
])
def test_bad_tsv_lines_are_refused_with_their_line(tmp_path, train, test, expected):
    (tmp_path / "train.tsv").write_text(train)
    (tmp_path / "test.tsv").write_text(test)
    refused(tmp_path, {"generator": "tsv", "train": str(tmp_path / "train.tsv"),
                       "test": str(tmp_path / "test.tsv")}, expected, encoder="conv")


def test_a_regression_tsv_needs_numbers(tmp_path):
    (tmp_path / "train.tsv").write_text("one\t1.5\ntwo\tmany\n")
    (tmp_path / "test.tsv").write_text("one\t1\n")
    refused(tmp_path, {"generator": "tsv", "train": str(tmp_path / "train.tsv"), "kind":
                       "regression", "test": str(tmp_path / "test.tsv")},
            "train.tsv:2: label 'many'; expected a finite number", encoder="conv")


def test_bad_image_folders_are_refused(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "img" / split / "a").mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "img" / split / "a" / "0.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "img" / "train" / "a" / "1.png")
    spec = {"generator": "image_folder", "root": str(tmp_path / "img"), "channels": 1}
    refused(tmp_path, spec, "1.png: 5x4 pixels, but", encoder="cnn")
    (tmp_path / "img" / "train" / "a" / "1.png").write_bytes(b"not an image")
    refused(tmp_path, spec, "1.png: not a readable image", encoder="cnn")
    (tmp_path / "img" / "train" / "a" / "1.png").unlink()
    (tmp_path / "img" / "test" / "b").mkdir()
    refused(tmp_path, spec, "a class the training split does not have", encoder="cnn")
