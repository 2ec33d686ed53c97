"""Continual runs: the accuracy matrix, every method, scenarios, and exact resume."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.train import config as config_module

from mtl_helpers import tiny_config, write_config


def sequence_config(**continual):
    return config_module.validate(tiny_config(
        training={"steps": 24, "eval_every": 12, "log_every": 6, "checkpoint_every": 0},
        continual=dict({"stages": ["kindergarten", "math"], "fisher_samples": 20,
                        "replay_size": 50}, **continual)))


@pytest.mark.parametrize("method", ["finetune", "ewc", "online_ewc", "si", "replay", "lwf",
                                    "offline"])
def test_every_method_writes_the_accuracy_matrix(method, tmp_path, data_dir):
    from tinymtl.runs import run

    summary = run(sequence_config(method=method), tmp_path / "run", progress=False)
    matrix = json.loads((tmp_path / "run" / "accuracy_matrix.json").read_text())
    assert matrix["tasks"] == ["kindergarten", "math"] and len(matrix["matrix"]) == 2
    assert all(0 <= v <= 1 for row in matrix["matrix"] for v in row)
    R = np.array(matrix["matrix"])
    assert matrix["average_accuracy"] == pytest.approx(R[-1].mean())
    assert matrix["backward_transfer"] == pytest.approx(R[1, 0] - R[0, 0])
    assert matrix["forward_transfer"] == pytest.approx(R[0, 1] - matrix["initial"][1])
    assert (tmp_path / "run" / "accuracy_matrix.png").exists()
    V = np.array(matrix["valid"]["matrix"])  # the same after each stage, on validation
    assert V.shape == R.shape and not np.array_equal(V, R)
    best = V[:, 0].argmax()  # the peak is chosen on validation, reported on test
    assert summary["tasks"]["kindergarten"]["peak_stage"] == best
    assert summary["tasks"]["kindergarten"]["peak_accuracy"] == pytest.approx(R[best, 0])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["stage"] for r in rows if r["type"] == "matrix"] == [0, 1]


@pytest.mark.parametrize("method,stop_after", [("ewc", 33), ("replay", 28), ("si", 14),
                                               ("lwf", 40), ("online_ewc", 24)])
def test_a_sequence_stopped_and_resumed_ends_bitwise_identical(method, stop_after, tmp_path,
                                                               data_dir, monkeypatch):
    """Stop mid-stage, a few steps past a checkpoint (or between stages: step 24 ends stage 0),
    and resume from the checkpoint: the final weights, the matrix, the method's state and the
    metrics rows match."""
    check_stop_and_resume(sequence_config(method=method), method, stop_after, tmp_path,
                          monkeypatch)


@pytest.mark.parametrize("method,stop_after", [("finetune", 24), ("ewc", 30)])
def test_a_carried_optimizer_state_resumes_bitwise_identical(method, stop_after, tmp_path,
                                                             data_dir, monkeypatch):
    """reset_optimizer: false, stopped between stages (the next stage takes Adam's state from
    the checkpoint) or mid-stage (its trainer restores its own)."""
    check_stop_and_resume(sequence_config(method=method, reset_optimizer=False), method,
                          stop_after, tmp_path, monkeypatch)


def test_reset_optimizer_false_carries_adams_moments_not_its_learning_rate(tmp_path, data_dir):
    """Stage 1 continues Adam's moments and step counts from stage 0 (24 steps each), while its
    learning rate starts its own schedule again; with the default Adam starts afresh, and the
    two runs part."""
    from tinymtl.runs import run
    from tinymtl.train import checkpoint

    finals, lrs = {}, {}
    for reset in (True, False):
        config = sequence_config(reset_optimizer=reset)
        config["training"].update(lr_schedule="cosine", log_every=1)
        run(config, tmp_path / str(reset), progress=False)
        saved = checkpoint.load(tmp_path / str(reset) / "checkpoint.h5")
        finals[reset] = saved["model_state"]
        steps = {entry["step"] for entry in saved["optimizer_state"]["state"].values()}
        # the shared layers learn in both stages, each task's head in its own
        assert steps == ({24} if reset else {24, 48})
        rows = [json.loads(line) for line in (tmp_path / str(reset) / "metrics.jsonl").open()]
        lrs[reset] = [[r["lr"] for r in rows if r.get("run") == f"stage{k}" and
                       r["type"] == "train"] for k in (0, 1)]
    assert lrs[True] == lrs[False] and lrs[False][0] == lrs[False][1]
    assert any(finals[True][n].tobytes() != finals[False][n].tobytes() for n in finals[True])


def check_stop_and_resume(config, method, stop_after, tmp_path, monkeypatch):
    """Run ``config`` straight, then again stopped before training step ``stop_after`` and
    resumed: the same matrix, metrics rows, weights and method state, bit for bit."""
    from tinymtl.runs import continual
    from tinymtl.runs import run

    config["training"].update(checkpoint_every=6, log_every=2)  # rows past each checkpoint
    straight = run(config, tmp_path / "straight", progress=False)

    class Stop(Exception):
        pass

    calls = {"steps": 0}
    original = continual.Trainer.train_step

    def counting(self):
        if calls["steps"] == stop_after:
            raise Stop
        calls["steps"] += 1
        return original(self)

    monkeypatch.setattr(continual.Trainer, "train_step", counting)
    with pytest.raises(Stop):
        run(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(continual.Trainer, "train_step", original)
    resumed = run(config, tmp_path / "resumed", resume=True, progress=False)
    assert resumed["continual"]["matrix"] == straight["continual"]["matrix"]
    # the rows written after the checkpoint were dropped and written again, once
    rows = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
            for run in ("straight", "resumed")]
    assert rows[0] == rows[1]
    from tinymtl.train import checkpoint

    a = checkpoint.load(tmp_path / "straight" / "checkpoint.h5")
    b = checkpoint.load(tmp_path / "resumed" / "checkpoint.h5")
    for name, value in a["model_state"].items():
        assert value.tobytes() == b["model_state"][name].tobytes(), name
    assert a["plugin_states"].keys() == b["plugin_states"].keys() == {method, "static"}
    # Fisher, anchors, importances, buffer, teacher: bit for bit
    assert_same_state(a["plugin_states"][method], b["plugin_states"][method])


def assert_same_state(a, b, where="state"):
    """Two state_dicts (nested dicts, lists, arrays) equal, arrays bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (u, v) in enumerate(zip(a, b)):
            assert_same_state(u, v, f"{where}[{k}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    else:
        assert a == b, where


def test_class_incremental_split_mnist_shares_one_ten_way_head(tmp_path, data_dir):
    from test_mnist import fetch_fake_mnist

    from tinymtl.runs.continual import load_tasks
    from tinymtl.runs.setup import build

    fetch_fake_mnist(tmp_path, train=200, test=100, cycle_labels=True)
    raw = {"tasks": {f"t{k}": {"generator": "mnist", "digits": [2 * k, 2 * k + 1]}
                     for k in range(5)},
           "model": {"encoder": "mlp", "hidden": [16, 16]},
           "training": {"steps": 3, "eval_every": 3, "batch_size": 8},
           "continual": {"stages": [f"t{k}" for k in range(5)]}, "baselines": "none"}
    for scenario, head_width, labels in (("class", 10, {6, 7}), ("domain", 2, {0, 1}),
                                         ("task", 2, {0, 1})):
        raw["continual"]["scenario"] = scenario
        config = config_module.validate(raw)
        tasks = load_tasks(config)
        model = build(config, tasks)
        assert set(tasks["t3"].y_train.tolist()) == labels
        assert len(model.heads) == (5 if scenario == "task" else 1)
        assert next(iter(model.heads.values())).weight.shape[0] == head_width
    config = config_module.validate(dict(raw, continual=dict(raw["continual"],
                                                             scenario="class")))
    path = write_config(tmp_path / "split.yaml", config)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet", "--set", "continual.method=replay"])
    assert result.exit_code == 0, result.output
    assert "replay, class-incremental" in result.output and "ACC" in result.output
    # the checkpoint reloads with its one 10-way head and global labels: eval agrees with R
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "run" / "checkpoint.h5"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads((tmp_path / "run" / "accuracy_matrix.json").read_text())["matrix"][-1]
    assert [r["test_accuracy"] for r in json.loads(result.output).values()] == last


@pytest.mark.parametrize("continual,message", [
    ({"stages": ["kindergarten", "nope"]}, r"continual.stages\[1\] = 'nope': unknown task"),
    ({"stages": ["math", "math"]}, "expected each task once"),
    ({"stages": ["math"], "scenario": "class"}, "expected mnist tasks with digits"),
    ({"stages": ["math"], "method": "magic"}, "continual.method = 'magic'"),
])
def test_bad_continual_sections_are_one_line_errors(continual, message):
    with pytest.raises(config_module.ConfigError, match=message):
        config_module.validate(tiny_config(continual=continual))


def test_set_overrides_config_values(tmp_path):
    raw = tiny_config()
    updated = config_module.apply_overrides(raw, ["training.steps=7", "tasks.math.lr=0.5",
                                                  "continual.stages=[math]"])
    assert updated["training"]["steps"] == 7 and updated["tasks"]["math"]["lr"] == 0.5
    assert updated["continual"]["stages"] == ["math"] and raw["training"]["steps"] == 400
    with pytest.raises(config_module.ConfigError, match="expected KEY=VALUE"):
        config_module.apply_overrides(raw, ["training.steps"])


def test_seeds_summarise_a_continual_sequence(tmp_path, data_dir):
    config = tiny_config(training={"steps": 6, "eval_every": 6, "log_every": 3},
                         continual={"stages": ["kindergarten", "math"]})
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path / "c.yaml", config)),
                                       "--seeds", "2", "--out", str(tmp_path / "out"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "seeds.json").read_text())
    assert len(summary["tasks"]["math"]["multitask"]) == 2
    assert "| math | accuracy % |" in result.output and "no baseline" in result.output
    assert "Sequence: average_accuracy" in result.output
    assert len(summary["continual"]["average_accuracy"]) == 2  # (mean, std)
