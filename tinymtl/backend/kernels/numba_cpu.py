"""CPU kernels compiled by Numba; the same functions, names and results as ``numpy_ref``.

Each kernel is a plain loop nest (the pseudo-loop of its docstring, nothing hidden) compiled with
``cache=True`` so the compile cost is paid once per machine. To step through one in a debugger,
run with ``NUMBA_DISABLE_JIT=1``: the loops then execute as ordinary Python.
Outer loops use ``prange``, split across threads so that no two threads write the same element,
which keeps every result bitwise deterministic.
"""

import math

import numpy as np
from numba import njit, prange, vectorize

# --------------------------------------------------------------------------------------------
# im2col / col2im: the data movement of convolution


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, col):
    n_images, channels, height, width = x.shape
    oh, ow = col.shape[1], col.shape[2]
    for task in prange(n_images * oh):
        n, y = task // oh, task % oh
        for xo in range(ow):
            for c in range(channels):
                for i in range(kh):
                    row = y * sh - ph + i * dh
                    for j in range(kw):
                        column = xo * sw - pw + j * dw
                        if 0 <= row < height and 0 <= column < width:
                            col[n, y, xo, c, i, j] = x[n, c, row, column]
                        else:
                            col[n, y, xo, c, i, j] = 0


def im2col(x, kernel, stride, padding, dilation, out_size):
    """for n, oh, ow, c, i, j:  col[n,oh,ow,c,i,j] = x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw] or 0."""
    n, c = x.shape[:2]
    col = np.empty((n, *out_size, c, *kernel), dtype=x.dtype)
    _im2col(x, *kernel, *stride, *padding, *dilation, col)
    return col


@njit(parallel=True, cache=True)
def _col2im(col, sh, sw, ph, pw, dh, dw, out):
    n_images, oh, ow, channels, kh, kw = col.shape
    height, width = out.shape[2], out.shape[3]
    for n in prange(n_images):  # one thread per image: no two threads add into one pixel
        for y in range(oh):
            for xo in range(ow):
                for c in range(channels):
                    for i in range(kh):
                        row = y * sh - ph + i * dh
                        if row < 0 or row >= height:
                            continue
                        for j in range(kw):
                            column = xo * sw - pw + j * dw
                            if 0 <= column < width:
                                out[n, c, row, column] += col[n, y, xo, c, i, j]


def col2im(col, image_size, stride, padding, dilation):
    """for n, oh, ow, c, i, j:  x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw] += col[n,oh,ow,c,i,j]."""
    n, _, _, c = col.shape[:4]
    out = np.zeros((n, c, *image_size), dtype=col.dtype)
    _col2im(col, *stride, *padding, *dilation, out)
    return out


# --------------------------------------------------------------------------------------------
# max pooling


@njit(parallel=True, cache=True)
def _max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, y, argmax):
    n_images, channels, height, width = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for task in prange(n_images * channels):
        n, c = task // channels, task % channels
        for yo in range(oh):
            for xo in range(ow):
                best = -np.inf
                best_index = -1
                for i in range(kh):
                    row = yo * sh - ph + i * dh
                    if row < 0 or row >= height:
                        continue
                    for j in range(kw):
                        column = xo * sw - pw + j * dw
                        if 0 <= column < width and (best_index < 0 or x[n, c, row, column] > best):
                            best = x[n, c, row, column]
                            best_index = row * width + column
                y[n, c, yo, xo] = best
                argmax[n, c, yo, xo] = best_index


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """for each window: y = max(x[window]); argmax = flat index (row*W + col) of the first max."""
    n, c = x.shape[:2]
    y = np.empty((n, c, *out_size), dtype=x.dtype)
    argmax = np.empty((n, c, *out_size), dtype=np.int64)
    _max_pool2d_forward(x, *kernel, *stride, *padding, *dilation, y, argmax)
    return y, argmax


@njit(parallel=True, cache=True)
def _max_pool2d_backward(grad_y, argmax, grad_x):
    n_images, channels, oh, ow = grad_y.shape
    width = grad_x.shape[3]
    for task in prange(n_images * channels):
        n, c = task // channels, task % channels
        for yo in range(oh):
            for xo in range(ow):
                index = argmax[n, c, yo, xo]
                grad_x[n, c, index // width, index % width] += grad_y[n, c, yo, xo]


def max_pool2d_backward(grad_y, argmax, image_size):
    """for each window: grad_x[argmax] += grad_y."""
    n, c = grad_y.shape[:2]
    grad_x = np.zeros((n, c, *image_size), dtype=grad_y.dtype)
    _max_pool2d_backward(grad_y, argmax, grad_x)
    return grad_x


# --------------------------------------------------------------------------------------------
# row-wise log softmax (the stable core of cross-entropy)


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def _adam_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                 bias_correction1, bias_correction2, weight_decay, decoupled):
    step_size = lr / bias_correction1
    sqrt_bias_correction2 = math.sqrt(bias_correction2)
    shrink = 1.0 - lr * weight_decay
    for k in prange(param.size):
        g = grad[k]
        if decoupled:
            param[k] *= shrink
        else:
            g += weight_decay * param[k]
        exp_avg[k] = beta1 * exp_avg[k] + (1.0 - beta1) * g
        exp_avg_sq[k] = beta2 * exp_avg_sq[k] + (1.0 - beta2) * g * g
        denom = math.sqrt(exp_avg_sq[k]) / sqrt_bias_correction2 + eps
        param[k] -= step_size * exp_avg[k] / denom


def adam_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                bias_correction1, bias_correction2, weight_decay, decoupled):
    """In place, elementwise: the update written out in ``numpy_ref.adam_update``."""
    flat = [a.reshape(-1) for a in (param, np.ascontiguousarray(grad), exp_avg, exp_avg_sq)]
    _adam_update(*flat, float(lr), float(beta1), float(beta2), float(eps),
                 float(bias_correction1), float(bias_correction2), float(weight_decay),
                 bool(decoupled))


# --------------------------------------------------------------------------------------------
# scatter-add and erf


def scatter_add(target, index, values):
    """target[index] += values with repeats accumulated (NumPy's add.at is already compiled)."""
    np.add.at(target, index, values)


@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """The error function, elementwise."""
    return math.erf(x)
