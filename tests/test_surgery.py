"""Gradient surgery: PCGrad, CAGrad and MGDA against their definitions; in the trainer."""

import json

import numpy as np
import pytest

from tinymtl.backend.random import Generator
from tinymtl.mtl import surgery as S


def test_pcgrad_removes_the_conflict_of_two_tasks():
    g1, g2 = np.array([1.0, 0.0, 0.2]), np.array([-1.0, 1.0, 0.5])
    assert g1 @ g2 < 0
    projected_1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    assert projected_1 @ g2 == pytest.approx(0.0, abs=1e-12)
    projected_2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    combined = S.pcgrad([g1, g2], Generator(0))
    np.testing.assert_allclose(combined, projected_1 + projected_2)
    # order independence for two tasks: any seed, same answer
    for seed in range(5):
        np.testing.assert_array_equal(S.pcgrad([g1, g2], Generator(seed)), combined)


def test_pcgrad_without_conflict_is_exactly_the_sum():
    grads = [np.array([1.0, 2.0, 0.5], dtype=np.float32),
             np.array([0.5, 1.0, 0.0], dtype=np.float32),
             np.array([0.1, 0.0, 3.0], dtype=np.float32)]
    np.testing.assert_array_equal(S.pcgrad(grads, Generator(3)), np.sum(grads, axis=0))


def test_pcgrad_is_seeded_and_projects_against_the_original_gradients():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(6) for _ in range(4)]
    a = S.pcgrad(grads, Generator(7))
    np.testing.assert_array_equal(a, S.pcgrad(grads, Generator(7)))
    originals = [g.copy() for g in grads]
    S.pcgrad(grads, Generator(1))
    for g, original in zip(grads, originals):
        np.testing.assert_array_equal(g, original)  # inputs untouched


def test_mgda_two_task_closed_form_and_min_norm_property():
    g1, g2 = np.array([2.0, 0.0]), np.array([-1.0, 1.0])
    alpha = ((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2))
    np.testing.assert_allclose(S.min_norm_weights([g1, g2]), [alpha, 1 - alpha])
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(5) for _ in range(4)]
    weights = S.min_norm_weights(grads)
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    point = weights @ np.stack(grads)
    for g in grads:  # optimality of the min-norm point: g_i · d ≥ ‖d‖² for every i
        assert g @ point >= point @ point - 1e-6
    np.testing.assert_allclose(S.mgda(grads), 4 * point, rtol=1e-6)


def test_cagrad_formula():
    g1, g2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    # c = 0: the average gradient, times T
    np.testing.assert_allclose(S.cagrad([g1, g2], c=0.0), g1 + g2, atol=1e-9)
    # orthogonal equal norms: w = (1/2, 1/2) by symmetry, g_w = g_0, d = (1 + c) g_0
    c = 0.5
    np.testing.assert_allclose(S.cagrad([g1, g2], c=c), 2 * (1 + c) * (g1 + g2) / 2 / (1 + c * c),
                               rtol=1e-6)
    # conflicting: the update improves the worse task more than the average gradient does
    g1, g2 = np.array([1.0, 0.2]), np.array([-0.8, 0.3])
    d = S.cagrad([g1, g2], c=0.5)
    average = (g1 + g2) / 2
    assert min(g1 @ d, g2 @ d) / np.linalg.norm(d) > min(g1 @ average, g2 @ average) / \
        np.linalg.norm(average)


def test_surgery_statistics_and_state():
    import tinymtl as tm

    w = tm.nn.Parameter(np.array([1.0, 1.0], dtype=np.float32))
    head = tm.nn.Parameter(np.array([2.0], dtype=np.float32))
    surgery = S.PCGrad().bind(["a", "b"], Generator(0))
    for _ in range(2):
        w.grad = head.grad = None
        terms = {"a": (w * tm.tensor(np.array([1.0, 0.0], dtype=np.float32))).sum() * head.sum(),
                 "b": (w * tm.tensor(np.array([-1.0, 1.0], dtype=np.float32))).sum()}
        surgery.surgery_backward(terms, [w], {"a": [head]})
    stats = surgery.statistics()["a|b"]
    assert stats["conflict_frequency"] == 1.0 and stats["steps"] == 2
    assert stats["mean_cosine"] == pytest.approx(-1 / np.sqrt(2), rel=1e-5)
    g1, g2 = np.array([2.0, 0.0]), np.array([-1.0, 1.0])  # ∂a/∂w = [head, 0], ∂b/∂w
    np.testing.assert_allclose(w.grad, S.pcgrad([g1, g2], Generator(0)), rtol=1e-6)
    assert head.grad[0] == pytest.approx(1.0)  # the head keeps its own task's gradient
    copy = S.PCGrad().bind(["a", "b"], Generator(5))
    copy.load_state_dict(json.loads(json.dumps(surgery.state_dict())))
    assert copy.statistics() == surgery.statistics()


@pytest.mark.parametrize("method", ["pcgrad", "cagrad", "mgda"])
def test_surgery_in_training_logs_conflicts_and_resumes_exactly(method, tmp_path, data_dir):
    from test_shapes3 import shapes_config

    from mtl_helpers import train_straight_and_resumed

    from tinymtl.datasets import load_tasks

    config = shapes_config(training={"gradients": method, "steps": 10, "log_every": 5})
    tasks = load_tasks(config["tasks"])
    straight, resumed = train_straight_and_resumed(config, tasks, 4, tmp_path / "c.h5")
    stats = straight.surgery.statistics()
    assert set(stats) == {"A|B", "A|C", "B|C"} and stats["A|B"]["steps"] == 10
    assert resumed.surgery.statistics() == stats


def test_surgery_needs_every_task_in_every_step():
    from test_shapes3 import shapes_config

    from tinymtl.train.config import ConfigError

    with pytest.raises(ConfigError, match="training.gradients = 'pcgrad'"):
        shapes_config(training={"gradients": "pcgrad", "schedule": "alternating"})


def test_run_with_pcgrad_writes_the_conflict_heatmap(tmp_path, data_dir):
    from test_shapes3 import shapes_config

    from tinymtl.runs import run

    summary = run(shapes_config(training={"gradients": "pcgrad", "weighting": "uncertainty"}),
                  tmp_path / "run", progress=False)
    assert summary["gradients"]["method"] == "pcgrad"
    assert 0 <= summary["gradients"]["pairs"]["A|B"]["conflict_frequency"] <= 1
    assert (tmp_path / "run" / "gradient_conflicts.png").stat().st_size > 0
    assert summary["weighting"] == "uncertainty"
    assert summary["tasks"]["A"]["final_loss_weight"] != 1.0


@pytest.mark.parametrize("method", ["pcgrad", "cagrad", "mgda", "mgda_ub"])
def test_surgery_with_gradient_accumulation_is_refused(method):
    """Surgery per micro-batch, summed, is not surgery of the full batch's gradient."""
    from test_shapes3 import shapes_config

    from tinymtl.train.config import ConfigError

    with pytest.raises(ConfigError, match=f"training.gradients = '{method}': expected "
                                          f"training.accumulate = 1"):
        shapes_config(training={"gradients": method, "accumulate": 2})
