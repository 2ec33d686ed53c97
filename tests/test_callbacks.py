"""Built-in callbacks (``train.callbacks``): each on a scripted sequence, then in a real run."""

import json
import types

import pytest
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.train.callbacks import LossSpike

from mtl_helpers import tiny_config, write_config


def scripted(detector, losses):
    """Feed ``losses`` (one per step, task 'a') to ``detector``; the rows it logged."""
    rows = []
    trainer = types.SimpleNamespace(label="multitask", step=0, log=rows.append)
    for step, loss in enumerate(losses):
        trainer.step = step
        detector.on_after_optimizer_step(trainer, {"a": loss})
    return rows


def test_a_spike_is_a_loss_above_k_times_the_running_median(capsys):
    losses = [1.0, 0.9, 1.1, 1.0, 0.95, 9.0, 10.5, 1.0, 0.9, 50.0]
    rows = scripted(LossSpike(factor=10, window=5, min_steps=3), losses)
    # 9.0 is 9x the median (1.0) of its window: no spike; 10.5 is 10.5x: a spike at step 7;
    # 50.0 at step 10 is far above the median of [0.95, 9.0, 10.5, 1.0, 0.9] = 1.0
    assert [(r["step"], r["loss"], r["median"]) for r in rows] == [(7, 10.5, 1.0),
                                                                   (10, 50.0, 1.0)]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "warning: step 7 (multitask): task a's loss 10.5 is 10.5x its running " \
                     "median 1"


def test_no_check_before_min_steps_and_warnings_are_capped(capsys):
    assert scripted(LossSpike(factor=2, min_steps=3), [1.0, 100.0, 1.0]) == []
    rows = scripted(LossSpike(factor=2, min_steps=3, max_warnings=1),
                    [1.0, 1.0, 1.0, 5.0, 1.0, 5.0])
    assert [r["step"] for r in rows] == [4, 6]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_its_state_resumes_where_it_was():
    first = LossSpike(window=4)
    scripted(first, [1.0, 2.0, 3.0, 4.0, 5.0])
    again = LossSpike(window=4)
    again.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert [list(d) for d in again.recent.values()] == [[2.0, 3.0, 4.0, 5.0]]
    assert scripted(again, [100.0]) == scripted(first, [100.0])


@pytest.mark.parametrize("options", [{"factor": 0.5}, {"window": 1}, {"colour": "red"}])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        LossSpike(**options)


def test_listed_in_a_config_it_writes_its_rows(tmp_path, data_dir):
    config = tiny_config(training={"steps": 30, "lr": 0.5},
                         callbacks=[{"method": "loss_spike", "factor": 1.0, "min_steps": 3,
                                     "max_warnings": 0}])
    path = write_config(tmp_path / "spiky.yaml", config)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    spikes = [r for r in rows if r.get("type") == "loss_spike"]
    assert spikes and all(r["loss"] > r["median"] for r in spikes)  # k = 1: above the median


def evaluations(trainer, plugin, scores, task="a"):
    """Feed ``plugin`` one validation row per score (steps 10, 20, ...)."""
    for k, score in enumerate(scores):
        trainer.step = 10 * (k + 1)
        plugin.on_evaluate(trainer, {"tasks": {task: {"valid_accuracy": score}}})


def stub_trainer():
    from tinymtl.datasets import TaskData
    from tinymtl.train.trainer import Trainer

    trainer = types.SimpleNamespace(
        step=0, should_stop=False, stop_reason=None,
        tasks={"a": TaskData(name="a", classes=["x", "y"], x_train=None, y_train=None,
                             x_test=None, y_test=None)},
        model=types.SimpleNamespace(state_dict=lambda: {}, load_state_dict=lambda s: None),
        saved=[])
    trainer.stop = lambda reason: Trainer.stop(trainer, reason)
    trainer.save_checkpoint = lambda name: trainer.saved.append((trainer.step, name))
    return trainer


def test_early_stopping_fires_after_patience_evaluations_without_improvement():
    from tinymtl.train.callbacks import EarlyStopping

    trainer = stub_trainer()
    stopper = EarlyStopping(patience=2, min_delta=0.01, monitor="a")
    # best 0.5 at step 20; 0.505 is not a gain above min_delta; the second miss stops at 40
    evaluations(trainer, stopper, [0.4, 0.5, 0.505, 0.45])
    assert trainer.should_stop and stopper.stopped_step == 40
    assert (stopper.report()["best"], stopper.report()["best_step"]) == (0.5, 20)
    assert "has not improved for 2 evaluations" in trainer.stop_reason
    trainer = stub_trainer()
    never = EarlyStopping(patience=2, monitor="a")
    evaluations(trainer, never, [0.4, 0.5, 0.4, 0.6, 0.5, 0.7])  # a gain before each 2nd miss
    assert not trainer.should_stop and never.report()["best_step"] == 60


def test_the_best_checkpoint_is_written_at_each_improvement_only():
    from tinymtl.train.callbacks import BestCheckpoint

    trainer = stub_trainer()
    best = BestCheckpoint(monitor="a")
    evaluations(trainer, best, [0.4, 0.6, 0.5, 0.6, 0.7])
    assert trainer.saved == [(10, "best.h5"), (20, "best.h5"), (50, "best.h5")]
    assert best.report()["best_step"] == 50


@pytest.mark.parametrize("option, value", [("filename", "../x.h5"), ("filename", "best.pt"),
                                           ("filename", "checkpoint.h5")])
def test_the_best_checkpoint_stays_in_the_run_directory(option, value):
    from tinymtl.train.callbacks import BestCheckpoint

    with pytest.raises(ValueError, match="expected a file name ending in .h5"):
        BestCheckpoint(**{option: value})


def test_a_monitor_naming_no_task_is_a_config_error(tmp_path):
    config = tiny_config(callbacks=[{"method": "early_stopping", "monitor": "maths"}])
    result = CliRunner().invoke(main, ["check", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "callbacks[0].monitor = 'maths': expected one of mean, delta_m, kindergarten, " \
           "math" in result.output


def run_with(tmp_path, name, resume=False, **sections):
    path = write_config(tmp_path / f"{name}.yaml", tiny_config(**sections))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / name),
                                       "--quiet"] + (["--resume"] if resume else []))
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / name / "summary.json").read_text())


STOPPING = dict(training={"steps": 400, "eval_every": 20, "lr": 0.02},
                callbacks=[{"method": "early_stopping", "patience": 2, "monitor": "math"},
                           {"method": "best_checkpoint", "monitor": "math"}])


def test_a_run_stops_early_ends_on_its_best_weights_and_keeps_the_best_checkpoint(tmp_path,
                                                                                  data_dir):
    import numpy as np

    from tinymtl.train import checkpoint

    summary = run_with(tmp_path, "stop", **STOPPING)
    stopping, best = summary["callbacks"]["early_stopping"], summary["callbacks"][
        "best_checkpoint"]
    assert stopping["stopped_at"] is not None and stopping["stopped_at"] < 400
    assert summary["stopped"].startswith("early stopping: math has not improved")
    assert stopping["best_step"] == best["best_step"] == summary["tasks"]["math"]["best_step"]
    assert summary["tasks"]["math"]["peak_accuracy"] == stopping["best"]
    rows = [json.loads(line) for line in (tmp_path / "stop" / "metrics.jsonl").open()]
    assert rows[-1]["type"] == "test" and any(r["type"] == "stopped" for r in rows)
    assert max(r["step"] for r in rows if r["type"] == "eval") == stopping["stopped_at"]
    # the model it ends with, tested and saved, is the best one: best.h5's weights
    final = checkpoint.load(tmp_path / "stop" / "checkpoint.h5")["model_state"]
    kept = checkpoint.load(tmp_path / "stop" / "best.h5")
    assert kept["step"] == stopping["best_step"]
    assert all(np.array_equal(final[k], v) for k, v in kept["model_state"].items())


def test_an_early_stopped_run_resumed_midway_ends_identical(tmp_path, data_dir):
    """Killed at the checkpoint just before it would stop, resumed: it stops at the same step,
    on the same best weights, bit for bit (the stopper's state is in the checkpoint)."""
    import numpy as np

    from tinymtl.runs import run as run_config
    from tinymtl.train import checkpoint
    from tinymtl.train import config as config_module
    from tinymtl.train.trainer import Trainer

    whole = run_with(tmp_path, "whole", **STOPPING)
    stop_at = whole["callbacks"]["early_stopping"]["stopped_at"]
    assert stop_at >= 40
    half = dict(STOPPING, training=dict(STOPPING["training"], checkpoint_every=20))
    path = write_config(tmp_path / "legs.yaml", tiny_config(**half))
    config = config_module.load(path, config_module.read_yaml(path))
    original = Trainer.fit

    def fit_until(self, on_checkpoint=None):  # the process dies after that checkpoint
        def checkpoint_then_die(trainer):
            on_checkpoint(trainer)
            if trainer.step >= stop_at - 20:
                raise KeyboardInterrupt
        return original(self, checkpoint_then_die)

    Trainer.fit = fit_until
    try:
        with pytest.raises(KeyboardInterrupt):
            run_config(config, tmp_path / "legs", progress=False)
    finally:
        Trainer.fit = original
    assert checkpoint.load(tmp_path / "legs" / "checkpoint.h5")["step"] == stop_at - 20
    resumed = run_with(tmp_path, "legs", resume=True, **half)
    assert resumed["callbacks"]["early_stopping"] == whole["callbacks"]["early_stopping"]
    a = checkpoint.load(tmp_path / "whole" / "checkpoint.h5")["model_state"]
    b = checkpoint.load(tmp_path / "legs" / "checkpoint.h5")["model_state"]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_keep_checkpoints_keeps_the_last_k(tmp_path, data_dir):
    run_with(tmp_path, "keep", training={"steps": 100, "eval_every": 50,
                                         "checkpoint_every": 20, "keep_checkpoints": 2})
    kept = sorted(p.name for p in (tmp_path / "keep" / "checkpoints").iterdir())
    assert kept == ["multitask_step_000000080.h5", "multitask_step_000000100.h5"]


def test_a_time_budget_pauses_with_a_checkpoint_that_resumes_bit_for_bit(tmp_path, data_dir):
    import numpy as np

    from tinymtl.train import checkpoint

    training = {"steps": 60, "eval_every": 20}
    whole = run_with(tmp_path, "whole", training=training)
    path = write_config(tmp_path / "slot.yaml",
                        tiny_config(training=dict(training, max_time="0.000001s")))
    paused = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "slot"),
                                       "--quiet"])
    assert paused.exit_code == 0, paused.output
    summary = json.loads((tmp_path / "slot" / "summary.json").read_text())
    assert summary["complete"] is False and summary["step"] == 1
    assert summary["stopped"].startswith("time budget: ")
    assert f"Continue with: tinymtl run {tmp_path / 'slot' / 'config.yaml'}" in paused.output
    # the next slot: the same config without a budget (max_time is not part of the identity)
    resumed = run_with(tmp_path, "slot", resume=True, training=training)
    assert resumed["tasks"]["math"]["test_accuracy"] == whole["tasks"]["math"]["test_accuracy"]
    a = checkpoint.load(tmp_path / "whole" / "checkpoint.h5")["model_state"]
    b = checkpoint.load(tmp_path / "slot" / "checkpoint.h5")["model_state"]
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("value, seconds", [(90, 90.0), ("90s", 90.0), ("45m", 2700.0),
                                            ("1.5h", 5400.0), ("2d", 172800.0)])
def test_durations_read_as_people_write_them(value, seconds):
    from tinymtl.options import Duration

    assert Duration().check(value, "training.max_time") == seconds


@pytest.mark.parametrize("value", ["45", "m", "-5m", "nanm", 0, True, "45 minutes"])
def test_bad_durations_are_refused(value):
    from tinymtl.options import ConfigError, Duration

    with pytest.raises(ConfigError, match="expected a duration"):
        Duration().check(value, "training.max_time")


def test_the_memory_monitor_samples_and_warns_once_on_memory_that_only_grows(monkeypatch,
                                                                             capsys):
    from tinymtl.train import callbacks

    readings = iter([100, 90, 95, 100, 105, 110, 300, 400, 500, 600, 700])
    monkeypatch.setattr(callbacks, "process_memory", lambda: {
        "rss": next(readings) * 2 ** 20, "peak_rss": 800 * 2 ** 20})
    rows = []
    trainer = types.SimpleNamespace(label="multitask", step=0, log=rows.append)
    monitor = callbacks.MemoryMonitor(every=2, window=3, leak_mib=150)
    for step in range(22):
        trainer.step = step
        monitor.on_after_optimizer_step(trainer, {})
    assert [r["step"] for r in rows] == list(range(2, 23, 2))
    assert rows[0] == {"run": "multitask", "type": "memory", "step": 2, "rss_mib": 100.0,
                       "peak_rss_mib": 800.0}
    # at step 12, 95 → 100 → 105 → 110 only grew by 15 MiB; at step 14, 100 → 105 → 110 →
    # 300 grew by 200: the one warning (not repeated as it goes on growing)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grew at each of the last 3 samples, by 200 MiB" in err[0]
    assert err[0].startswith("warning: step 14 (multitask)")
    assert monitor.report() == {"rss_mib": 700.0, "peak_rss_mib": 800.0, "leak_warning": True}


def test_the_memory_monitor_in_a_run_writes_rows_and_a_summary(tmp_path, data_dir):
    summary = run_with(tmp_path, "mem", training={"steps": 20, "eval_every": 10},
                       callbacks=[{"method": "memory_monitor", "every": 5}])
    rows = [json.loads(line) for line in (tmp_path / "mem" / "metrics.jsonl").open()]
    memory = [r for r in rows if r["type"] == "memory"]
    assert [r["step"] for r in memory] == [5, 10, 15, 20]
    assert all(0 < r["rss_mib"] <= r["peak_rss_mib"] for r in memory)
    assert summary["callbacks"]["memory_monitor"]["rss_mib"] == memory[-1]["rss_mib"]


def test_quick_evaluations_use_one_fixed_subsample_and_the_last_is_full(tmp_path, data_dir):
    """training.eval_size: each evaluation during training scores the same seeded subsample
    of a task's validation split; the run's last evaluation scores all of it."""
    summary = run_with(tmp_path, "quick", training={"steps": 30, "eval_every": 10,
                                                    "eval_size": 50})
    rows = [json.loads(line) for line in (tmp_path / "quick" / "metrics.jsonl").open()
            if '"eval"' in line]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert [r.get("examples") for r in rows] == [{"kindergarten": 50, "math": 50}] * 2 + [None]
    # a score on 50 examples is a multiple of 1/50; the full split (150) need not be
    for row in rows[:2]:
        assert all((50 * v["valid_accuracy"]).is_integer() for v in row["tasks"].values())
    valid_size = summary["data"]["math"]["valid_size"]
    assert valid_size > 50
    assert summary["tasks"]["math"]["valid_accuracy"] == rows[-1]["tasks"]["math"][
        "valid_accuracy"]


def test_the_quick_subsample_is_the_same_at_every_evaluation_and_seeded():
    from tinymtl.train.trainer import Trainer

    trainer = types.SimpleNamespace(training={"eval_size": 5}, seed=3)
    first = Trainer._quick_subset(trainer, 0, 100)
    assert len(first) == 5 and list(first) == sorted(set(first))
    assert (Trainer._quick_subset(trainer, 0, 100) == first).all()
    assert not (Trainer._quick_subset(trainer, 1, 100) == first).all()  # each task its own
    assert Trainer._quick_subset(trainer, 0, 5) is None  # no smaller than the split: all
