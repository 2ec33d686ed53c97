"""Task sampling: observed frequencies match p_i (chi-square), and resuming stays exact."""

import numpy as np
import pytest

from tinymtl.mtl import TaskSampler
from tinymtl.train.config import validate
from tinymtl.runs.setup import load_tasks

from mtl_helpers import tiny_config, train_straight_and_resumed

SIZES = {"a": 100, "b": 300, "c": 600}
TASKS = ("a", "b", "c")
CHI2_CRITICAL_DF2_P001 = 13.816  # P(chi-square with 2 degrees of freedom > 13.816) = 0.001


@pytest.mark.parametrize("method, expected", [
    ("uniform", [1 / 3, 1 / 3, 1 / 3]),
    ("proportional", [0.1, 0.3, 0.6]),
    ("temperature", np.sqrt([100, 300, 600]) / np.sqrt([100, 300, 600]).sum()),
])
def test_observed_task_frequencies_match_the_expected_ones(method, expected):
    sampler = TaskSampler(method, SIZES, temperature=2.0, seed=7)
    np.testing.assert_allclose(sampler.probabilities(TASKS), expected)
    draws = [sampler.choose(TASKS, k) for k in range(10_000)]
    observed = np.array([draws.count(t) for t in TASKS])
    expected_counts = 10_000 * np.asarray(expected)
    chi2 = float(((observed - expected_counts) ** 2 / expected_counts).sum())
    assert chi2 < CHI2_CRITICAL_DF2_P001, (observed, expected_counts, chi2)


def test_round_robin_is_exact_and_temperature_interpolates():
    sampler = TaskSampler("round_robin", SIZES)
    assert [sampler.choose(TASKS, k) for k in range(5)] == ["a", "b", "c", "a", "b"]
    assert sampler.probabilities(TASKS) is None
    cold = TaskSampler("temperature", SIZES, temperature=1.0).probabilities(TASKS)
    hot = TaskSampler("temperature", SIZES, temperature=1e6).probabilities(TASKS)
    np.testing.assert_allclose(cold, [0.1, 0.3, 0.6])
    np.testing.assert_allclose(hot, [1 / 3] * 3, atol=1e-5)
    with pytest.raises(ValueError, match="unknown task sampling"):
        TaskSampler("lottery", SIZES)


def test_sampled_training_resumes_exactly(tmp_path, data_dir):
    config = validate(tiny_config(training={"steps": 60, "sampling": "uniform",
                                            "eval_every": 30}, model={"dropout": 0.2,
                                                                      "head_hidden": 8}))
    config["name"] = "sampled"
    tasks = load_tasks(config)

    straight, resumed = train_straight_and_resumed(config, tasks, 25, tmp_path / "c.h5")

    assert resumed.counters == straight.counters
    assert straight.counters["math"]["steps"] != 30  # uniform draws, not round-robin
