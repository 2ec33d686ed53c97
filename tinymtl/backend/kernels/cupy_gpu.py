"""GPU kernels written with CuPy; the same functions, names and results as ``numpy_ref``.

Elementwise kernels are compiled once, at import (module-level ``cupy.ElementwiseKernel``
objects, as Chainer does); each thread computes one output element, so no atomics are needed
and results are deterministic.
"""


import cupy
import cupyx
import cupyx.scipy.special

_im2col_kernel = cupy.ElementwiseKernel(
    "raw T x, int32 c, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 ph, int32 pw, int32 dh, int32 dw",
    "T col",
    """
    // i enumerates col in (n, oh, ow, kh, kw, c) order
    int ch = i % c;            int rest = i / c;
    int j = rest % kw;         rest /= kw;
    int k = rest % kh;         rest /= kh;
    int xo = rest % ow;        rest /= ow;
    int yo = rest % oh;        int n = rest / oh;
    int row = yo * sh - ph + k * dh;
    int column = xo * sw - pw + j * dw;
    col = (0 <= row && row < h && 0 <= column && column < w)
        ? x[((n * c + ch) * h + row) * w + column] : (T)0;
    """,
    "tinymtl_im2col",
)

_col2im_kernel = cupy.ElementwiseKernel(
    "raw T col, int32 c, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 ph, int32 pw, int32 dh, int32 dw",
    "T img",
    """
    // i enumerates img in (n, c, h, w) order; gather every col entry that read this pixel
    int column = i % w;        int rest = i / w;
    int row = rest % h;        rest /= h;
    int ch = rest % c;         int n = rest / c;
    T total = 0;
    for (int k = 0; k < kh; ++k) {
        int top = row + ph - k * dh;
        if (top < 0 || top % sh != 0) continue;
        int yo = top / sh;
        if (yo >= oh) continue;
        for (int j = 0; j < kw; ++j) {
            int left = column + pw - j * dw;
            if (left < 0 || left % sw != 0) continue;
            int xo = left / sw;
            if (xo >= ow) continue;
            total += col[((((n * oh + yo) * ow + xo) * kh + k) * kw + j) * c + ch];
        }
    }
    img = total;
    """,
    "tinymtl_col2im",
)

_max_pool_kernel = cupy.ElementwiseKernel(
    "raw T x, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 ph, int32 pw, int32 dh, int32 dw",
    "T y, int64 argmax",
    """
    int xo = i % ow;  int rest = i / ow;
    int yo = rest % oh;  int plane = rest / oh;
    T best = 0;  long long best_index = -1;
    for (int k = 0; k < kh; ++k) {
        int row = yo * sh - ph + k * dh;
        if (row < 0 || row >= h) continue;
        for (int j = 0; j < kw; ++j) {
            int column = xo * sw - pw + j * dw;
            if (column < 0 || column >= w) continue;
            T value = x[(plane * h + row) * w + column];
            if (best_index < 0 || value > best) { best = value; best_index = row * w + column; }
        }
    }
    y = best_index < 0 ? -CUDART_INF : best;  argmax = best_index;  // all padding: -inf
    """,
    "tinymtl_max_pool2d",
)

_adam_kernel = cupy.ElementwiseKernel(
    "T grad, float64 lr, float64 beta1, float64 beta2, float64 eps, float64 bc1, "
    "float64 bc2, float64 wd, bool decoupled",
    "T param, T exp_avg, T exp_avg_sq",
    """
    double g = grad;
    if (decoupled) param = param * (1.0 - lr * wd); else g += wd * (double)param;
    exp_avg = beta1 * exp_avg + (1.0 - beta1) * g;
    exp_avg_sq = beta2 * exp_avg_sq + (1.0 - beta2) * g * g;
    double denom = sqrt((double)exp_avg_sq) / sqrt(bc2) + eps;
    param = param - (lr / bc1) * exp_avg / denom;
    """,
    "tinymtl_adam",
)


def im2col(x, kernel, stride, padding, dilation, out_size, taps_first=False):
    """(numba_cpu's; ``taps_first`` changes nothing here: one GPU thread per output value.)"""
    n, c, h, w = x.shape
    col = cupy.empty((n, *out_size, *kernel, c), dtype=x.dtype)
    _im2col_kernel(cupy.ascontiguousarray(x), c, h, w, *out_size, *kernel, *stride, *padding,
                   *dilation, col)
    return col


def col2im(col, image_size, stride, padding, dilation):
    n, oh, ow, kh, kw, c = col.shape
    img = cupy.empty((n, c, *image_size), dtype=col.dtype)
    _col2im_kernel(cupy.ascontiguousarray(col), c, *image_size, oh, ow, kh, kw, *stride,
                   *padding, *dilation, img)
    return img


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    n, c, h, w = x.shape
    y = cupy.empty((n, c, *out_size), dtype=x.dtype)
    argmax = cupy.empty((n, c, *out_size), dtype=cupy.int64)
    _max_pool_kernel(cupy.ascontiguousarray(x), h, w, *out_size, *kernel, *stride, *padding,
                     *dilation, y, argmax)
    return y, argmax


def max_pool2d_backward(grad_y, argmax, image_size, kernel=None, stride=None, padding=None,
                        dilation=None):
    n, c = grad_y.shape[:2]
    h, w = image_size
    grad_x = cupy.zeros((n * c, h * w), dtype=grad_y.dtype)
    rows = cupy.repeat(cupy.arange(n * c), argmax[0, 0].size)
    found = argmax.reshape(-1) >= 0  # a window wholly in the padding sends no gradient
    cupyx.scatter_add(grad_x, (rows[found], argmax.reshape(-1)[found]),
                      grad_y.reshape(-1)[found])
    return grad_x.reshape(n, c, h, w)


# Winograd's transforms: numpy_ref's array code, written against xp, runs on CuPy as it is
from tinymtl.backend.kernels.numpy_ref import (  # noqa: E402
    winograd_input, winograd_input_backward, winograd_output, winograd_output_backward)


def winograd_empty(tiles_total, channels, dtype):
    return cupy.empty((16, tiles_total, channels), dtype=dtype)


def relu(a):
    return cupy.maximum(a, 0)


_relu_backward = cupy.ElementwiseKernel(
    "T grad, T out", "T y", "y = grad * (out > 0 ? (T)1 : (T)0)", "tinymtl_relu_backward")


def relu_backward(grad, out):
    return _relu_backward(grad, out)


def relu_max_pool2d_forward(x, bias, kernel):
    """(numpy_ref's: the bias, the ReLU and the pooling, one after the other.)"""
    h, w = x.shape[2:]
    if bias is not None:
        x = x + bias.reshape(1, -1, 1, 1)
    return max_pool2d_forward(relu(x), kernel, kernel, (0, 0), (1, 1),
                              (h // kernel[0], w // kernel[1]))


def relu_max_pool2d_backward(grad_y, y, argmax, image_size, kernel):
    routed = max_pool2d_backward(grad_y, argmax, image_size)
    return relu_backward(routed, max_pool2d_backward(y, argmax, image_size))


def log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - cupy.log(cupy.exp(shifted).sum(axis=1, keepdims=True))


def adam_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                bias_correction1, bias_correction2, weight_decay, decoupled):
    _adam_kernel(grad, float(lr), float(beta1), float(beta2), float(eps),
                 float(bias_correction1), float(bias_correction2), float(weight_decay),
                 bool(decoupled), param, exp_avg, exp_avg_sq)


def scatter_add(target, index, values):
    cupyx.scatter_add(target, index, values)


# -- segments: one thread per (node, feature) walks the node's edges in edge order (a CSR
# built by a stable sort), so no atomics are needed and the result is deterministic
_segment_kernel = cupy.ElementwiseKernel(
    "raw T values, raw int64 order, raw int64 ptr, int64 features, int32 mode",
    "T out, int64 arg",
    """
    long long n = i / features, f = i % features;
    T acc = 0; long long best = -1;
    for (long long k = ptr[n]; k < ptr[n + 1]; ++k) {
        long long e = order[k];
        T v = values[e * features + f];
        if (mode == 0) { acc += v; }
        else if (best < 0 || v > acc) { acc = v; best = e; }
    }
    out = acc; arg = best;
    """,
    "tinymtl_segment_reduce",
)


def _segments(values, index, num_segments, mode):
    rows = cupy.ascontiguousarray(values).reshape(len(values), -1)
    index = index.astype(cupy.int64, copy=False)
    order = cupy.argsort(index, kind="stable")
    ptr = cupy.searchsorted(index[order], cupy.arange(num_segments + 1))
    out = cupy.empty((num_segments, rows.shape[1]), dtype=values.dtype)
    arg = cupy.empty(out.shape, dtype=cupy.int64)
    _segment_kernel(rows, order, ptr, rows.shape[1], mode, out, arg)
    return out, arg


def segment_max(values, index, num_segments):
    out, arg = _segments(values, index, num_segments, 1)
    shape = (num_segments,) + values.shape[1:]
    return out.reshape(shape), arg.reshape(shape)


def segment_softmax(scores, index, num_segments):
    top, _ = _segments(scores, index, num_segments, 1)
    shifted = cupy.exp(scores.reshape(len(scores), -1) - top[index])
    total, _ = _segments(shifted, index, num_segments, 0)
    return (shifted / total[index]).reshape(scores.shape)


def segment_softmax_backward(alpha, grad, index, num_segments):
    rows = alpha.reshape(len(alpha), -1)
    product = rows * grad.reshape(rows.shape)
    weighted, _ = _segments(product, index, num_segments, 0)
    return (rows * (grad.reshape(rows.shape) - weighted[index])).reshape(alpha.shape)


def erf(x):
    return cupyx.scipy.special.erf(x)


