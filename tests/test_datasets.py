"""Procedural text tasks: deterministic, held-out by construction, cached with a manifest."""

import numpy as np
import pytest

from tinymtl.datasets import decode, encode, load_task
from tinymtl.datasets import arithmetic, kindergarten


def test_same_seed_same_sha256_and_other_seed_differs(data_dir):
    a = load_task("math", "math", 500, 100, 20, seed=1, use_cache=False)
    b = load_task("math", "math", 500, 100, 20, seed=1, use_cache=False)
    c = load_task("math", "math", 500, 100, 20, seed=2, use_cache=False)
    assert a.manifest["sha256"] == b.manifest["sha256"] != c.manifest["sha256"]
    np.testing.assert_array_equal(a.x_train, b.x_train)


@pytest.mark.parametrize("generator", ["kindergarten", "math"])
def test_no_test_item_is_a_training_string(generator, data_dir):
    data = load_task(generator, generator, 3000, 500, 20, use_cache=False)
    assert not set(data.text_test) & set(data.text_train)
    assert decode(data.x_test) == [t for t in data.text_test]


def test_labels_are_the_right_answers(data_dir):
    math = load_task("math", "math", 400, 50, 20, use_cache=False)
    for text, label in zip(math.text_train, math.y_train):
        expression = text.split("=")[0].replace("plus", "+").replace("minus", "-")
        assert eval(expression, {"__builtins__": {}}) == label, text  # noqa: S307 (our own strings)
    kg = load_task("kindergarten", "kindergarten", 400, 50, 20, use_cache=False)
    for text, label in zip(kg.text_train, kg.y_train):
        words = text.rstrip("?").split()
        question, letters = " ".join(words[:-1]).lower(), words[-1]
        expected = {"after": lambda s: chr(ord(s) + 1), "before": lambda s: chr(ord(s) - 1),
                    "first of": lambda s: s[0], "last of": lambda s: s[-1]}[question](letters)
        assert kindergarten.CLASSES[label] == expected, text
    assert len(arithmetic.CLASSES) == 19 and len(kindergarten.CLASSES) == 26


def test_cache_is_reused_and_regenerated_identically(data_dir):
    first = load_task("kindergarten", "kindergarten", 300, 50, 20)
    files = list(data_dir.glob("*.h5"))
    assert len(files) == 1 and files[0].with_suffix(".json").exists()
    again = load_task("kindergarten", "kindergarten", 300, 50, 20)
    assert again.manifest == first.manifest
    files[0].write_bytes(b"corrupted")           # a damaged cache file is regenerated
    fixed = load_task("kindergarten", "kindergarten", 300, 50, 20)
    assert fixed.manifest["sha256"] == first.manifest["sha256"]
    files[0].unlink()                            # a deleted one too, identically
    assert load_task("kindergarten", "kindergarten", 300, 50, 20).manifest == first.manifest


def test_encode_rejects_unknown_characters_and_long_inputs():
    with pytest.raises(ValueError, match="character '~'"):
        encode(["7~5"], 20)
    with pytest.raises(ValueError, match="at most 4"):
        encode(["12345"], 4)


def test_one_dataset_protocol_gives_the_config_schema_and_the_fetch_choices():
    from click.testing import CliRunner

    from tinymtl import datasets
    from tinymtl.cli import main
    from tinymtl.train import config as config_module

    task = config_module.schema()["tasks"].item
    for name, source in datasets.SOURCES.items():
        assert isinstance(source, datasets.DataSource) and source.name == name
        assert set(source.OPTIONS) <= set(task)
    assert task["generator"].choices == tuple(datasets.SOURCES)
    fetched = [n for n, s in datasets.SOURCES.items() if s.fetch is not None]
    assert fetched == ["mnist", "molecules"]
    usage = CliRunner().invoke(main, ["data", "fetch", "--help"]).output
    assert "{" + "|".join(fetched) + "}" in usage


@pytest.mark.parametrize("damage", ["truncate", "regroup", "flip"])
def test_a_damaged_cache_is_rebuilt_never_trusted(damage, data_dir):
    import h5py

    from tinymtl.datasets import cache

    first = load_task("math", "math", 200, 40, 20)
    spec = {"name": "math", "generator": "math", "version": 1, "seed": 0, "train_size": 200,
            "test_size": 40, "max_length": 20}
    path = cache.cache_path(spec)
    assert path.exists()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "regroup":
        with h5py.File(path, "r+") as f:
            del f["x_train"]
            f.create_group("x_train")
    else:
        with h5py.File(path, "r+") as f:
            f["y_train"][0] = (f["y_train"][0] + 1) % 19  # sha256 no longer matches
    again = load_task("math", "math", 200, 40, 20)
    assert again.x_train.tobytes() == first.x_train.tobytes()
    assert again.y_train.tobytes() == first.y_train.tobytes()
    assert cache.load(path) is not None  # rebuilt and cached again


def test_carving_never_mixes_up_two_tasks_whose_arrays_were_freed():
    """The carve cache is keyed by id(x_train); a freed array's id can be reused by the next
    task's: the cache keeps each array alive, so the next task gets its own examples. (Found
    by the smoke runs: split MNIST resumed on other weights.)"""
    import numpy as np

    from tinymtl.datasets import TaskData, carve_validation

    carved = {}
    for value in range(20):
        x = np.full((50, 4), value, dtype=np.float32)
        data = TaskData(name=f"t{value}", classes=["a", "b"], x_train=x,
                        y_train=np.zeros(50, dtype=np.int64), x_test=x[:5], y_test=np.zeros(5))
        del x
        split = carve_validation(data, 5, seed=0, carved=carved)
        del data
        assert (split.x_train == value).all() and (split.x_valid == value).all()
        assert len(split.y_valid) == 5 and len(split.y_train) == 45


def test_no_validation_string_is_a_training_string(data_dir):
    from tinymtl.datasets import load_tasks

    specs = {t: {"generator": t, "train_size": 3000, "test_size": 300}
             for t in ("kindergarten", "math")}
    for data in load_tasks(specs, valid_fraction=0.1).values():
        assert 290 <= len(data.y_valid) <= 330 and len(data.y_train) + len(data.y_valid) == 3000
        assert not set(data.text_valid) & set(data.text_train)
        assert data.manifest["valid_size"] == len(data.y_valid)
