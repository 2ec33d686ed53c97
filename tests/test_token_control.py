"""Token accounting, the token-controlled baseline, and seed-noise labels for transfer."""

import json

import numpy as np
import pytest

from tinymtl.runs.seeds import LABELS, mean_std, transfer_label

from mtl_helpers import tiny_config, write_config


def test_token_counts_are_characters_for_text_and_examples_for_images():
    from tinymtl.datasets.base import TaskData

    data = TaskData(name="t", classes=["a"], x_train=np.zeros((1, 3), np.int64),
                    y_train=np.zeros(1, np.int64), x_test=np.zeros((1, 3), np.int64),
                    y_test=np.zeros(1, np.int64))
    assert data.token_counts(np.array([[4, 5, 0, 0], [7, 0, 0, 0]])).tolist() == [2, 1]
    assert data.tokens(np.array([[4, 5, 0, 0], [7, 0, 0, 0]])) == 3
    assert data.tokens(np.zeros((5, 1, 4, 4), np.float32)) == 5


def test_every_row_and_the_summary_count_tokens(tmp_path, data_dir):
    from tinymtl.train import config as config_module
    from tinymtl.runs import run

    config = config_module.validate(tiny_config(training={"steps": 20, "eval_every": 10,
                                                          "log_every": 5}))
    summary = run(config, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train_rows = [r for r in rows if r["type"] == "train"]
    tokens = [r["tasks"]["math"]["tokens"] for r in train_rows]
    assert tokens == sorted(tokens) and tokens[0] > 0  # cumulative
    assert summary["tasks"]["math"]["tokens"] == tokens[-1]
    evals = [r for r in rows if r["type"] == "eval"]
    assert evals[-1]["tasks"]["math"]["trained_tokens"] == tokens[-1]
    # characters, not examples: 10 batches of 32 math strings hold far more than 320 tokens
    assert summary["tasks"]["math"]["tokens"] > 3 * summary["tasks"]["math"]["examples"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_token_controlled_baseline_consumes_the_multitask_tokens(accumulate, data_dir):
    from tinymtl.datasets import load_tasks
    from tinymtl.runs import baselines
    from tinymtl.train import config as config_module

    config = config_module.validate(tiny_config(training={"accumulate": accumulate}))
    data = load_tasks(config["tasks"])["math"]
    target = 12_345  # characters: no batch boundary lands on it
    _, history, counters, _ = baselines.single_task(config, "math", data, steps=1,
                                                    progress=False, tokens=target)
    longest = int(data.token_counts(data.x_train).max())
    assert target - longest < counters["tokens"] <= target
    per_step = config["training"]["batch_size"] * accumulate
    assert counters["steps"] == -(-counters["examples"] // per_step)
    assert history[-1]["tasks"]["math"]["trained_tokens"] == counters["tokens"]


def test_token_controlled_images_match_exactly(data_dir):
    from test_shapes3 import shapes_config

    from tinymtl.datasets import load_tasks
    from tinymtl.runs import baselines

    config = shapes_config()
    data = load_tasks(config["tasks"])["A"]
    _, _, counters, _ = baselines.single_task(config, "A", data, steps=1, progress=False,
                                              tokens=101)  # not a multiple of the batch
    assert counters["tokens"] == counters["examples"] == 101


def test_transfer_labels_on_hand_made_scores():
    assert mean_std([0.8, 0.9, 1.0]) == pytest.approx((0.9, 0.1))
    assert transfer_label([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])[0] == "genuine transfer"
    assert transfer_label([0.80, 0.81, 0.82], [0.90, 0.91, 0.92])[0] == "negative transfer"
    label, d, se = transfer_label([0.90, 0.95, 1.00], [0.89, 0.94, 0.99])
    assert label == "exposure only"
    assert d == pytest.approx(0.01) and se == pytest.approx(np.sqrt(2 * 0.05 ** 2 / 3))
    # regression: a lower MAE is better, so the multi-task arm's lower MAE is a gain
    assert transfer_label([0.10, 0.11, 0.12], [0.20, 0.21, 0.22], higher_is_better=False)[:2] \
        == ("genuine transfer", pytest.approx(0.1))
    assert transfer_label([0.9], [0.8]) == ("undetermined", pytest.approx(0.1), None)
    assert set(LABELS) == {"genuine transfer", "exposure only", "negative transfer",
                           "undetermined"}


def test_run_with_seeds_reports_both_arms_and_a_label(tmp_path, data_dir):
    from click.testing import CliRunner

    from tinymtl.cli import main

    config = tiny_config(baselines="token_controlled",
                         training={"steps": 40, "eval_every": 20, "log_every": 10})
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path / "c.yaml", config)),
                                       "--seeds", "2", "--out", str(tmp_path / "out"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| math | accuracy % |" in result.output
    summary = json.loads((tmp_path / "out" / "seeds.json").read_text())
    assert summary["seeds"] == [3, 4]
    for seed in (3, 4):
        assert (tmp_path / "out" / f"seed_{seed}" / "summary.json").exists()
    for entry in summary["tasks"].values():
        assert entry["label"] in LABELS and entry["baseline_kind"] == "token_controlled"
        assert len(entry["multitask"]) == len(entry["baseline"]) == 2
        for tokens, baseline_tokens in zip(entry["tokens"], entry["baseline_tokens"]):
            assert tokens - 20 < baseline_tokens <= tokens  # within one string of the budget
    assert (tmp_path / "out" / "seeds.md").read_text().startswith("Seeds 3, 4")


def test_bad_baselines_value_is_a_clear_error():
    from tinymtl.train import config as config_module

    with pytest.raises(config_module.ConfigError, match="baselines = 'tokens': expected one of "
                                                          "none, single_task, token_controlled"):
        config_module.validate(tiny_config(baselines="tokens"))
    assert config_module.validate(tiny_config(baselines=True))["baselines"] == "single_task"


def test_the_planned_steps_are_the_steps_the_trainer_takes(data_dir):
    """Strings of 6 and 1 characters: after the batch the budget cuts, a later 1-character
    string would still fit, but the cut batch is the last one: no step trains on nothing."""
    from tinymtl.datasets.base import TaskData
    from tinymtl.runs import baselines
    from tinymtl.train import config as config_module

    rng = np.random.default_rng(0)
    x = np.zeros((40, 8), np.int64)
    for k in range(40):
        x[k, :6 if k % 2 else 1] = 3
    y = rng.integers(0, 2, 40)
    data = TaskData(name="t", classes=["a", "b"], x_train=x, y_train=y, x_test=x, y_test=y)
    config = config_module.validate(tiny_config(training={"batch_size": 2, "eval_every": 1000,
                                                          "log_every": 1}))
    for budget in range(20, 60):
        _, history, counters, _ = baselines.single_task(config, "t", data, steps=1,
                                                     progress=False, tokens=budget)
        assert budget - 6 < counters["tokens"] <= budget
        # every step but the last trained a full batch: none was empty
        assert counters["examples"] > (counters["steps"] - 1) * 2, budget
