"""The engine: accumulation, graph reuse and release, grad(), no_grad, detach, dtypes."""

import numpy as np
import pytest

import tinymtl as tm
from tinymtl.autograd import grad


def test_leaf_gradients_accumulate_across_backward_calls():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [2 + 3, 4 + 3])


def test_a_tensor_used_twice_gets_both_contributions():
    x = tm.tensor([3.0], requires_grad=True)
    y = x * x + x  # x reaches y along three paths
    y.backward(np.ones(1, dtype=np.float32))
    np.testing.assert_allclose(x.grad, [2 * 3 + 1])


def test_second_backward_needs_retain_graph():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_grad_collects_per_task_gradients_without_touching_dot_grad():
    shared = tm.tensor([1.0, -2.0], requires_grad=True)
    features = shared * 2
    loss_a = (features * features).sum()
    loss_b = features.sum()
    (g_a,) = grad(loss_a, [shared], retain_graph=True)
    (g_b,) = grad(loss_b, [shared])
    np.testing.assert_allclose(g_a, 8 * shared.data)
    np.testing.assert_allclose(g_b, [2, 2])
    assert shared.grad is None


def test_grad_reports_unused_inputs():
    a = tm.tensor([1.0], requires_grad=True)
    b = tm.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        grad((a * 2).sum(), [a, b])
    assert grad((a * 2).sum(), [a, b], allow_unused=True)[1] is None


def test_no_grad_records_nothing_and_detach_cuts_the_graph():
    x = tm.tensor([1.0], requires_grad=True)
    with tm.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = (x * 2).detach() * x
    z.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0])


def test_retain_grad_keeps_intermediate_gradients():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)


def test_float32_by_default_and_float64_on_request():
    assert tm.tensor([1.0]).dtype == np.float32
    assert tm.tensor(np.ones(2, dtype=np.float64)).dtype == np.float32
    assert tm.tensor([1, 2]).dtype == np.int64
    with tm.default_dtype(np.float64):
        assert tm.tensor([1.0]).dtype == np.float64
    x = tm.tensor([1.0], requires_grad=True)
    assert (x * 2.5 + 1).dtype == np.float32
    assert (2.5 / x).dtype == np.float32


def test_backward_of_non_scalar_needs_a_gradient():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating"):
        tm.tensor([1, 2], requires_grad=True)


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = tm.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])
