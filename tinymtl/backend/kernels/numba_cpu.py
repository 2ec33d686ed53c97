"""CPU kernels compiled by Numba; the same functions, names and results as ``numpy_ref``.

Each kernel is a plain loop nest (the pseudo-loop of its docstring, nothing hidden) compiled with
``cache=True`` so the compile cost is paid once per machine. To step through one in a debugger,
run with ``NUMBA_DISABLE_JIT=1``: the loops then execute as ordinary Python.
Outer loops use ``prange``: with ``TINYMTL_NUMBA_PARALLEL=1`` they are split across threads
(never two threads writing one element, so results stay bitwise deterministic). The default is
serial: on few cores the matrix products' BLAS threads already use every core, and handing
work to a second thread pool costs more than these memory-bound loops take.
"""

import math
import os

import numpy as np
from numba import njit, prange, vectorize

PARALLEL = os.environ.get("TINYMTL_NUMBA_PARALLEL", "0") == "1"

# --------------------------------------------------------------------------------------------
# layout: every image kernel works on channels-last (N, H, W, C) C-contiguous memory. The ops
# keep images channels-last (a convolution's output is already), so this is usually free.


def _channels_last(x):
    """(N, C, H, W) in any layout -> a C-contiguous (N, H, W, C) array (no copy if possible)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


# --------------------------------------------------------------------------------------------
# im2col / col2im: the data movement of convolution


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, col):
    n_images, height, width, channels = x.shape
    oh, ow = col.shape[1], col.shape[2]
    for task in prange(n_images * oh):
        n, y = task // oh, task % oh
        for xo in range(ow):
            for i in range(kh):
                row = y * sh - ph + i * dh
                for j in range(kw):
                    column = xo * sw - pw + j * dw
                    inside = 0 <= row < height and 0 <= column < width
                    for c in range(channels):
                        col[n, y, xo, i, j, c] = x[n, row, column, c] if inside else 0


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _im2col_few_channels(x, kh, kw, sh, sw, ph, pw, dh, dw, col):
    """The same copy for images of few channels (a first layer: 1 or 3), where the loop over
    channels above is too short to pay: a kernel row's KW·C values are adjacent in both x and
    col, so where the row lies wholly inside the image they are copied as one run."""
    n_images, height, width, channels = x.shape
    oh, ow = col.shape[1], col.shape[2]
    x_rows = x.reshape(n_images, height, width * channels)
    col_rows = col.reshape(n_images, oh, ow, kh, kw * channels)
    run = kw * channels
    for task in prange(n_images * oh):
        n, y = task // oh, task % oh
        for i in range(kh):
            row = y * sh - ph + i * dh
            if row < 0 or row >= height:
                for xo in range(ow):
                    for k in range(run):
                        col_rows[n, y, xo, i, k] = 0
                continue
            for xo in range(ow):
                start = xo * sw - pw
                if dw == 1 and start >= 0 and start + kw <= width:
                    for k in range(run):
                        col_rows[n, y, xo, i, k] = x_rows[n, row, start * channels + k]
                    continue
                for j in range(kw):
                    column = start + j * dw
                    inside = 0 <= column < width
                    for c in range(channels):
                        col_rows[n, y, xo, i, j * channels + c] = (
                            x_rows[n, row, column * channels + c] if inside else 0)


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _im2col_taps_first(x, kh, kw, sh, sw, ph, pw, dh, dw, col):
    """The same copy into col laid out (KH, KW, C, N, OH, OW), from x laid out (N, C, H, W):
    for one tap (i, j), an output row's values are an image row's, shifted, so they are
    copied as one run (vectorised) between the columns that fall in the padding."""
    n_images, channels, height, width = x.shape
    oh, ow = col.shape[4], col.shape[5]
    for task in prange(n_images * channels):
        n, c = task // channels, task % channels
        for i in range(kh):
            for j in range(kw):
                shift = j * dw - pw  # image column = xo * sw + shift
                first = min(ow, max(0, -(shift // sw)))          # first xo inside the image
                end = max(first, min(ow, -((shift - width) // sw)))  # one past the last
                for y in range(oh):
                    row = y * sh - ph + i * dh
                    out = col[i, j, c, n, y]
                    if row < 0 or row >= height:
                        out[:] = 0
                        continue
                    source = x[n, c, row]
                    out[:first] = 0
                    for xo in range(first, end):
                        out[xo] = source[xo * sw + shift]
                    out[end:] = 0


# up to here, _im2col_few_channels is the faster copy (benchmarks/conv_layers.py); the
# taps-first copy takes the same bound, measured only with 1 channel
FEW_CHANNELS = 4


def im2col(x, kernel, stride, padding, dilation, out_size, taps_first=False):
    """for n, oh, ow, i, j, c:  col[n,oh,ow,i,j,c] = x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw] or 0.

    ``taps_first=True`` allows col in another memory layout (for a product, which reads either
    layout at the same speed and with the same bits): images of few channels (a first layer)
    are then copied tap by tap into a (KH, KW, C, N, OH, OW) array, returned as its transposed
    view, twice as fast as into the row layout, where each output pixel's taps are a run of
    KH·KW·C values to gather (0.55 against 1.07 ms for 64 images of 32×32×1, padding 1)."""
    if taps_first and x.shape[1] <= FEW_CHANNELS:
        x = np.ascontiguousarray(x)
        col = np.empty((*kernel, x.shape[1], x.shape[0], *out_size), dtype=x.dtype)
        _im2col_taps_first(x, *kernel, *stride, *padding, *dilation, col)
        return col.transpose(3, 4, 5, 0, 1, 2)
    x = _channels_last(x)
    col = np.empty((x.shape[0], *out_size, *kernel, x.shape[3]), dtype=x.dtype)
    copy = _im2col_few_channels if x.shape[3] <= FEW_CHANNELS else _im2col
    copy(x, *kernel, *stride, *padding, *dilation, col)
    return col


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _col2im(col, sh, sw, ph, pw, dh, dw, out):
    n_images, oh, ow, kh, kw, channels = col.shape
    height, width = out.shape[1], out.shape[2]
    for n in prange(n_images):  # one thread per image: no two threads add into one pixel
        for y in range(oh):
            for xo in range(ow):
                for i in range(kh):
                    row = y * sh - ph + i * dh
                    if row < 0 or row >= height:
                        continue
                    for j in range(kw):
                        column = xo * sw - pw + j * dw
                        if column < 0 or column >= width:
                            continue
                        for c in range(channels):
                            out[n, row, column, c] += col[n, y, xo, i, j, c]


def col2im(col, image_size, stride, padding, dilation):
    """for n, oh, ow, i, j, c:  x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw] += col[n,oh,ow,i,j,c]."""
    col = np.ascontiguousarray(col)
    out = np.zeros((col.shape[0], *image_size, col.shape[5]), dtype=col.dtype)
    _col2im(col, *stride, *padding, *dilation, out)
    return out.transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# max pooling


@njit(inline="always")
def _keep_larger(value, flat, best, where):
    """One tap of a window's running maximum: (value, flat) if value > best, else unchanged
    (strictly greater: the first of tied maxima wins; as two selects, so the loop vectorises)."""
    better = value > best
    return (value if better else best), (flat if better else where)


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, y, argmax):
    n_images, height, width, channels = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for task in prange(n_images * oh):
        n, yo = task // oh, task % oh
        for xo in range(ow):
            first = True  # the window's first tap inside the image starts the maximum
            for i in range(kh):
                row = yo * sh - ph + i * dh
                if row < 0 or row >= height:
                    continue
                for j in range(kw):
                    column = xo * sw - pw + j * dw
                    if column < 0 or column >= width:
                        continue
                    flat = row * width + column
                    for c in range(channels):
                        value = x[n, row, column, c]
                        better = first or value > y[n, yo, xo, c]  # (branch-free: SIMD)
                        y[n, yo, xo, c] = value if better else y[n, yo, xo, c]
                        argmax[n, yo, xo, c] = flat if better else argmax[n, yo, xo, c]
                    first = False
            if first:  # the window lies wholly in the padding
                for c in range(channels):
                    y[n, yo, xo, c] = -np.inf
                    argmax[n, yo, xo, c] = -1


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _max_pool2d_tiles_forward(x, kh, kw, y, argmax):
    """The same for windows that tile the image (stride = kernel, no padding or dilation: the
    usual 2×2 pooling): every window lies inside, so no bounds to check, and its first tap
    starts the maximum before the loop (twice as fast on a 32×32×32 image batch)."""
    width = x.shape[2]
    n_images, oh, ow, channels = y.shape
    for task in prange(n_images * oh):
        n, yo = task // oh, task % oh
        for xo in range(ow):
            top, left = yo * kh, xo * kw
            for c in range(channels):
                y[n, yo, xo, c] = x[n, top, left, c]
                argmax[n, yo, xo, c] = top * width + left
            for i in range(kh):
                for j in range(kw):
                    if i == 0 and j == 0:
                        continue
                    flat = (top + i) * width + left + j
                    for c in range(channels):
                        y[n, yo, xo, c], argmax[n, yo, xo, c] = _keep_larger(
                            x[n, top + i, left + j, c], flat, y[n, yo, xo, c],
                            argmax[n, yo, xo, c])


def _tiles(kernel, stride, padding, dilation):
    """Do the pooling windows tile the image (the fast kernels' case)?"""
    return tuple(kernel) == tuple(stride) and tuple(padding) == (0, 0) and \
        tuple(dilation) == (1, 1)


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """for each window: y = max(x[window]); argmax = flat index (row*W + col) of the first max;
    a window wholly in the padding: y = -inf, argmax = -1 (as PyTorch).
    (argmax is int32 here: half the memory traffic of int64, and no image has 2³¹ pixels.)"""
    x = _channels_last(x)
    n, c = x.shape[0], x.shape[3]
    y = np.empty((n, *out_size, c), dtype=x.dtype)
    argmax = np.empty((n, *out_size, c), dtype=np.int32)
    if _tiles(kernel, stride, padding, dilation):
        _max_pool2d_tiles_forward(x, *kernel, y, argmax)
    else:
        _max_pool2d_forward(x, *kernel, *stride, *padding, *dilation, y, argmax)
    return y.transpose(0, 3, 1, 2), argmax.transpose(0, 3, 1, 2)


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _max_pool2d_backward(grad_y, argmax, kh, kw, sh, sw, ph, pw, dh, dw, grad_x):
    n_images, oh, ow, channels = grad_y.shape
    height, width = grad_x.shape[1], grad_x.shape[2]
    for n in prange(n_images):  # one thread per image: no two threads add into one pixel
        for yo in range(oh):
            for xo in range(ow):
                for i in range(kh):
                    row = yo * sh - ph + i * dh
                    if row < 0 or row >= height:
                        continue
                    for j in range(kw):
                        column = xo * sw - pw + j * dw
                        if column < 0 or column >= width:
                            continue
                        flat = row * width + column
                        for c in range(channels):
                            won = argmax[n, yo, xo, c] == flat
                            grad_x[n, row, column, c] += grad_y[n, yo, xo, c] if won else 0


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _max_pool2d_tiles_backward(grad_y, argmax, kh, kw, grad_x):
    """The same for windows that tile the image: each pixel lies in at most one window, so
    it is written once (its window's gradient if it won, else 0) instead of zeroed and then
    added to, half the memory traffic. ``0.0 + g`` is what the zeroed sum gives, bit for bit
    (it turns -0.0 into +0.0); pixels past the last whole window get 0."""
    n_images, oh, ow, channels = grad_y.shape
    height, width = grad_x.shape[1], grad_x.shape[2]
    for n in prange(n_images):
        for row in range(height):
            yo = row // kh
            for column in range(width):
                xo, flat = column // kw, row * width + column
                if yo >= oh or xo >= ow:
                    for c in range(channels):
                        grad_x[n, row, column, c] = 0
                    continue
                for c in range(channels):
                    won = argmax[n, yo, xo, c] == flat
                    grad_x[n, row, column, c] = (0.0 + grad_y[n, yo, xo, c]) if won else 0.0


def max_pool2d_backward(grad_y, argmax, image_size, kernel, stride, padding, dilation):
    """for each window, for each tap: grad_x[tap] += grad_y if the tap was the argmax.
    (Walking the window's taps, as the forward did, beats decoding argmax into a row and a
    column: no division, and the loop over channels stays contiguous.)"""
    grad_y, argmax = _channels_last(grad_y), _channels_last(argmax)
    shape = (grad_y.shape[0], *image_size, grad_y.shape[3])
    if _tiles(kernel, stride, padding, dilation):
        grad_x = np.empty(shape, dtype=grad_y.dtype)
        _max_pool2d_tiles_backward(grad_y, argmax, *kernel, grad_x)
    else:
        grad_x = np.zeros(shape, dtype=grad_y.dtype)
        _max_pool2d_backward(grad_y, argmax, *kernel, *stride, *padding, *dilation, grad_x)
    return grad_x.transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# ReLU: one compiled pass each way (NumPy's maximum takes 4x longer: it handles every dtype)


@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _relu(a):
    return 0 if a <= 0 else a  # NaN stays NaN, as in np.maximum(a, 0)


@vectorize(["float32(float32, float32)", "float64(float64, float64)"], cache=True)
def _relu_backward(grad, out):
    return grad * (1 if out > 0 else 0)  # a product, as grad * (out > 0): NaN·0 stays NaN


def relu(a):
    """out = max(a, 0) elementwise, in a's memory layout."""
    if a.dtype not in (np.float32, np.float64):
        return np.maximum(a, 0)
    return _relu(a)


def relu_backward(grad, out):
    """grad · [out > 0] elementwise, in out's memory layout."""
    if grad.dtype != out.dtype or out.dtype not in (np.float32, np.float64):
        return grad * (out > 0)
    return _relu_backward(grad, out)


# --------------------------------------------------------------------------------------------
# bias + ReLU + max pooling in one pass each way (a CNN block's tail: conv -> ReLU -> 2×2 pool)
#
# Separately, the convolution's output is read and written by the bias, read and written again
# by the ReLU, and read by the pooling; backward writes the pooling's image gradient and reads
# it back for the ReLU's. Fused, the output is read once and only the pooled quarter written.
# The arithmetic is the separate ops', step for step (x + b, then ReLU, then the tiling
# kernels' maximum; gradients 0.0 + g, then · [out > 0]), so the bits are theirs.


@njit(inline="always")
def _biased_relu(a, bias, zero):
    """relu(a + bias), as ``_relu`` computes it (NaN stays NaN), in a's type (zero: 0 in it)."""
    a = a + bias
    return zero if a <= 0 else a


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _relu_max_pool2d_tiles_forward(x, bias, kh, kw, y, argmax):
    width = x.shape[2]
    n_images, oh, ow, channels = y.shape
    zero = x.dtype.type(0)
    for task in prange(n_images * oh):
        n, yo = task // oh, task % oh
        for xo in range(ow):
            top, left = yo * kh, xo * kw
            for c in range(channels):
                y[n, yo, xo, c] = _biased_relu(x[n, top, left, c], bias[c], zero)
                argmax[n, yo, xo, c] = top * width + left
            for i in range(kh):
                for j in range(kw):
                    if i == 0 and j == 0:
                        continue
                    flat = (top + i) * width + left + j
                    for c in range(channels):
                        value = _biased_relu(x[n, top + i, left + j, c], bias[c], zero)
                        y[n, yo, xo, c], argmax[n, yo, xo, c] = _keep_larger(
                            value, flat, y[n, yo, xo, c], argmax[n, yo, xo, c])


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _relu_max_pool2d_2x2_forward(x, bias, y, argmax):
    """The same for 2×2 windows (every CNN block here): a window's four taps are read in one
    pass over the channels, so its running maximum stays in a register instead of being
    stored and reloaded after each tap (shapes3's first block: 1.7 -> 0.4 ms). The taps are
    taken in the general kernel's order, so the bits are its bits."""
    width = x.shape[2]
    n_images, oh, ow, channels = y.shape
    zero = x.dtype.type(0)
    for task in prange(n_images * oh):
        n, yo = task // oh, task % oh
        upper, lower = x[n, 2 * yo], x[n, 2 * yo + 1]  # the windows' two image rows
        for xo in range(ow):
            left = 2 * xo
            first = 2 * yo * width + left  # flat index of the window's top-left tap
            for c in range(channels):
                b = bias[c]
                best, where = _biased_relu(upper[left, c], b, zero), first
                best, where = _keep_larger(_biased_relu(upper[left + 1, c], b, zero),
                                           first + 1, best, where)
                best, where = _keep_larger(_biased_relu(lower[left, c], b, zero),
                                           first + width, best, where)
                best, where = _keep_larger(_biased_relu(lower[left + 1, c], b, zero),
                                           first + width + 1, best, where)
                y[n, yo, xo, c] = best
                argmax[n, yo, xo, c] = where


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _relu_max_pool2d_tiles_backward(grad_y, y, argmax, kh, kw, grad_x):
    """Window by window, each of its image rows in turn: no division or bounds test per
    pixel, as a walk over the image's pixels needs (3-4x faster than that walk, measured)."""
    n_images, oh, ow, channels = grad_y.shape
    height, width = grad_x.shape[1], grad_x.shape[2]
    zero, one = grad_x.dtype.type(0), grad_x.dtype.type(1)
    for task in prange(n_images * oh):
        n, yo = task // oh, task % oh
        for i in range(kh):
            row = yo * kh + i
            out = grad_x[n, row]
            for xo in range(ow):
                left = xo * kw
                for j in range(kw):
                    flat = row * width + left + j
                    for c in range(channels):
                        # the pixel that won its window holds the window's ReLU output y;
                        # 0 + g turns -0.0 into +0.0, as adding into a zeroed image would
                        gate = one if y[n, yo, xo, c] > 0 else zero
                        g = (zero + grad_y[n, yo, xo, c]) * gate
                        out[left + j, c] = g if argmax[n, yo, xo, c] == flat else zero
            for column in range(ow * kw, width):  # past the row's last whole window
                for c in range(channels):
                    out[column, c] = zero
    for n in prange(n_images):  # rows past the last whole window
        for row in range(oh * kh, height):
            for column in range(width):
                for c in range(channels):
                    grad_x[n, row, column, c] = zero


def relu_max_pool2d_forward(x, bias, kernel):
    """y, argmax = max_pool2d(relu(x + bias)) over windows that tile the image (stride =
    kernel, no padding), bias per channel (None: no bias); argmax as max_pool2d_forward's."""
    x = _channels_last(x)
    n, h, w, c = x.shape
    out_size = (h // kernel[0], w // kernel[1])
    bias = np.zeros(c, dtype=x.dtype) if bias is None else bias  # (x + 0 keeps ReLU's result)
    y = np.empty((n, *out_size, c), dtype=x.dtype)
    argmax = np.empty((n, *out_size, c), dtype=np.int32)
    if tuple(kernel) == (2, 2):
        _relu_max_pool2d_2x2_forward(x, bias, y, argmax)
    else:
        _relu_max_pool2d_tiles_forward(x, bias, *kernel, y, argmax)
    return y.transpose(0, 3, 1, 2), argmax.transpose(0, 3, 1, 2)


def relu_max_pool2d_backward(grad_y, y, argmax, image_size, kernel):
    """dL/dx of relu_max_pool2d_forward (the bias's gradient is its sum over pixels): each
    window's gradient goes to its winning pixel if the window's output y was positive."""
    grad_y, y, argmax = _channels_last(grad_y), _channels_last(y), _channels_last(argmax)
    grad_x = np.empty((grad_y.shape[0], *image_size, grad_y.shape[3]), dtype=grad_y.dtype)
    _relu_max_pool2d_tiles_backward(grad_y, y, argmax, *kernel, grad_x)
    return grad_x.transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# Winograd F(2×2, 3×3): the transforms between images and 4×4 tiles (numpy_ref says the math;
# here each tile's 16 values are combined with the ±1 coefficients of Bᵀ and Aᵀ written out)

PLANE_GAP = 16  # elements between two of the 16 planes: without it they lie a power of two
# apart, and the 16 streams a transform reads or writes evict each other from the cache
# (4K aliasing; the input transform ran 8x slower)


def winograd_empty(tiles_total, channels, dtype):
    """An uninitialised (16, P, C) array whose 16 planes do not alias in the cache."""
    size = tiles_total * channels
    return np.empty((16, size + PLANE_GAP), dtype=dtype)[:, :size].reshape(
        16, tiles_total, channels)


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _winograd_input(padded, th, tw, V):
    n_images, channels = padded.shape[0], padded.shape[3]
    for task in prange(n_images * th):
        n, ty = task // th, task % th
        r = 2 * ty
        for tx in range(tw):
            p, s = (n * th + ty) * tw + tx, 2 * tx
            for c in range(channels):
                x0, x1, x2, x3 = (padded[n, r, s, c], padded[n, r, s + 1, c],
                                  padded[n, r, s + 2, c], padded[n, r, s + 3, c])
                y0, y1, y2, y3 = (padded[n, r + 1, s, c], padded[n, r + 1, s + 1, c],
                                  padded[n, r + 1, s + 2, c], padded[n, r + 1, s + 3, c])
                z0, z1, z2, z3 = (padded[n, r + 2, s, c], padded[n, r + 2, s + 1, c],
                                  padded[n, r + 2, s + 2, c], padded[n, r + 2, s + 3, c])
                w0, w1, w2, w3 = (padded[n, r + 3, s, c], padded[n, r + 3, s + 1, c],
                                  padded[n, r + 3, s + 2, c], padded[n, r + 3, s + 3, c])
                # t = Bᵀ d: rows x - z, y + z, z - y, y - w (of the tile's rows x, y, z, w)
                a0, a1, a2, a3 = x0 - z0, x1 - z1, x2 - z2, x3 - z3
                b0, b1, b2, b3 = y0 + z0, y1 + z1, y2 + z2, y3 + z3
                e0, e1, e2, e3 = z0 - y0, z1 - y1, z2 - y2, z3 - y3
                f0, f1, f2, f3 = y0 - w0, y1 - w1, y2 - w2, y3 - w3
                # v = t B: the same combination along each row
                V[0, p, c], V[1, p, c], V[2, p, c], V[3, p, c] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
                V[4, p, c], V[5, p, c], V[6, p, c], V[7, p, c] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
                V[8, p, c], V[9, p, c], V[10, p, c], V[11, p, c] = (e0 - e2, e1 + e2, e2 - e1,
                                                                    e1 - e3)
                V[12, p, c], V[13, p, c], V[14, p, c], V[15, p, c] = (f0 - f2, f1 + f2, f2 - f1,
                                                                      f1 - f3)


def winograd_input(x, padding, tiles):
    """V[4i+j, p, c] = (Bᵀ d B)[i, j], d the 4×4 tile p of channel c of x zero-padded."""
    x = _channels_last(x)
    (n, h, w, c), (th, tw), (ph, pw) = x.shape, tiles, padding
    padded = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), dtype=x.dtype)
    padded[:, ph: ph + h, pw: pw + w] = x
    V = winograd_empty(n * th * tw, c, x.dtype)
    _winograd_input(padded, th, tw, V)
    return V


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _winograd_output(M, th, tw, y):
    n_images, oh, ow, channels = y.shape
    for task in prange(n_images * th):
        n, ty = task // th, task % th
        r = 2 * ty
        for tx in range(tw):
            p, s = (n * th + ty) * tw + tx, 2 * tx
            right, below = s + 1 < ow, r + 1 < oh
            for k in range(channels):
                # Aᵀ m: rows m0 + m1 + m2 and m1 - m2 - m3 of the tile, per column j ...
                a0 = M[0, p, k] + M[4, p, k] + M[8, p, k]
                a1 = M[1, p, k] + M[5, p, k] + M[9, p, k]
                a2 = M[2, p, k] + M[6, p, k] + M[10, p, k]
                a3 = M[3, p, k] + M[7, p, k] + M[11, p, k]
                b0 = M[4, p, k] - M[8, p, k] - M[12, p, k]
                b1 = M[5, p, k] - M[9, p, k] - M[13, p, k]
                b2 = M[6, p, k] - M[10, p, k] - M[14, p, k]
                b3 = M[7, p, k] - M[11, p, k] - M[15, p, k]
                # ... then the same along each row: the 2×2 output tile (cut at the image edge)
                y[n, r, s, k] = a0 + a1 + a2
                if right:
                    y[n, r, s + 1, k] = a1 - a2 - a3
                if below:
                    y[n, r + 1, s, k] = b0 + b1 + b2
                    if right:
                        y[n, r + 1, s + 1, k] = b1 - b2 - b3


def winograd_output(M, tiles, out_size):
    """y (N, K, OH, OW): each 2×2 output tile Aᵀ m A, m the 4×4 of tile p of M (16, P, K)."""
    th, tw = tiles
    y = np.empty((M.shape[1] // (th * tw), *out_size, M.shape[2]), dtype=M.dtype)
    _winograd_output(M, th, tw, y)
    return y.transpose(0, 3, 1, 2)


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _winograd_output_backward(g, th, tw, dM):
    n_images, oh, ow, channels = g.shape
    zero = g.dtype.type(0)
    for task in prange(n_images * th):
        n, ty = task // th, task % th
        r = 2 * ty
        for tx in range(tw):
            p, s = (n * th + ty) * tw + tx, 2 * tx
            right, below = s + 1 < ow, r + 1 < oh
            for k in range(channels):
                g00 = g[n, r, s, k]
                g01 = g[n, r, s + 1, k] if right else zero
                g10 = g[n, r + 1, s, k] if below else zero
                g11 = g[n, r + 1, s + 1, k] if right and below else zero
                # u = A g: rows g0, g0 + g1, g0 - g1, -g1 (of the tile's rows g0, g1) ...
                u00, u10, u20, u30 = g00, g00 + g10, g00 - g10, -g10
                u01, u11, u21, u31 = g01, g01 + g11, g01 - g11, -g11
                # ... and dM = u Aᵀ: each row (v0, v1) becomes (v0, v0 + v1, v0 - v1, -v1)
                dM[0, p, k], dM[1, p, k], dM[2, p, k], dM[3, p, k] = (u00, u00 + u01,
                                                                      u00 - u01, -u01)
                dM[4, p, k], dM[5, p, k], dM[6, p, k], dM[7, p, k] = (u10, u10 + u11,
                                                                      u10 - u11, -u11)
                dM[8, p, k], dM[9, p, k], dM[10, p, k], dM[11, p, k] = (u20, u20 + u21,
                                                                        u20 - u21, -u21)
                dM[12, p, k], dM[13, p, k], dM[14, p, k], dM[15, p, k] = (u30, u30 + u31,
                                                                          u30 - u31, -u31)


def winograd_output_backward(grad_y, tiles):
    """dM (16, P, K) = A g Aᵀ for each 2×2 tile g of grad_y (zero past the image's edge):
    the adjoint of ``winograd_output``."""
    g = _channels_last(grad_y)
    th, tw = tiles
    dM = winograd_empty(g.shape[0] * th * tw, g.shape[3], g.dtype)
    _winograd_output_backward(g, th, tw, dM)
    return dM


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _winograd_input_backward(dV, th, tw, padded):
    n_images, channels = padded.shape[0], padded.shape[3]
    for n in prange(n_images):  # one thread per image: tiles overlap, images do not
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                p, s = (n * th + ty) * tw + tx, 2 * tx
                for c in range(channels):
                    # e = dv B: each row (v0, v1, v2, v3) -> (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
                    a0, a1, a2, a3 = _adjoint_row(dV[0, p, c], dV[1, p, c], dV[2, p, c],
                                                  dV[3, p, c])
                    b0, b1, b2, b3 = _adjoint_row(dV[4, p, c], dV[5, p, c], dV[6, p, c],
                                                  dV[7, p, c])
                    e0, e1, e2, e3 = _adjoint_row(dV[8, p, c], dV[9, p, c], dV[10, p, c],
                                                  dV[11, p, c])
                    f0, f1, f2, f3 = _adjoint_row(dV[12, p, c], dV[13, p, c], dV[14, p, c],
                                                  dV[15, p, c])
                    # ... then the same down each column, added onto the tile's 4×4 pixels
                    for j, (x0, x1, x2, x3) in enumerate(((a0, b0, e0, f0), (a1, b1, e1, f1),
                                                          (a2, b2, e2, f2), (a3, b3, e3, f3))):
                        column = _adjoint_row(x0, x1, x2, x3)
                        padded[n, r, s + j, c] += column[0]
                        padded[n, r + 1, s + j, c] += column[1]
                        padded[n, r + 2, s + j, c] += column[2]
                        padded[n, r + 3, s + j, c] += column[3]


@njit(inline="always")
def _adjoint_row(v0, v1, v2, v3):
    """B v, B = (Bᵀ)ᵀ: what each of the 4 inputs of a Bᵀ row combination receives."""
    return v0, v1 - v2 + v3, v1 + v2 - v0, -v3


def winograd_input_backward(dV, tiles, image_size, padding):
    """dx (N, C, H, W): B dv Bᵀ of each tile's dv (4×4 of dV (16, P, C)) added back onto the
    pixels of its 4×4 tile (tiles overlap by 2), padding cut off: the adjoint of
    ``winograd_input``."""
    (th, tw), (h, w), (ph, pw) = tiles, image_size, padding
    padded = np.zeros((dV.shape[1] // (th * tw), 2 * th + 2, 2 * tw + 2, dV.shape[2]),
                      dtype=dV.dtype)
    _winograd_input_backward(dV, th, tw, padded)
    return padded[:, ph: ph + h, pw: pw + w].transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# row-wise log softmax (the stable core of cross-entropy)


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _log_softmax(x, out):
    rows, columns = x.shape
    for r in prange(rows):
        largest = x[r, 0]
        for k in range(1, columns):
            largest = max(largest, x[r, k])
        total = 0.0
        for k in range(columns):
            total += math.exp(x[r, k] - largest)
        log_total = math.log(total) + largest
        for k in range(columns):
            out[r, k] = x[r, k] - log_total


def log_softmax(x):
    """for each row r:  out[r] = x[r] - (max(x[r]) + log(sum(exp(x[r] - max(x[r])))))."""
    out = np.empty_like(x)
    _log_softmax(x, out)
    return out


# --------------------------------------------------------------------------------------------
# fused Adam / AdamW update: one pass over memory instead of ten NumPy passes


@njit(parallel=PARALLEL, cache=True, error_model="numpy")
def _adam_update(param, grad, exp_avg, exp_avg_sq, step_size, beta1, beta2, eps,
                 inv_sqrt_bias_correction2, l2, shrink):
    one = param.dtype.type(1)
    for k in prange(param.size):
        g = grad[k] + l2 * param[k]
        m = beta1 * exp_avg[k] + (one - beta1) * g
        v = beta2 * exp_avg_sq[k] + (one - beta2) * g * g
        exp_avg[k] = m
        exp_avg_sq[k] = v
        param[k] = shrink * param[k] - step_size * m / (math.sqrt(v) * inv_sqrt_bias_correction2 + eps)


def adam_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                bias_correction1, bias_correction2, weight_decay, decoupled):
    """In place, elementwise, in the parameter's dtype (as PyTorch computes it):

        g = grad + l2·p                       (Adam: l2 = wd;  AdamW: l2 = 0)
        m = β1 m + (1-β1) g,   v = β2 v + (1-β2) g²
        p = shrink·p - step_size · m / (sqrt(v)/sqrt(bc2) + eps)
            with shrink = 1 - lr·wd for AdamW (1 for Adam) and step_size = lr / bc1
    """
    scalar = param.dtype.type
    flat = [a.reshape(-1) for a in (param, np.ascontiguousarray(grad), exp_avg, exp_avg_sq)]
    l2 = 0.0 if decoupled else weight_decay
    shrink = 1.0 - lr * weight_decay if decoupled else 1.0
    _adam_update(*flat, scalar(lr / bias_correction1), scalar(beta1), scalar(beta2),
                 scalar(eps), scalar(1 / math.sqrt(bias_correction2)), scalar(l2), scalar(shrink))


# --------------------------------------------------------------------------------------------
# scatter-add and erf


@njit(cache=True, error_model="numpy")
def _scatter_add_rows(target, index, values):
    for r in range(index.shape[0]):
        row = index[r]
        for k in range(target.shape[1]):
            target[row, k] += values[r, k]


def scatter_add(target, index, values):
    """target[index] += values with repeats accumulated.

    Whole rows picked by a 1-D integer index (embedding gradients, a graph's messages) take a
    compiled loop: for r: target[index[r], ...] += values[r, ...]. Any other index goes to
    NumPy's ``add.at``.
    """
    if (isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iu"
            and target.ndim >= 2 and target.flags.c_contiguous
            and values.shape == (len(index),) + target.shape[1:]):
        _scatter_add_rows(target.reshape(len(target), -1), index,
                          np.ascontiguousarray(values, dtype=target.dtype).reshape(
                              len(index), -1))
    else:
        np.add.at(target, index, values)


# --------------------------------------------------------------------------------------------
# segments: the edges e with index[e] == n, reduced per node n, in edge order (deterministic)


@njit(cache=True)
def _segment_max(rows, index, out, argmax):
    for e in range(rows.shape[0]):
        n = index[e]
        for f in range(rows.shape[1]):
            if argmax[n, f] < 0 or rows[e, f] > out[n, f]:
                out[n, f] = rows[e, f]
                argmax[n, f] = e


def segment_max(values, index, num_segments):
    """(out, argmax): for e: if e is the first or values[e] > out[index[e]]: take it. A segment
    with no e keeps 0 and argmax −1."""
    rows = np.ascontiguousarray(values).reshape(len(values), -1)
    out = np.zeros((num_segments, rows.shape[1]), dtype=values.dtype)
    argmax = np.full(out.shape, -1, dtype=np.int64)
    _segment_max(rows, index, out, argmax)
    shape = (num_segments,) + values.shape[1:]
    return out.reshape(shape), argmax.reshape(shape)


@njit(cache=True)
def _segment_softmax(rows, index, top, total, alpha):
    for e in range(rows.shape[0]):
        n = index[e]
        for f in range(rows.shape[1]):
            alpha[e, f] = math.exp(rows[e, f] - top[n, f])
            total[n, f] += alpha[e, f]
    for e in range(rows.shape[0]):
        n = index[e]
        for f in range(rows.shape[1]):
            alpha[e, f] /= total[n, f]


def segment_softmax(scores, index, num_segments):
    """for e: α[e] = exp(s[e] − max_n); total[n] += α[e];  then for e: α[e] /= total[n]."""
    rows = np.ascontiguousarray(scores).reshape(len(scores), -1)
    top, _ = segment_max(rows, index, num_segments)
    alpha = np.empty_like(rows)
    _segment_softmax(rows, index, top, np.zeros_like(top), alpha)
    return alpha.reshape(scores.shape)


@njit(cache=True)
def _segment_softmax_backward(alpha, grad, index, weighted, out):
    for e in range(alpha.shape[0]):
        n = index[e]
        for f in range(alpha.shape[1]):
            weighted[n, f] += alpha[e, f] * grad[e, f]
    for e in range(alpha.shape[0]):
        n = index[e]
        for f in range(alpha.shape[1]):
            out[e, f] = alpha[e, f] * (grad[e, f] - weighted[n, f])


def segment_softmax_backward(alpha, grad, index, num_segments):
    """for e: S[n] += α[e] g[e];  then for e: ds[e] = α[e] (g[e] − S[n])."""
    a = np.ascontiguousarray(alpha).reshape(len(alpha), -1)
    g = np.ascontiguousarray(grad, dtype=alpha.dtype).reshape(a.shape)
    out = np.empty_like(a)
    _segment_softmax_backward(a, g, index, np.zeros((num_segments, a.shape[1]), a.dtype), out)
    return out.reshape(alpha.shape)


@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """The error function, elementwise."""
    return math.erf(x)
