"""MultiMNIST: two real MNIST digits on one 36x36 canvas, one task per digit."""

import numpy as np
import pytest

from tinymtl.datasets import multi_mnist

from test_mnist import fetch_fake_mnist


def test_overlay_places_the_left_digit_up_left_and_the_right_digit_down_right():
    n = 40
    images = np.zeros((n, 1, 28, 28), np.float32)
    images[:, 0, 0, 0] = (np.arange(n) + 1) / n  # one pixel, whose value names the image
    labels = np.arange(n) % 10
    canvases, left, right = multi_mnist.overlay(images, labels, np.random.default_rng(0))
    assert canvases.shape == (n, 1, 36, 36) and left.tolist() == labels.tolist()
    for k in range(n):
        (ly, lx), (ry, rx) = np.argwhere(canvases[k, 0] > 0)  # row-major: the left one first
        assert 0 <= ly <= 2 and 0 <= lx <= 2 and 4 <= ry - ly <= 6 and 4 <= rx - lx <= 6
        assert canvases[k, 0, ly, lx] == images[k, 0, 0, 0]
        partner = int(round(canvases[k, 0, ry, rx] * n)) - 1
        assert partner != k and right[k] == labels[partner]


@pytest.fixture
def fake_mnist(tmp_path, data_dir):
    fetch_fake_mnist(tmp_path)


def test_image_set_is_deterministic_cached_and_shared(fake_mnist):
    from tinymtl.datasets import load_tasks

    specs = {"L": {"generator": "multi_mnist", "target": "left"},
             "R": {"generator": "multi_mnist", "target": "right"}}
    tasks = load_tasks(specs)
    again = load_tasks(specs)  # from the cache
    assert tasks["L"].x_train is tasks["R"].x_train  # one array for both tasks
    assert tasks["L"].x_train.shape == (64, 1, 36, 36)
    assert tasks["L"].x_train.tobytes() == again["L"].x_train.tobytes()
    assert tasks["R"].y_test.tolist() == again["R"].y_test.tolist()
    assert tasks["L"].manifest["sha256"] == again["L"].manifest["sha256"]
    other_seed = load_tasks(specs, seed=1)
    assert other_seed["L"].x_train.tobytes() != tasks["L"].x_train.tobytes()


@pytest.mark.parametrize("training", [
    {"weighting": "equal"}, {"weighting": "uncertainty"}, {"weighting": "gradnorm"},
    {"weighting": "dwa", "dwa_window": 2}, {"weighting": "rlw"}, {"gradients": "pcgrad"},
    {"gradients": "cagrad"}, {"gradients": "mgda"}, {"gradients": "mgda_ub"},
])
def test_multilenet_trains_under_every_method(training, fake_mnist):
    from tinymtl.train import config as config_module
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build, load_tasks

    training = dict(training, steps=4, batch_size=16, warmup_steps=1, log_every=2, eval_every=4)
    config = config_module.load("examples/multi_mnist.yaml", overrides=[
        f"training.{key}={value}" for key, value in training.items()])
    tasks = load_tasks(config)
    model = build(config, tasks)
    assert [type(m).__name__ for m in model.backbone.layers] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear",
        "ReLU"]
    before = {k: v.copy() for k, v in model.state_dict().items()}
    trainer = make_trainer(config, tasks, model, progress=False)
    history = trainer.fit()
    assert all(np.isfinite(r["tasks"][t]["valid_loss"]) for r in history for t in ("L", "R"))
    changed = [k for k, v in model.state_dict().items() if v.tobytes() != before[k].tobytes()]
    assert any(k.startswith("backbone.") for k in changed)
    assert any(k.startswith("heads.L") for k in changed) and any(
        k.startswith("heads.R") for k in changed)
