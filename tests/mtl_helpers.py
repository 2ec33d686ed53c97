"""A tiny version of the flagship config, for fast end-to-end tests."""

import copy

import yaml

TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"seed": 0, "max_length": 20},
    "tasks": {
        "kindergarten": {"generator": "kindergarten", "train_size": 1500, "test_size": 300},
        "math": {"generator": "math", "train_size": 1500, "test_size": 300},
    },
    "model": {"encoder": "conv", "embedding_dim": 16, "channels": [32], "kernel_size": 3,
              "features": 64, "pooling": "flatten+max"},
    "training": {"schedule": "alternating", "steps": 400, "batch_size": 32, "lr": 0.01,
                 "eval_every": 100, "log_every": 20, "checkpoint_every": 0},
    "baselines": False,
    "linear_baseline": False,
}


def tiny_config(**sections):
    """TINY with some sections updated, e.g. tiny_config(training={"schedule": "mixed"})."""
    config = copy.deepcopy(TINY)
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def small_config(train_size=100, test_size=20, **sections):
    """tiny_config(**sections), validated, on ``train_size``/``test_size`` examples per task."""
    from tinymtl.train import config as config_module

    config = config_module.validate(tiny_config(**sections))
    config["tasks"] = {t: dict(spec, train_size=train_size, test_size=test_size)
                       for t, spec in config["tasks"].items()}
    return config


def write_config(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


def train_straight_and_resumed(config, tasks, stop_after, path):
    """Train ``config`` to the end in one go, and again stopped after ``stop_after`` steps,
    checkpointed to ``path`` and resumed in a fresh trainer; asserts the final weights are
    bitwise equal and returns (straight, resumed) trainers."""
    from tinymtl.train import checkpoint
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build, save_checkpoint

    straight = make_trainer(config, tasks, build(config, tasks), progress=False)
    straight.fit()
    first = make_trainer(config, tasks, build(config, tasks), progress=False)
    for _ in range(stop_after):
        first.train_step()
    save_checkpoint(path, first, config, tasks, 0.0)
    resumed = make_trainer(config, tasks, build(config, tasks), progress=False)
    resumed.load_state(checkpoint.load(path))
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert a.tobytes() == b.tobytes(), name
    return straight, resumed
