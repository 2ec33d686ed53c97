"""A run whose loss becomes NaN or infinite is caught: ``training.on_nonfinite: stop`` ends it with
one line naming the step and the task, the last checkpoint as it was, the event in
metrics.jsonl and summary.json; ``skip`` drops the step and counts it."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.errors import DivergedError

from mtl_helpers import small_config, tiny_config, write_config


def test_a_huge_learning_rate_stops_with_one_line_and_the_checkpoint_intact(tmp_path,
                                                                           data_dir):
    config = tiny_config(training={"steps": 200, "lr": 1e6, "checkpoint_every": 2,
                                   "log_every": 1, "eval_every": 100, "optimizer": "sgd",
                                   "momentum": 0.0})
    config["tasks"] = {t: dict(s, train_size=100, test_size=20)
                       for t, s in config["tasks"].items()}
    path = write_config(tmp_path / "diverge.yaml", config)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged at step ")
    assert "the last checkpoint is as it was" in lines[0] and "Traceback" not in result.output
    summary = json.loads((out / "summary.json").read_text())
    step = summary["diverged"]["step"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in rows if r["type"] == "nonfinite"][0]["step"] == step
    from tinymtl.train import checkpoint

    saved = checkpoint.load(out / "checkpoint.h5")  # the last good one, whole and finite
    assert saved["step"] < step
    assert all(np.isfinite(v).all() for v in saved["model_state"].values())


def test_skip_drops_the_poisoned_steps_and_stops_after_too_many(data_dir):
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build, load_tasks

    config = small_config(training={"steps": 12, "on_nonfinite": "skip", "max_skips": 3,
                                    "log_every": 1})
    tasks = load_tasks(config)
    trainer = make_trainer(config, tasks, build(config, tasks), progress=False)
    poisoned = {"math"}
    original = trainer._task_loss

    def loss(task, outputs, y):  # a poisoned batch: math's loss is NaN
        value = original(task, outputs, y)
        return value * float("nan") if task in poisoned else value

    trainer._task_loss = loss
    before = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    trainer.train_step()  # alternating: kindergarten first, trains
    weights = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    assert any((weights[k] != before[k]).any() for k in before)
    assert np.isnan(trainer.train_step())  # math: dropped, nothing moves
    assert all((trainer.model.state_dict()[k] == weights[k]).all() for k in weights)
    assert trainer.step == 2 and trainer.skipped == 1
    poisoned.add("kindergarten")
    trainer.train_step()
    trainer.train_step()
    with pytest.raises(DivergedError, match="4 steps in a row were skipped"):
        trainer.train_step()
    assert trainer.skipped == 4  # the fourth in a row is counted, then the run stops


def test_nan_and_inf_in_gradients_or_weights_are_caught(data_dir):
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build, load_tasks

    config = small_config(training={"steps": 4, "check_every": 1})
    tasks = load_tasks(config)
    trainer = make_trainer(config, tasks, build(config, tasks), progress=False)
    name, parameter = next(iter(trainer.model.named_parameters()))
    parameter.data[...] = np.inf  # inf weights: the loss itself goes non-finite
    with np.errstate(all="ignore"), pytest.raises(DivergedError, match="is (nan|inf)"):
        trainer.train_step()  # (NumPy's overflow warnings are silenced, as the CLI does)


def test_the_policy_is_a_plugin_the_python_api_can_pass(data_dir):
    """``NonFinitePolicy`` given to the Trainer overrides the config's ``training`` keys; the
    one the config sets is the same class, built from them."""
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train.nonfinite import NonFinitePolicy

    config = small_config(training={"steps": 6, "on_nonfinite": "stop", "check_every": 4})
    tasks = load_tasks(config)
    from_config = make_trainer(config, tasks, build(config, tasks), progress=False)
    assert isinstance(from_config.nonfinite, NonFinitePolicy)
    assert (from_config.nonfinite.policy, from_config.nonfinite.check_every) == ("stop", 4)
    given = NonFinitePolicy(policy="skip", max_skips=1)
    trainer = make_trainer(config, tasks, build(config, tasks), progress=False,
                           callbacks=[given])
    assert trainer.nonfinite is given
    original = trainer._task_loss
    trainer._task_loss = lambda task, outputs, y: original(task, outputs, y) * float("nan")
    assert np.isnan(trainer.train_step()) and trainer.skipped == 1  # skipped, not stopped
    with pytest.raises(DivergedError, match=r"2 steps in a row were skipped \(training.max_skips"
                                            r" = 1\)"):
        trainer.train_step()
