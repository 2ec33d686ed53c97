"""Every kernel module agrees with the NumPy reference, on every device available."""

import numpy as np
import pytest

from tinymtl.backend import to_device, to_numpy
from tinymtl.backend.kernels import KERNEL_NAMES, numba_cpu, numpy_ref
from tinymtl.autograd.ops.conv import conv_output_size

from conftest import DEVICES


def kernel_module(device):
    if device == "cpu":
        return numba_cpu
    from tinymtl.backend.kernels import cupy_gpu
    return cupy_gpu


def test_every_module_defines_every_kernel():
    for module in (numpy_ref, numba_cpu):
        for name in KERNEL_NAMES:
            assert callable(getattr(module, name)), f"{module.__name__} lacks {name}"


GEOMETRIES = [  # kernel, stride, padding, dilation
    ((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0), (1, 2)), ((1, 1), (2, 2), (0, 0), (1, 1)),
    ((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 2), (3, 2), (0, 0), (1, 1)),  # tiling pool windows
    ((3, 3), (2, 3), (2, 3), (1, 2)),  # strided and dilated columns running into the padding
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("channels", [1, 3, 6])  # the few-channel im2col copies; the general one
def test_image_kernels_match_reference(device, geometry, layout, channels):
    kernel, stride, padding, dilation = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, channels, 8, 7)).astype(np.float32)
    if layout == "channels_last":  # the same values, stored (N, H, W, C)
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    out_size = conv_output_size((8, 7), kernel, stride, padding, dilation)
    K = kernel_module(device)
    xd = to_device(x, device)

    col = K.im2col(xd, kernel, stride, padding, dilation, out_size)
    expected_col = numpy_ref.im2col(x, kernel, stride, padding, dilation, out_size)
    np.testing.assert_array_equal(to_numpy(col), expected_col)
    taps_first = K.im2col(xd, kernel, stride, padding, dilation, out_size, taps_first=True)
    np.testing.assert_array_equal(to_numpy(taps_first), expected_col)  # (in any layout)
    np.testing.assert_allclose(to_numpy(K.col2im(col, (8, 7), stride, padding, dilation)),
                               numpy_ref.col2im(expected_col, (8, 7), stride, padding, dilation),
                               rtol=1e-6, atol=1e-6)
    if padding[0] <= kernel[0] // 2 and padding[1] <= kernel[1] // 2:
        y, argmax = K.max_pool2d_forward(xd, kernel, stride, padding, dilation, out_size)
        ry, rargmax = numpy_ref.max_pool2d_forward(x, kernel, stride, padding, dilation, out_size)
        np.testing.assert_array_equal(to_numpy(y), ry)
        np.testing.assert_array_equal(to_numpy(argmax), rargmax)
        g = rng.standard_normal(ry.shape).astype(np.float32)
        np.testing.assert_allclose(
            to_numpy(K.max_pool2d_backward(to_device(g, device), argmax, (8, 7), kernel, stride,
                                           padding, dilation)),
            numpy_ref.max_pool2d_backward(g, rargmax, (8, 7)), rtol=1e-6)


@pytest.mark.parametrize("kernel", [(2, 2), (3, 2)])
@pytest.mark.parametrize("channels", [4, 37])
def test_tiling_max_pool_kernels_equal_the_general_ones_bit_for_bit(kernel, channels):
    """numba_cpu's kernels for windows that tile the image give the general kernels' bits:
    the first of tied maxima (ReLU's zeros) wins, a -0.0 gradient comes out as +0.0 as the
    zeroed sum makes it, and pixels past the last whole window get 0. (37 channels: the
    compiled loops' vector body as well as their scalar remainder.)"""
    rng = np.random.default_rng(1)
    x = np.maximum(rng.standard_normal((3, channels, 11, 9)).astype(np.float32), 0)  # ties at 0
    geometry = (kernel, kernel, (0, 0), (1, 1))
    out_size = conv_output_size((11, 9), *geometry)
    assert numba_cpu._tiles(*geometry) and not numba_cpu._tiles(kernel, (1, 1), (0, 0), (1, 1))
    x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y, argmax = numba_cpu.max_pool2d_forward(x, *geometry, out_size)
    general_y = np.empty_like(numba_cpu._channels_last(y))
    general_argmax = np.empty(general_y.shape, dtype=np.int32)
    numba_cpu._max_pool2d_forward(x_last, *kernel, *kernel, 0, 0, 1, 1, general_y,
                                  general_argmax)
    np.testing.assert_array_equal(numba_cpu._channels_last(y), general_y)
    np.testing.assert_array_equal(numba_cpu._channels_last(argmax), general_argmax)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g[:, :, 0] = -0.0
    grad_x = numba_cpu.max_pool2d_backward(g, argmax, (11, 9), *geometry)
    general = np.zeros_like(x_last)
    numba_cpu._max_pool2d_backward(numba_cpu._channels_last(g), general_argmax, *kernel, *kernel,
                                   0, 0, 1, 1, general)
    grad_x = numba_cpu._channels_last(grad_x)
    np.testing.assert_array_equal(grad_x, general)
    np.testing.assert_array_equal(np.signbit(grad_x), np.signbit(general))


@pytest.mark.parametrize("kernel", [(2, 2), (3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [4, 37])
def test_fused_relu_max_pool_kernels_give_the_separate_ops_bits(kernel, dtype, channels):
    """bias + ReLU + pooling in one pass each way: numba_cpu's kernels give exactly the bits
    of the bias add, relu, max_pool2d and their backward one after the other (ReLU's tied
    zeros, -0.0 gradients, rows past the last window), and every module agrees with them.
    37 channels run the compiled loops' vector body as well as their scalar remainder."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, channels, 11, 9)).astype(dtype)
    x[:, :, :4] = -np.abs(x[:, :, :4])  # windows of ReLU's zeros only: ties
    x[:, :, 6, :4] = x[:, :, 7, :4]  # positive ties: the first tap in the window's order wins
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # a conv's layout
    bias = rng.standard_normal(channels).astype(dtype)
    geometry = (kernel, kernel, (0, 0), (1, 1))
    out_size = conv_output_size((11, 9), *geometry)
    g = rng.standard_normal((3, channels, *out_size)).astype(dtype)
    g[:, :, 0] = -0.0
    for b in (bias, None):
        activated = numba_cpu.relu(x if b is None else x + b.reshape(1, -1, 1, 1))
        y, argmax = numba_cpu.max_pool2d_forward(activated, *geometry, out_size)
        grad = numba_cpu.relu_backward(
            numba_cpu.max_pool2d_backward(g, argmax, (11, 9), *geometry), activated)
        for module in (numba_cpu, numpy_ref):
            fused_y, fused_argmax = module.relu_max_pool2d_forward(x, b, kernel)
            fused_grad = module.relu_max_pool2d_backward(g, fused_y, fused_argmax, (11, 9),
                                                         kernel)
            for ours, theirs in ((fused_y, y), (fused_argmax, argmax), (fused_grad, grad)):
                np.testing.assert_array_equal(ours, theirs)
                np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


@pytest.mark.parametrize("device", DEVICES)
def test_fused_relu_max_pool_kernels_match_reference(device):
    rng = np.random.default_rng(3)
    x, bias = (rng.standard_normal(shape).astype(np.float32) for shape in ((2, 5, 8, 7), (5,)))
    g = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    K = kernel_module(device)
    y, argmax = K.relu_max_pool2d_forward(to_device(x, device), to_device(bias, device), (2, 2))
    ry, rargmax = numpy_ref.relu_max_pool2d_forward(x, bias, (2, 2))
    np.testing.assert_array_equal(to_numpy(y), ry)
    np.testing.assert_array_equal(to_numpy(argmax), rargmax)
    grad = K.relu_max_pool2d_backward(to_device(g, device), y, argmax, (8, 7), (2, 2))
    np.testing.assert_array_equal(
        to_numpy(grad), numpy_ref.relu_max_pool2d_backward(g, ry, rargmax, (8, 7), (2, 2)))


@pytest.mark.parametrize("options", [
    dict(in_channels=1, image_size=(28, 28)),  # the MNIST CNN's blocks
    dict(in_channels=1, image_size=(32, 32), channels=(8, 16, 8), padding=1, out_features=None),
    dict(in_channels=3, image_size=(13, 11), channels=(4, 6), batch_norm=True, dropout=0.5),
])
def test_conv_encoder_fuses_its_blocks_without_changing_a_bit(options):
    """ConvEncoder runs each block's bias, ReLU and pooling as one op: its output and every
    gradient are the bits of the same layers run one by one (``self.layers(x)``)."""
    import tinymtl as tm
    from tinymtl import nn

    tm.manual_seed(0)
    encoder = nn.ConvEncoder(**options)
    x = tm.tensor(np.random.default_rng(4).standard_normal(
        (6, options["in_channels"], *options["image_size"])).astype(np.float32))
    results = []
    for run in (encoder, encoder.layers):
        tm.manual_seed(1)  # (the same dropout mask)
        encoder.zero_grad()
        out = run(x)
        (out * out).sum().backward()
        results.append([out.numpy()] + [p.grad.copy() for p in encoder.parameters()])
    for fused, layered in zip(*results):
        np.testing.assert_array_equal(fused, layered)
        np.testing.assert_array_equal(np.signbit(fused), np.signbit(layered))


WINOGRAD_SHAPES = [  # image (N, C, H, W), padding: odd and even outputs, paddings 0-2
    ((2, 3, 7, 6), (1, 1)), ((2, 5, 8, 8), (0, 0)), ((1, 2, 5, 9), (2, 2)), ((3, 4, 3, 3), (1, 0)),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, padding", WINOGRAD_SHAPES)
def test_winograd_kernels_match_reference_and_their_adjoints(device, shape, padding):
    """Each transform agrees with numpy_ref's, and each backward kernel is its forward's
    adjoint: <T(a), b> = <a, T*(b)> (what makes the gradients right)."""
    rng = np.random.default_rng(3)
    (n, c, h, w), K = shape, kernel_module(device)
    out_size = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2)
    tiles = tuple((s + 1) // 2 for s in out_size)
    x = rng.standard_normal(shape)
    V = to_numpy(K.winograd_input(to_device(x, device), padding, tiles))
    np.testing.assert_allclose(V, numpy_ref.winograd_input(x, padding, tiles), atol=1e-12)
    dV = rng.standard_normal(V.shape)
    dx = to_numpy(K.winograd_input_backward(to_device(dV.copy(), device), tiles, (h, w),
                                            padding))
    np.testing.assert_allclose(
        dx, numpy_ref.winograd_input_backward(dV, tiles, (h, w), padding), atol=1e-12)
    assert np.vdot(V, dV) == pytest.approx(np.vdot(x, dx), rel=1e-12)
    M = rng.standard_normal((16, V.shape[1], 4))
    y = to_numpy(K.winograd_output(to_device(M, device), tiles, out_size))
    np.testing.assert_allclose(y, numpy_ref.winograd_output(M, tiles, out_size), atol=1e-12)
    g = rng.standard_normal(y.shape)
    dM = to_numpy(K.winograd_output_backward(to_device(g, device), tiles))
    np.testing.assert_allclose(dM, numpy_ref.winograd_output_backward(g, tiles), atol=1e-12)
    assert np.vdot(y, g) == pytest.approx(np.vdot(M, dM), rel=1e-12)


def test_winograd_and_im2col_agree_in_float32(monkeypatch):
    """The two ways of computing a 3x3 convolution: the same values to float32 rounding."""
    import tinymtl as tm
    import tinymtl.nn.functional as F
    from tinymtl.autograd.ops import winograd

    rng = np.random.default_rng(4)
    x = tm.tensor(rng.standard_normal((4, 16, 9, 10)).astype(np.float32), requires_grad=True)
    w = tm.tensor(rng.standard_normal((8, 16, 3, 3)).astype(np.float32) * 0.1,
                  requires_grad=True)
    results = []
    for use in (True, False):
        monkeypatch.setattr(winograd, "WINOGRAD", use)  # (restored after the test)
        y = F.conv2d(x, w, padding=1)
        (y * y).sum().backward()
        results.append((y.numpy().copy(), x.grad.copy(), w.grad.copy()))
        x.grad = w.grad = None
    for fast, direct in zip(*results):
        np.testing.assert_allclose(fast, direct, rtol=2e-5, atol=2e-5 * np.abs(direct).max())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rowwise_and_elementwise_kernels_match_reference(device, dtype):
    rng = np.random.default_rng(1)
    K = kernel_module(device)
    x = (rng.standard_normal((5, 7)) * 30).astype(dtype)
    np.testing.assert_allclose(to_numpy(K.log_softmax(to_device(x, device))),
                               numpy_ref.log_softmax(x), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(to_numpy(K.erf(to_device(x / 30, device))),
                               numpy_ref.erf(x / 30), rtol=1e-6, atol=1e-7)
    relu_in = to_device(np.concatenate([x, [[np.nan, -np.nan, np.inf, -np.inf, 0, 1, -1]]]),
                        device)
    out = K.relu(relu_in)
    np.testing.assert_array_equal(to_numpy(out), numpy_ref.relu(to_numpy(relu_in)))
    grad = rng.standard_normal(out.shape).astype(dtype)
    grad[0, :3] = np.nan
    np.testing.assert_array_equal(
        to_numpy(K.relu_backward(to_device(grad, device), out)),
        numpy_ref.relu_backward(grad, to_numpy(out)))  # NaN, signs of zero included
    target = np.zeros((4, 3), dtype)
    index = np.array([0, 2, 0, 3])
    values = rng.standard_normal((4, 3)).astype(dtype)
    expected = target.copy()
    numpy_ref.scatter_add(expected, index, values)
    got = to_device(target, device)
    K.scatter_add(got, to_device(index, device), to_device(values, device))
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_kernel_matches_reference(device, decoupled):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(50).astype(np.float32) for _ in range(2)]
    arrays += [np.abs(rng.standard_normal(50)).astype(np.float32) * s for s in (0.1, 0.01)]
    hyper = (1e-2, 0.9, 0.999, 1e-8, 1 - 0.9 ** 3, 1 - 0.999 ** 3, 0.05, decoupled)
    expected = [a.copy() for a in arrays]
    numpy_ref.adam_update(*expected, *hyper)
    got = [to_device(a.copy(), device) for a in arrays]
    kernel_module(device).adam_update(*got, *hyper)
    for name, g, e in zip(("param", "grad", "exp_avg", "exp_avg_sq"), got, expected):
        np.testing.assert_allclose(to_numpy(g), e, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_kernels_match_reference(device, dtype):
    """Per-node max (with the first edge attaining it), softmax and its backward, over
    unsorted edges with an empty segment, on (E, H) and (E, H, C) rows."""
    rng = np.random.default_rng(3)
    K = kernel_module(device)
    index = rng.integers(0, 6, 40)
    index[index == 3] = 4  # node 3 has no edges
    for shape in [(40, 2), (40, 2, 3)]:
        values = (rng.standard_normal(shape) * 10).astype(dtype)
        values[5] = values[9]  # a tie: the first edge wins
        out, argmax = K.segment_max(to_device(values, device), to_device(index, device), 6)
        expected, expected_arg = numpy_ref.segment_max(values, index, 6)
        np.testing.assert_array_equal(to_numpy(out), expected)
        np.testing.assert_array_equal(to_numpy(argmax), expected_arg)
        alpha = K.segment_softmax(to_device(values, device), to_device(index, device), 6)
        np.testing.assert_allclose(to_numpy(alpha), numpy_ref.segment_softmax(values, index, 6),
                                   rtol=1e-5, atol=1e-7)
        grad = rng.standard_normal(shape).astype(dtype)
        reference_alpha = numpy_ref.segment_softmax(values, index, 6)
        np.testing.assert_allclose(
            to_numpy(K.segment_softmax_backward(to_device(reference_alpha, device),
                                                to_device(grad, device),
                                                to_device(index, device), 6)),
            numpy_ref.segment_softmax_backward(reference_alpha, grad, index, 6),
            rtol=1e-5, atol=1e-6)
    values = rng.standard_normal((40, 2, 3)).astype(dtype)  # (E, H, C) messages summed per node
    rows = to_device(np.zeros((6, 2, 3), dtype), device)
    K.scatter_add(rows, to_device(index, device), to_device(values, device))
    expected = np.zeros((6, 2, 3), dtype)
    numpy_ref.scatter_add(expected, index, values)
    np.testing.assert_allclose(to_numpy(rows), expected, rtol=1e-6)
