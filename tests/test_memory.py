"""The memory estimate: exact where it can be (parameters counted without allocating them,
data sizes known before loading), refused in one line before anything is allocated or written."""

import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import tinymtl as tm
from tinymtl import nn
from tinymtl.autograd import graph_bytes
from tinymtl.cli import main
from tinymtl.errors import ConfigError
from tinymtl.nn.init import empty_weights
from tinymtl.runs import memory, setup
from tinymtl.train import config as config_module

from mtl_helpers import small_config, tiny_config, write_config
from test_cli import one_line_error


def test_empty_weights_have_their_shapes_and_hold_no_memory():
    tracemalloc.start()
    try:
        with empty_weights():
            mlp = nn.MLPEncoder(100_000, (50_000, 50_000))  # 7.5e9 weights: 30 GB if allocated
            cnn = nn.ConvEncoder(3, (32, 32), channels=(2048, 2048), out_features=1024,
                                 batch_norm=True)
            text = nn.SelfAttentionEncoder(40, 64, dim=4096, out_features=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2 ** 20
    assert sum(p.data.size for p in mlp.parameters()) == 100_000 * 50_000 + 50_000 * 50_000 \
        + 2 * 50_000
    for model in (mlp, cnn, text):
        assert all(p.dtype == np.float32 for p in model.parameters())


def test_empty_weights_count_what_a_real_build_allocates():
    """Same architecture, in and out of the context: the same names and shapes."""
    for make in (lambda: nn.ConvEncoder(1, (28, 28), channels=(8, 16), out_features=32,
                                        batch_norm=True),
                 lambda: nn.CharConvEncoder(40, 20, embedding_dim=8, channels=(16,),
                                            kernel_size=3, out_features=32, pooling="max"),
                 lambda: nn.SelfAttentionEncoder(40, 20, dim=16, out_features=8)):
        real = make()
        with empty_weights():
            empty = make()
        assert {k: v.shape for k, v in real.state_dict().items()} == \
            {k: v.shape for k, v in empty.state_dict().items()}


@pytest.mark.parametrize("updates", [
    {},
    {"model": {"architecture": "mmoe", "experts": 2}},
    {"model": {"architecture": "adapters"}},
    {"model": {"encoder": "mlp", "hidden": [64, 32], "head_hidden": 16},
     "tasks": {"shape": {"generator": "shapes3", "target": "shape"},
               "angle": {"generator": "shapes3", "target": "orientation"}}},
])
def test_the_planned_weights_and_data_are_those_of_the_real_run(updates, data_dir):
    config = tiny_config(**{k: v for k, v in updates.items() if k != "tasks"})
    config["tasks"] = updates.get("tasks", config["tasks"])
    for spec in config["tasks"].values():
        spec.update(train_size=100, test_size=20)
    config = config_module.validate(config)
    specs = setup.task_specs(config)
    planned = memory.plan(config, specs)
    tasks = setup.load_tasks(config)
    model = setup.build(config, tasks)
    assert planned["weights"] == sum(p.data.nbytes for p in model.parameters())
    arrays = {id(a): a.nbytes for d in tasks.values()
              for a in (d.x_train, d.y_train, d.x_valid, d.y_valid, d.x_test, d.y_test)}
    # exact for generated text; an image set also keeps the attributes its labels are made of
    assert sum(arrays.values()) <= planned["data"] <= 1.01 * sum(arrays.values())


def test_graph_bytes_grow_with_the_batch_and_cover_what_backward_keeps():
    layer = nn.Linear(1000, 500)
    one = graph_bytes(layer(tm.randn(1, 1000)).relu())
    ten = graph_bytes(layer(tm.randn(10, 1000)).relu())
    assert ten == 10 * one and one >= 2 * 500 * 4  # the linear's output and relu's
    with tm.no_grad():
        assert graph_bytes(layer(tm.randn(10, 1000))) == 0  # nothing recorded: nothing kept


def test_a_model_too_big_for_the_machine_is_refused_before_anything_is_made(tmp_path,
                                                                            data_dir):
    config = tiny_config(model={"embedding_dim": 1_000_000, "channels": [1_000_000]})  # 12 TB
    path = write_config(tmp_path / "huge.yaml", config)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run")])
    line = one_line_error(result, 2)
    assert line.startswith(f"error: {path}: memory: this run needs about ")
    assert "TiB" in line and "is available" in line and "training.batch_size" in line
    assert not (tmp_path / "run").exists() and not data_dir.exists()  # no data generated


def test_a_batch_too_big_is_refused_before_the_first_step(tmp_path, data_dir):
    config = tiny_config(training={"batch_size": 1 << 20},
                         model={"channels": [4096], "embedding_dim": 512})
    path = write_config(tmp_path / "batch.yaml", config)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run")])
    line = one_line_error(result, 2)
    assert "activations" in line and "memory: this run needs about" in line
    assert not (tmp_path / "run").exists()


def test_the_refusal_compares_with_what_is_available(monkeypatch, data_dir):
    config = small_config()
    specs = setup.task_specs(config)
    needed = sum(memory.plan(config, specs).values())
    monkeypatch.setattr(memory, "available_bytes", lambda device: needed)
    memory.check_plan(config, specs)  # exactly enough: accepted
    monkeypatch.setattr(memory, "available_bytes", lambda device: needed - 1)
    with pytest.raises(ConfigError, match="memory: this run needs about"):
        memory.check_plan(config, specs)


@pytest.mark.parametrize("key, value", [
    ("model.channels", [2 ** 21]), ("training.batch_size", 2 ** 21),
    ("tasks.math.train_size", 10 ** 9), ("training.steps", 10 ** 10),
])
def test_size_keys_are_bounded(key, value):
    config = tiny_config()
    section, *rest = key.split(".")
    target = config[section]
    for part in rest[:-1]:
        target = target[part]
    target[rest[-1]] = value
    with pytest.raises(ConfigError, match=r"expected an integer (>= \d+ and )?<= \d+"):
        config_module.validate(config)


def test_more_mnist_examples_than_there_are_is_refused_before_loading():
    from tinymtl.datasets import mnist
    from tinymtl.errors import DataError

    with pytest.raises(DataError, match=r"tasks.a.train_size = 60000: MNIST \(its official "
                                        r"validation set kept apart\) has only 50000"):
        mnist.SOURCE.plan({"train_size": 60000}, where="tasks.a")
    with pytest.raises(DataError, match=r"MNIST of digits \[0, 1\] .* has only 10610"):
        mnist.SOURCE.plan({"digits": [0, 1], "train_size": 13000}, where="tasks.a")
    plan = mnist.SOURCE.plan({"digits": [0, 1]})
    assert (plan.train_size, plan.test_size, plan.outputs) == (10610, 2115, 2)
    assert plan.valid_size == 991 + 1064  # the official validation images, loaded beside
    assert plan.data_bytes == (10610 + 2055 + 2115) * (4 * 28 * 28 + 8)
    # the per-digit counts of training and the official validation set make MNIST's 60k
    assert [a + b for a, b in zip(mnist.DIGIT_COUNTS[0], mnist.VALID_DIGIT_COUNTS)] == \
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert sum(mnist.VALID_DIGIT_COUNTS) == mnist.OFFICIAL_VALID
