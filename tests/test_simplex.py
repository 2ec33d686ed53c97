"""MGDA's and CAGrad's simplex problems are solved exactly: every answer carries its optimality
certificate, on thousands of random, badly scaled, near-parallel, anti-parallel and degenerate
gradient sets (hypothesis), and on the sets where the earlier iterative solvers stopped short."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymtl.mtl import simplex
from tinymtl.mtl import surgery as S


def min_norm_certified(grads):
    """The min-norm weights and whether they pass the optimality test g_i · u ≥ ‖u‖² (up to
    rounding relative to the largest gradient)."""
    alpha = S.min_norm_weights(grads)
    G = np.stack(grads).astype(np.float64)
    u = alpha @ G
    scale = max(float((G * G).sum(1).max()), 1e-300)
    assert alpha.min() >= 0 and alpha.sum() == pytest.approx(1.0, abs=1e-12)
    return alpha, float((G @ u).min() - u @ u) >= -1e-9 * scale


def conflict_averse_certified(grads, c):
    R = simplex.reduced(grads)
    g0 = R.mean(axis=1)
    b, sqrt_phi = R.T @ g0, c * float(np.linalg.norm(g0))
    w = simplex.conflict_averse_weights(R, g0, sqrt_phi)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
    scale = max(float((R * R).sum(0).max()), 1e-300)
    gap = simplex.conflict_averse_gap(R, b, sqrt_phi, w)
    print(f"weights {w}, gap {gap}, scale {scale}")  # shown when a certificate fails
    return w, gap <= 1e-8 * scale


@st.composite
def gradient_sets(draw, max_tasks=6):
    """T gradients in d dimensions: random, with scales spread over 10^±4, and sometimes
    near-parallel, anti-parallel, repeated or zero."""
    T = draw(st.integers(2, max_tasks))
    d = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    grads = [rng.standard_normal(d) * 10.0 ** draw(st.integers(-4, 4)) for _ in range(T)]
    shape = draw(st.sampled_from(["random", "near_parallel", "anti_parallel", "repeated",
                                  "zero"]))
    if shape == "near_parallel":
        grads = [grads[0] * abs(rng.standard_normal()) + 1e-9 * rng.standard_normal(d)
                 for _ in range(T)]
    elif shape == "anti_parallel":
        grads[1] = -grads[0] * 10.0 ** draw(st.integers(-3, 3))
    elif shape == "repeated":
        grads[-1] = grads[0].copy()
    elif shape == "zero":
        grads[-1] = np.zeros(d)
    return grads


@settings(max_examples=1000, deadline=None)
@given(gradient_sets())
def test_min_norm_point_is_certified_optimal(grads):
    assert min_norm_certified(grads)[1]


@settings(max_examples=300, deadline=None)
@given(gradient_sets(max_tasks=5), st.sampled_from([0.1, 0.5, 1.0, 4.0]))
def test_conflict_averse_weights_are_certified_optimal(grads, c):
    assert conflict_averse_certified(grads, c)[1]


def test_thousands_of_random_sets():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        T, d = rng.integers(3, 7), rng.integers(2, 8)
        grads = [rng.standard_normal(d) * 10.0 ** rng.integers(-3, 4) for _ in range(T)]
        assert min_norm_certified(grads)[1]
    for _ in range(300):
        T, d = rng.integers(3, 6), rng.integers(2, 8)
        grads = [rng.standard_normal(d) * 10.0 ** rng.integers(-3, 4) for _ in range(T)]
        assert conflict_averse_certified(grads, 0.5)[1]


def test_gradient_norms_1e8_apart_are_certified():
    """A draw of the property test above (c = 4): the optimum sits 1e-8 from a vertex where F
    curves like 10¹⁵; Newton through a KKT row of ones lost the constraint to rounding and left
    a duality gap of 2.54 (0.73 allowed). Steps within the face's own coordinates close it."""
    grads = [np.array([-986.308124, -853.56253797, -8460.92489312]),
             np.array([2.36419106e-05, -1.39067611e-04, 1.47915148e-04])]
    assert conflict_averse_certified(grads, 4.0)[1]


def test_the_sets_where_the_iterative_solvers_stopped_short():
    """Issue #16's examples: a direction that increased a task's loss, and one 10³ too long."""
    rows = [[0.3587269044702429, 1.3868384844565875], [0.629116275589842, 2.441907454103103],
            [0.8826598441840806, 0.5530785793970338], [1.3335341823024354, 1.3206937521005264]]
    alpha, certified = min_norm_certified([np.array(r) for r in rows])
    assert certified
    rows = [[-2485.6709106940161, -153.02071758645252],
            [0.028467505921212888, 1.1093854939096615],
            [0.00045215750325164659, 0.00045488404856156185]]
    grads = [np.array(r) for r in rows]
    alpha, certified = min_norm_certified(grads)
    assert certified
    assert np.linalg.norm(alpha @ np.stack(grads)) == pytest.approx(4.2624e-4, rel=1e-4)
    rows = [[-0.5901286397620793, 0.05203666750830243], [0.9978346265961843, -0.09706049660384529],
            [-1.1783426146866454, -0.13368493808646645],
            [-0.11307291779831342, -1.5168337128371452], [0.5053240546993417, -2.254077840775134]]
    grads = [np.array(r) for r in rows]
    assert conflict_averse_certified(grads, 0.5)[1]
    R = simplex.reduced(grads)  # the certificate can fail: not at the uniform weights
    g0 = R.mean(axis=1)
    uniform = np.full(5, 0.2)
    assert simplex.conflict_averse_gap(R, R.T @ g0, 0.5 * np.linalg.norm(g0), uniform) > 1e-3
    d = S.cagrad(grads, 0.5)
    assert min(float(g @ d) for g in grads) > 0  # no task's loss increases to first order


def test_many_tasks_fall_back_to_an_iteration_stopped_on_its_certificate():
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(20) for _ in range(simplex.MAX_EXACT_TASKS + 2)]
    assert min_norm_certified(grads)[1]
