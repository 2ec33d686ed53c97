"""Finite-difference gradient checks, in float64, for every differentiable op."""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn.functional as F
from tinymtl.autograd.gradcheck import gradcheck

pytestmark = pytest.mark.usefixtures("float64")


def rand(*shape, positive=False, seed=None):
    data = np.random.default_rng(seed if seed is not None else sum(shape)).standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return tm.tensor(data, requires_grad=True)


# Broadcast pairs: same shape, row vector, column vector, scalar, leading axes
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)), ((2, 3, 4), ()),
                    ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4))]


@pytest.mark.parametrize("shape_a, shape_b", BROADCAST_SHAPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "where", "maximum"])
def test_binary_ops_with_broadcasting(op, shape_a, shape_b):
    a = rand(*shape_a, seed=1)
    b = rand(*shape_b, positive=op in ("div", "pow"), seed=2)
    if op == "pow":
        a = tm.tensor(np.abs(a.data) + 0.5, requires_grad=True)
    fns = {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
        "where": lambda a, b: F.where(np.broadcast_to(
            np.arange(np.broadcast(a.data, b.data).size).reshape(
                np.broadcast(a.data, b.data).shape) % 2 == 0, np.broadcast(a.data, b.data).shape),
            a, b),
        "maximum": lambda a, b: F.maximum(a, b),
    }
    gradcheck(fns[op], [a, b])


UNARY = {
    "neg": (lambda a: -a, False),
    "exp": (F.exp, False),
    "log": (F.log, True),
    "sqrt": (F.sqrt, True),
    "abs": (F.abs, False),
    "tanh": (F.tanh, False),
    "sigmoid": (F.sigmoid, False),
    "relu": (F.relu, False),
    "leaky_relu": (lambda a: F.leaky_relu(a, 0.1), False),
    "gelu": (F.gelu, False),
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"), False),
    "pow_scalar": (lambda a: a ** 3, False),
    "pow_fractional": (lambda a: a ** 1.5, True),
    "rsub_scalar": (lambda a: 2.0 - a, False),
    "rdiv_scalar": (lambda a: 2.0 / a, True),
    "clip": (lambda a: F.clip(a, -0.5, 0.7), False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops(name):
    fn, positive = UNARY[name]
    a = rand(3, 5, positive=positive, seed=3)
    if name in ("abs", "relu", "leaky_relu", "clip"):  # keep away from the kinks
        a.data[np.abs(a.data) < 0.05] += 0.2
        a.data[np.abs(a.data - 0.7) < 0.05] += 0.2
        a.data[np.abs(a.data + 0.5) < 0.05] += 0.2
    gradcheck(fn, [a])


AXES = [None, 0, 1, (0, 2), (-1,), (0, 1, 2)]


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "var", "logsumexp"])
def test_reductions_over_axes(op, axes, keepdim):
    a = rand(2, 3, 4, seed=4)
    gradcheck(lambda a: getattr(F, op)(a, axes, keepdim), [a])


def test_max_with_ties_shares_the_gradient():
    a = tm.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True)
    F.amax(a, dim=1).sum().backward()
    np.testing.assert_allclose(a.grad, [[0, 0.5, 0.5], [1, 0, 0]])


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family(op, dim):
    gradcheck(lambda a: getattr(F, op)(a, dim), [rand(3, 4, 5, seed=5)])


def test_matmul_shapes():
    cases = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((4,), (4, 5)),
             ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2))]
    for shape_a, shape_b in cases:
        gradcheck(lambda a, b: a @ b, [rand(*shape_a, seed=6), rand(*shape_b, seed=7)])


def test_linear_with_and_without_bias():
    x, w, b = rand(5, 4, seed=8), rand(3, 4, seed=9), rand(3, seed=10)
    gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])
    gradcheck(lambda x, w: F.linear(x, w), [rand(2, 5, 4), w])


def test_shape_ops():
    a = rand(2, 3, 4, seed=11)
    gradcheck(lambda a: a.reshape(4, 6), [a])
    gradcheck(lambda a: a.permute(2, 0, 1), [a])
    gradcheck(lambda a: a.transpose(0, 2), [a])
    gradcheck(lambda a: a.flatten(1), [a])
    gradcheck(lambda a: a.unsqueeze(1).squeeze(1), [a])
    gradcheck(lambda a: a.T, [a])
    gradcheck(lambda a: F.reshape(a.broadcast_to((5, 2, 3, 4)), 10, 12), [a])


@pytest.mark.parametrize("index", [
    (slice(None), 1), (0,), (slice(0, 2), slice(None), slice(1, 4, 2)), (Ellipsis, -1),
    (np.array([0, 1, 0]),), (slice(None), np.array([2, 2, 0])),
    (np.array([[True, False, True], [False, True, True]]),),
])
def test_indexing(index):
    gradcheck(lambda a: a[index], [rand(2, 3, 4, seed=12)])


def test_gather_with_repeated_indices():
    index = np.array([[0, 0, 2], [1, 3, 3]])
    gradcheck(lambda a: F.gather(a, 1, index), [rand(2, 4, seed=13)])
    index0 = np.array([[1, 0, 1, 1]])
    gradcheck(lambda a: F.gather(a, 0, index0), [rand(2, 4, seed=14)])


def test_concat_and_stack():
    a, b, c = rand(2, 3, seed=15), rand(2, 1, seed=16), rand(2, 3, seed=17)
    gradcheck(lambda a, b: F.cat([a, b], dim=1), [a, b])
    gradcheck(lambda a, c: F.cat([a, c], dim=0), [a, c])
    gradcheck(lambda a, c: F.stack([a, c], dim=1), [a, c])


CONV_CASES = [  # (input shape, weight shape, stride, padding, dilation, groups)
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1),
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 2), 1, 1),
    ((1, 2, 8, 8), (3, 2, 3, 3), 2, 1, 2, 1),
    ((2, 4, 6, 5), (6, 2, 3, 3), 1, 1, 1, 2),
    ((2, 4, 5, 5), (4, 1, 3, 3), 1, 1, 1, 4),
    # Winograd F(2×2, 3×3) (3×3, stride 1, ≥ 8 channels): odd and even sizes, paddings 0-2
    ((2, 8, 7, 6), (5, 8, 3, 3), 1, 1, 1, 1),
    ((2, 9, 5, 6), (3, 9, 3, 3), 1, 0, 1, 1),
    ((1, 8, 4, 3), (2, 8, 3, 3), 1, 2, 1, 1),
]


@pytest.fixture(params=[False, True], ids=["im2col", "winograd"])
def winograd_on(request, monkeypatch):
    """Both ways of computing a convolution (Winograd is opt-in: TINYMTL_WINOGRAD=1)."""
    from tinymtl.autograd.ops import winograd

    monkeypatch.setattr(winograd, "WINOGRAD", request.param)
    return request.param


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", CONV_CASES)
def test_conv2d(x_shape, w_shape, stride, padding, dilation, groups, winograd_on):
    x, w, b = rand(*x_shape, seed=18), rand(*w_shape, seed=19), rand(w_shape[0], seed=20)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), [x, w, b])


def test_the_winograd_cases_take_the_winograd_path(winograd_on):
    from tinymtl.autograd.ops import winograd

    for x_shape, w_shape, stride, padding, dilation, groups in CONV_CASES:
        expected = winograd_on and w_shape[1] >= winograd.MIN_CHANNELS \
            and w_shape[2:] == (3, 3) and stride == 1
        y = F.conv2d(rand(*x_shape), rand(*w_shape), None, stride, padding, dilation, groups)
        assert isinstance(y._ctx, winograd.WinogradConv2d) == expected, (x_shape, w_shape)


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 1),
                                                                (1, 2, 2, 1), (1, 1, 1, 2)])
def test_conv1d(stride, padding, dilation, groups):
    x, w, b = rand(2, 4, 9, seed=21), rand(6, 4 // groups, 3, seed=22), rand(6, seed=23)
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride, padding, dilation, groups), [x, w, b])


@pytest.mark.parametrize("kernel, stride, padding, dilation", [
    (2, None, 0, 1), (3, 2, 1, 1), ((3, 2), (1, 2), (1, 0), 1), (2, 1, 0, 2)])
def test_max_pool2d(kernel, stride, padding, dilation):
    # distinct values, so that no window has a tie the finite difference could flip
    data = np.random.default_rng(24).permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0
    x = tm.tensor(data, requires_grad=True)
    gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding, dilation), [x], eps=1e-4)


@pytest.mark.parametrize("kernel", [2, (3, 2)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_relu_max_pool2d(kernel, with_bias):
    # distinct values 0.1 apart, none at ReLU's kink: no tie or kink the finite difference
    # could cross (7 rows: with a kernel of 3 or 2, a row is left over)
    data = (np.random.default_rng(25).permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) - 120.05)
    x = tm.tensor(data / 10.0, requires_grad=True)
    if with_bias:
        b = tm.tensor(np.array([0.3, -0.2, 0.01]), requires_grad=True)
        gradcheck(lambda x, b: F.relu_max_pool2d(x, kernel, b), [x, b], eps=1e-4)
    else:
        gradcheck(lambda x: F.relu_max_pool2d(x, kernel), [x], eps=1e-4)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((3, 2), 1, (1, 0))])
def test_avg_pool2d(kernel, stride, padding):
    gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding), [rand(2, 3, 7, 6, seed=25)])


def test_global_avg_pool2d():
    gradcheck(F.global_avg_pool2d, [rand(2, 3, 4, 5, seed=26)])


def test_dropout_gradient_uses_the_same_mask():
    x = rand(4, 5, seed=27)
    generator = tm.backend.Generator(3)
    state = generator.state_dict()

    def fn(x):  # the same mask at every probe: restore the generator's state each call
        generator.load_state_dict(state)
        return F.dropout(x, 0.4, training=True, generator=generator)
    gradcheck(fn, [x])


def test_embedding_with_repeated_ids():
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    gradcheck(lambda w: F.embedding(ids, w), [rand(5, 3, seed=28)])


def test_layer_norm():
    x, w, b = rand(2, 3, 4, seed=29), rand(4, seed=30), rand(4, seed=31)
    gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b), [x, w, b])
    gradcheck(lambda x: F.layer_norm(x, (3, 4)), [x])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
def test_batch_norm_training(shape):
    x, w, b = rand(*shape, seed=32), rand(3, seed=33), rand(3, seed=34)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])


def test_batch_norm_eval():
    x, w, b = rand(4, 3, 2, 2, seed=35), rand(3, seed=36), rand(3, seed=37)
    mean, var = np.array([0.1, -0.2, 0.3]), np.array([1.5, 0.5, 2.0])
    gradcheck(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False), [x, w, b])


LOSSES = {
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 3, 1, 3])),
    "cross_entropy_weighted_smoothed": lambda x: F.cross_entropy(
        x, np.array([0, 3, 1, 3]), weight=np.array([1.0, 2.0, 0.5, 3.0]), label_smoothing=0.2),
    "cross_entropy_sum": lambda x: F.cross_entropy(x, np.array([0, 3, 1, 2]), reduction="sum"),
    "cross_entropy_none": lambda x: F.cross_entropy(x, np.array([0, 3, 1, 2]), reduction="none"),
    "cross_entropy_ignore": lambda x: F.cross_entropy(x, np.array([0, -100, 1, 2])),
    "cross_entropy_probabilities": lambda x: F.cross_entropy(
        x, np.full((4, 4), 0.25) + np.eye(4)[[0, 1, 2, 3]] * 0.0),
    "nll": lambda x: F.nll_loss(F.log_softmax(x, 1), np.array([0, 3, 1, 2])),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(
        x, np.random.default_rng(0).random((4, 4))),
    "bce_pos_weight": lambda x: F.binary_cross_entropy_with_logits(
        x, np.random.default_rng(0).random((4, 4)), pos_weight=np.array([1.0, 2.0, 3.0, 0.5])),
    "mse": lambda x: F.mse_loss(x, tm.tensor(np.ones((4, 4)))),
    "l1": lambda x: F.l1_loss(x, tm.tensor(np.full((4, 4), 0.03))),
    "huber": lambda x: F.huber_loss(x, tm.tensor(np.zeros((4, 4))), delta=0.8),
    "triplet": lambda x: F.triplet_margin_loss(x[0:2], x[2:4], x[[1, 0]], margin=2.0),
    "cosine_embedding": lambda x: F.cosine_embedding_loss(x[0:2], x[2:4], np.array([1, -1]),
                                                          margin=-0.9),
    "batch_hard_triplet": lambda x: F.batch_hard_triplet_loss(x, np.array([0, 1, 0, 1]),
                                                              margin=1.5),
    "normalize": lambda x: F.normalize(x, dim=1) * tm.tensor(np.arange(16.0).reshape(4, 4)),
    "profile_triplet": lambda x: F.profile_triplet_loss(
        x, np.array([[0.0, 1.0], [0.1, 0.9], [3.0, -1.0], [2.5, -0.5]]), margin=1.5),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses(name):
    x = rand(4, 4, seed=38)
    x.data[np.abs(np.abs(x.data) - 0.8) < 0.05] += 0.2  # Huber's kink
    gradcheck(LOSSES[name], [x])


def test_cross_entropy_over_extra_dimensions():
    target = np.array([[0, 2, 1], [1, 1, 0]])
    gradcheck(lambda x: F.cross_entropy(x, target), [rand(2, 3, 3, seed=39)])


def test_bce_gradient_with_respect_to_the_target():
    x, y = rand(3, 4, seed=40), tm.tensor(np.random.default_rng(1).random((3, 4)),
                                         requires_grad=True)
    gradcheck(lambda x, y: F.binary_cross_entropy_with_logits(x, y), [x, y])
    gradcheck(lambda x, y: F.binary_cross_entropy_with_logits(
        x, y, pos_weight=np.array([2.0, 1.0, 0.5, 3.0])), [x, y])
