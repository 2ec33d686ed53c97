"""Edge cases of the autograd, with PyTorch's semantics as the reference: 0-d inputs, empty
batches, torch.gather's index shapes, pooling windows wholly in the padding, zero vectors in a
cosine, and float32 graphs that must stay float32 in every gradient."""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn.functional as F
from tinymtl.autograd import grad
from tinymtl.autograd.ops.shape import gather

UNARY = {
    "abs": F.abs, "exp": F.exp, "gelu": F.gelu, "leaky_relu": F.leaky_relu, "relu": F.relu,
    "sigmoid": F.sigmoid, "tanh": F.tanh, "sqrt": F.sqrt, "log": F.log, "sum": F.sum,
    "mean": F.mean, "amax": F.amax, "amin": F.amin, "square": lambda x: x * x,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_every_unary_op_on_a_0d_input(name, float64):
    """Forward gives a 0-d array (not a NumPy scalar, which the kernels would take for a GPU
    array), backward matches a central finite difference."""
    op = UNARY[name]
    x = tm.tensor(np.float64(0.7), requires_grad=True)
    y = op(x)
    assert isinstance(y.data, np.ndarray) and y.shape == ()
    y.backward()
    h = 1e-6
    numeric = (op(tm.tensor(0.7 + h)).item() - op(tm.tensor(0.7 - h)).item()) / (2 * h)
    assert x.grad.shape == () and float(x.grad) == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_an_op_on_a_full_reduction():
    x = tm.randn(3, requires_grad=True)
    y = F.gelu(x.sum())  # raised ModuleNotFoundError: cupy (a NumPy scalar taken for CuPy's)
    y.backward()
    assert x.grad.shape == (3,) and np.all(x.grad == x.grad[0])


def test_float32_graphs_give_float32_gradients():
    x = tm.randn(4, 5, requires_grad=True)
    outputs = {
        "amax": F.amax(x, dim=1).sum(), "amin": F.amin(x, dim=0).sum(),
        "bce_pos_weight": F.binary_cross_entropy_with_logits(
            x, np.ones((4, 5), np.float32), pos_weight=np.full(5, 2.0)),  # float64 weights
        "var": F.var(x, dim=1).sum(), "logsumexp": F.logsumexp(x, dim=1).sum(),
        "softmax": F.softmax(x, dim=1)[:, 0].sum(), "cross_entropy": F.cross_entropy(
            x, np.array([0, 1, 2, 3])),
    }
    for name, y in outputs.items():
        assert y.dtype == np.float32, name
        (g,) = grad(y, [x])
        assert g.dtype == np.float32, name


def test_conv2d_of_an_empty_batch_is_empty_with_zero_gradients():
    x = tm.tensor(np.zeros((0, 4, 5, 5), np.float32), requires_grad=True)
    w, b = tm.randn(6, 2, 3, 3, requires_grad=True), tm.randn(6, requires_grad=True)
    y = F.conv2d(x, w, b, padding=1, groups=2)
    assert y.shape == (0, 6, 5, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 4, 5, 5)
    assert not w.grad.any() and not b.grad.any()
    assert F.conv1d(tm.tensor(np.zeros((0, 2, 7), np.float32)), tm.randn(3, 2, 3)).shape == \
        (0, 3, 5)


def test_gather_follows_torch_gather():
    a = tm.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    np.testing.assert_array_equal(gather(a, 1, np.array([[0, 3]])).numpy(), [[0, 3]])
    np.testing.assert_array_equal(gather(a, 0, np.array([[2, 1], [0, 0]])).numpy(),
                                  [[8, 5], [0, 1]])
    gather(a, 1, np.array([[0, 3], [1, 1]])).sum().backward()
    np.testing.assert_array_equal(a.grad, [[1, 0, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="index of shape"):
        gather(a, 1, np.array([[0], [1], [2], [0]]))  # more rows than the input


@pytest.mark.parametrize("kernels", ["numpy_ref", "numba_cpu"])
def test_a_pooling_window_wholly_in_the_padding(kernels):
    """PyTorch: -inf out, no gradient (it was uninitialised memory, and the gradient went to
    a wrapped-around pixel)."""
    from tinymtl.autograd.ops.pooling import _pool_geometry
    from tinymtl.backend import kernels as K

    module = getattr(K, kernels)
    x = np.random.default_rng(0).standard_normal((2, 3, 1, 4)).astype(np.float32)
    geometry = _pool_geometry(tm.tensor(x), 2, 1, 1, 2)  # kernel 2, stride 1, pad 1, dilation 2
    y, argmax = module.max_pool2d_forward(x, *(geometry[k] for k in (
        "kernel", "stride", "padding", "dilation", "out_size")))
    assert np.all(np.isneginf(y)) and np.all(argmax == -1)  # height 1: both taps in padding
    window = [geometry[k] for k in ("kernel", "stride", "padding", "dilation")]
    assert not module.max_pool2d_backward(np.ones_like(y), argmax, (1, 4), *window).any()


def test_pooling_padding_is_checked_against_the_dilated_kernel():
    x = tm.randn(1, 1, 8, 8)
    F.max_pool2d(x, 2, stride=1, padding=1, dilation=2)  # dilated window 3: padding 1 is fine
    with pytest.raises(ValueError, match="at most half the dilated kernel"):
        F.max_pool2d(x, 2, stride=1, padding=2, dilation=2)


def test_cosine_of_a_zero_vector_has_a_finite_gradient():
    a = tm.tensor(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], np.float32), requires_grad=True)
    b = tm.tensor(np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]], np.float32), requires_grad=True)
    F.cosine_embedding_loss(a, b, np.array([1, -1])).backward()
    assert np.all(np.isfinite(a.grad)) and np.all(np.isfinite(b.grad))
    cos = F.cosine_similarity(a, b).numpy()
    assert cos[0] == 0.0 and cos[1] == pytest.approx(4 / np.sqrt(14) / np.sqrt(2), rel=1e-6)


def test_cross_entropy_with_every_row_ignored_is_zero_with_zero_gradient():
    x = tm.randn(3, 4, requires_grad=True)
    loss = F.cross_entropy(x, np.array([-100, -100, -100]))
    loss.backward()
    assert loss.item() == 0.0 and not x.grad.any()  # documented: PyTorch gives NaN


# -- against PyTorch, where it is installed (the bench extra) -------------------------------------
def test_the_edge_cases_match_pytorch(float64):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    # a pooling window wholly in the padding: -inf, and the gradient of the others
    x = rng.standard_normal((2, 3, 1, 4))
    ours = tm.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(ours, 2, 1, 1, 2)
    z = torch.nn.functional.max_pool2d(theirs, 2, 1, 1, 2)
    np.testing.assert_array_equal(y.numpy(), z.detach().numpy())
    x = rng.standard_normal((2, 3, 5, 5))
    ours, theirs = tm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    upstream = rng.standard_normal((2, 3, 5, 5))
    (F.max_pool2d(ours, 2, 1, 1, 2) * tm.tensor(upstream)).sum().backward()
    (torch.nn.functional.max_pool2d(theirs, 2, 1, 1, 2) * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12)
    # gather with an index smaller than the input
    a = rng.standard_normal((3, 4))
    index = np.array([[0, 3], [2, 2]])
    ours, theirs = tm.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    gather(ours, 1, index).sum().backward()
    torch.gather(theirs, 1, torch.tensor(index)).sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
    # cosine with a zero row: values and (finite) gradients
    u, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    u[0] = 0.0
    ours_u, ours_v = tm.tensor(u, requires_grad=True), tm.tensor(v, requires_grad=True)
    their_u, their_v = torch.tensor(u, requires_grad=True), torch.tensor(v, requires_grad=True)
    F.cosine_similarity(ours_u, ours_v).sum().backward()
    torch.nn.functional.cosine_similarity(their_u, their_v).sum().backward()
    np.testing.assert_allclose(ours_u.grad, their_u.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours_v.grad, their_v.grad.numpy(), rtol=1e-9, atol=1e-9)
    # an empty batch through conv2d
    empty = torch.zeros((0, 2, 5, 5), dtype=torch.float64)
    w = rng.standard_normal((3, 2, 3, 3))
    assert tuple(torch.nn.functional.conv2d(empty, torch.tensor(w), padding=1).shape) == \
        F.conv2d(tm.tensor(np.zeros((0, 2, 5, 5))), tm.tensor(w), padding=1).shape
