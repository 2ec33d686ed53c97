"""Property tests over random shapes: broadcasting gradients and convolution output shapes."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinymtl as tm
import tinymtl.nn.functional as F
from tinymtl.autograd.gradcheck import gradcheck
from tinymtl.autograd.ops.conv import conv_output_size


@st.composite
def broadcastable_shapes(draw):
    """Two shapes that broadcast: drop leading axes and set some axes to 1 in either."""
    ndim = draw(st.integers(1, 4))
    full = draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim))
    shapes = []
    for _ in range(2):
        lead = draw(st.integers(0, ndim))
        shape = [1 if draw(st.booleans()) else size for size in full[lead:]]
        shapes.append(tuple(shape))
    return shapes


@settings(max_examples=40, deadline=None)
@given(broadcastable_shapes(), st.sampled_from(["add", "sub", "mul", "div"]))
def test_broadcast_gradients_match_finite_differences(shapes, op):
    rng = np.random.default_rng(0)
    with tm.default_dtype(np.float64):
        a = tm.tensor(rng.standard_normal(shapes[0]), requires_grad=True)
        b = tm.tensor(np.abs(rng.standard_normal(shapes[1])) + 0.5, requires_grad=True)
        fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
              "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[op]
        gradcheck(fn, [a, b])
        out = fn(a, b)
        out.sum().backward()
        assert a.grad.shape == a.shape and b.grad.shape == b.shape


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(5, 12), st.integers(5, 12),
       st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2))
def test_conv_output_shape_matches_formula(n, c, h, w, k, stride, padding, dilation):
    size = conv_output_size((h, w), (k, k), (stride, stride), (padding, padding),
                            (dilation, dilation))
    if min(size) <= 0:
        return
    x = tm.randn(n, c, h, w)
    weight = tm.randn(2, c, k, k)
    out = F.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation)
    assert out.shape == (n, 2) + size
    expected = tuple((s + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for s in (h, w))
    assert size == expected


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(4, 9), st.integers(4, 9), st.integers(2, 3),
       st.integers(1, 3))
def test_pool_output_shape_and_gradient_mass(n, h, w, k, stride):
    x = tm.tensor(np.random.default_rng(0).standard_normal((n, 2, h, w)), requires_grad=True)
    out = F.avg_pool2d(x, k, stride)
    assert out.shape[2:] == conv_output_size((h, w), (k, k), (stride, stride), (0, 0), (1, 1))
    out.sum().backward()
    # every output spreads exactly 1 unit of gradient over its window
    np.testing.assert_allclose(x.grad.sum(), out.data.size, rtol=1e-5)
