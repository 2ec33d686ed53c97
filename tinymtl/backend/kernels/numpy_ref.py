"""Reference kernels in plain NumPy: slow where it must be, obviously right everywhere.

Shapes and conventions shared by every kernel module:
  x      (N, C, H, W) images
  col    (N, OH, OW, KH, KW, C): one row per output pixel, holding the patch it sees, so that a
         convolution is one matrix product ``col.reshape(N*OH*OW, KH*KW*C) @ W'`` with W' the
         weight ordered (KH, KW, C) per output channel. Channels come last so that, in
         channels-last memory, the innermost loop of every kernel reads contiguous values.
  kernel, stride, padding, dilation, out_size: (height, width) pairs
Images are (N, C, H, W) as far as the caller can tell, in any memory layout.
"""

import math

import numpy as np

from tinymtl.backend.device import get_array_module


def im2col(x, kernel, stride, padding, dilation, out_size, taps_first=False):
    """col[n, oh, ow, i, j, c] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 outside).
    (``taps_first`` would allow another memory layout; this one is always C-contiguous.)"""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, c = x.shape[:2]
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    col = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i * dh: i * dh + sh * oh: sh, j * dw: j * dw + sw * ow: sw]
            col[:, :, :, i, j, :] = window[:, :, :oh, :ow].transpose(0, 2, 3, 1)
    return col


def col2im(col, image_size, stride, padding, dilation):
    """The adjoint of im2col: every col entry is added back onto the pixel it was read from."""
    n, oh, ow, kh, kw, c = col.shape
    (h, w), (sh, sw), (ph, pw), (dh, dw) = image_size, stride, padding, dilation
    padded = np.zeros((n, c, h + 2 * ph + sh, w + 2 * pw + sw), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = col[:, :, :, i, j, :].transpose(0, 3, 1, 2)
            padded[:, :, i * dh: i * dh + sh * oh: sh, j * dw: j * dw + sw * ow: sw] += patch
    return padded[:, :, ph: ph + h, pw: pw + w]


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """y = max over each window (padding never wins); argmax = flat index h*W + w of the max, or
    -1 for a window wholly in the padding (y = -inf there, as in PyTorch)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf, dtype=x.dtype)
    padded[:, :, ph: ph + h, pw: pw + w] = x
    windows = np.empty((n, c, oh, ow, kh * kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            windows[..., i * kw + j] = padded[
                :, :, i * dh: i * dh + sh * oh: sh, j * dw: j * dw + sw * ow: sw
            ][:, :, :oh, :ow]
    best = windows.argmax(axis=-1)  # first maximum wins, as in the compiled kernels
    y = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
    i, j = best // kw, best % kw
    rows = np.arange(oh)[:, None] * sh - ph + i * dh
    cols = np.arange(ow)[None, :] * sw - pw + j * dw
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    return y, np.where(inside, rows * w + cols, -1).astype(np.int64)


def max_pool2d_backward(grad_y, argmax, image_size, kernel=None, stride=None, padding=None,
                        dilation=None):
    """Route each output gradient to the input pixel that was the max (adding on overlaps).
    (argmax says where that pixel is; the window's geometry, which the compiled kernels use to
    walk each window's taps, is not needed here.)"""
    n, c = grad_y.shape[:2]
    h, w = image_size
    grad_x = np.zeros((n * c, h * w), dtype=grad_y.dtype)
    rows = np.repeat(np.arange(n * c), argmax[0, 0].size)
    found = argmax.reshape(-1) >= 0  # a window wholly in the padding sends no gradient
    np.add.at(grad_x, (rows[found], argmax.reshape(-1)[found]), grad_y.reshape(-1)[found])
    return grad_x.reshape(n, c, h, w)


def relu(a):
    """max(a, 0) elementwise (NaN stays NaN)."""
    return np.maximum(a, 0)


def relu_backward(grad, out):
    """grad where the ReLU's output was positive, 0 elsewhere: grad · [out > 0]."""
    return grad * (out > 0)


def relu_max_pool2d_forward(x, bias, kernel):
    """max_pool2d(relu(x + bias)) over windows that tile the image (stride = kernel, no
    padding): the three ops, one after the other."""
    h, w = x.shape[2:]
    if bias is not None:
        x = x + bias.reshape(1, -1, 1, 1)
    return max_pool2d_forward(relu(x), kernel, kernel, (0, 0), (1, 1),
                              (h // kernel[0], w // kernel[1]))


def relu_max_pool2d_backward(grad_y, y, argmax, image_size, kernel):
    """Each window's gradient to its winning pixel, where the window's output y (that pixel's
    ReLU output) was positive: the pooling's backward, then the ReLU's."""
    routed = max_pool2d_backward(grad_y, argmax, image_size)
    winners = max_pool2d_backward(y, argmax, image_size)  # y at each winning pixel, 0 elsewhere
    return relu_backward(routed, winners)


def log_softmax(x):
    """Row-wise log softmax of a 2-D array: x - max - log(sum(exp(x - max)))."""
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def adam_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                bias_correction1, bias_correction2, weight_decay, decoupled):
    """One Adam/AdamW step, in place (the formulas of PyTorch's Adam and AdamW):

        decoupled (AdamW):  p <- p - lr*wd*p          else (Adam, L2):  g <- g + wd*p
        m <- b1*m + (1-b1)*g          v <- b2*v + (1-b2)*g^2
        p <- p - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
    """
    if weight_decay and decoupled:
        param *= 1 - lr * weight_decay
    elif weight_decay:
        grad = grad + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    denom = np.sqrt(exp_avg_sq) / math.sqrt(bias_correction2) + eps
    param -= (lr / bias_correction1) * exp_avg / denom


def scatter_add(target, index, values):
    """target[index] += values, adding once per occurrence of a repeated index."""
    np.add.at(target, index, values)


# -- segments: the edges e that point at node n (index[e] == n), reduced per node ------------
def _rows(values):
    """values (E, ...) as (E, F): every trailing axis is one feature axis."""
    return values.reshape(len(values), -1)


def segment_max(values, index, num_segments):
    """(out, argmax): out[n] = max over e with index[e] == n of values[e] (per feature), and
    the first e that attains it; a segment with no e gets 0 and argmax −1."""
    rows = _rows(values)
    out = np.full((num_segments, rows.shape[1]), -np.inf, dtype=values.dtype)
    np.maximum.at(out, index, rows)
    attains = rows == out[index]
    first = np.full(out.shape, len(rows), dtype=np.int64)
    edges = np.broadcast_to(np.arange(len(rows))[:, None], rows.shape)
    np.minimum.at(first, index, np.where(attains, edges, len(rows)))
    empty = first == len(rows)
    out[empty], first[empty] = 0, -1
    return out.reshape((num_segments,) + values.shape[1:]), first.reshape(
        (num_segments,) + values.shape[1:])


def segment_softmax(scores, index, num_segments):
    """α[e] = exp(s[e] − m[n]) / Σ_{e' → n} exp(s[e'] − m[n]) with n = index[e] and m[n] the
    segment's max (subtracted so no exp overflows: the ratio does not change)."""
    top, _ = segment_max(scores, index, num_segments)
    shifted = np.exp(scores - top[index])
    total = np.zeros(top.shape, dtype=scores.dtype)
    np.add.at(total, index, shifted)
    return shifted / total[index]


def segment_softmax_backward(alpha, grad, index, num_segments):
    """dL/ds[e] = α[e] (g[e] − Σ_{e' → n} α[e'] g[e']): the softmax Jacobian, per segment."""
    weighted = np.zeros((num_segments,) + alpha.shape[1:], dtype=alpha.dtype)
    np.add.at(weighted, index, alpha * grad)
    return alpha * (grad - weighted[index])


# -- Winograd F(2×2, 3×3): a 3×3 convolution of stride 1 on 4×4 input tiles -----------------
# Each 4×4 tile d of the zero-padded image gives a 2×2 tile of the output (Lavin & Gray 2016):
#
#     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          16 multiplications where direct needs 36
#
# Tile (ty, tx) of image n is p = (n·TH + ty)·TW + tx; its input tile starts at row 2·ty,
# column 2·tx of the padded image. These kernels move data between images and the transformed
# domain — V = Bᵀ d B as (16, P, C), M as (16, P, K): entry (i, j) of every tile in plane
# 4i + j — and back (the adjoints, for the gradients); the 16 products over channels are
# BLAS's, in ``autograd/ops/winograd.py``. Written against ``xp`` so CuPy runs this same code.
WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def _combine(coefficients, terms):
    """Σ_k coefficients[k] · terms[k], skipping zero coefficients (they are 0 or ±1)."""
    return sum(c * t for c, t in zip(coefficients, terms) if c)


def _tiles_at(image, i, j, tiles):
    """(N, TH, TW, C): pixel (i, j) of every tile of a channels-last image."""
    th, tw = tiles
    return image[:, i: i + 2 * th: 2, j: j + 2 * tw: 2]


def winograd_empty(tiles_total, channels, dtype):
    """An uninitialised (16, P, C) array (the CPU kernels space its planes apart)."""
    return np.empty((16, tiles_total, channels), dtype=dtype)


def winograd_input(x, padding, tiles):
    """V[4i+j, p, c] = (Bᵀ d B)[i, j], d the 4×4 tile p of channel c of x zero-padded."""
    xp = get_array_module(x)
    (n, c, h, w), (th, tw), (ph, pw) = x.shape, tiles, padding
    padded = xp.zeros((n, 2 * th + 2, 2 * tw + 2, c), dtype=x.dtype)
    padded[:, ph: ph + h, pw: pw + w] = x.transpose(0, 2, 3, 1)
    d = [[_tiles_at(padded, a, b, tiles) for b in range(4)] for a in range(4)]
    rows = [[_combine(WINOGRAD_BT[i], [d[a][b] for a in range(4)]) for b in range(4)]
            for i in range(4)]                                                     # Bᵀ d
    V = xp.stack([_combine(WINOGRAD_BT[j], rows[i]) for i in range(4) for j in range(4)])
    return V.reshape(16, n * th * tw, c)                                           # (Bᵀ d) B


def winograd_output(M, tiles, out_size):
    """y (N, K, OH, OW): each 2×2 output tile Aᵀ m A, m the 4×4 of tile p of M (16, P, K)."""
    xp = get_array_module(M)
    (th, tw), (oh, ow) = tiles, out_size
    m = M.reshape(16, -1, th, tw, M.shape[2])
    y = xp.empty((m.shape[1], 2 * th, 2 * tw, M.shape[2]), dtype=M.dtype)
    for u in range(2):
        for v in range(2):
            y[:, u::2, v::2] = _combine(
                [WINOGRAD_AT[u][i] * WINOGRAD_AT[v][j] for i in range(4) for j in range(4)], m)
    return y[:, :oh, :ow].transpose(0, 3, 1, 2)


def winograd_output_backward(grad_y, tiles):
    """dM (16, P, K) = A g Aᵀ for each 2×2 tile g of grad_y (zero past the image's edge):
    the adjoint of ``winograd_output``."""
    xp = get_array_module(grad_y)
    (n, k, oh, ow), (th, tw) = grad_y.shape, tiles
    g = xp.zeros((n, 2 * th, 2 * tw, k), dtype=grad_y.dtype)
    g[:, :oh, :ow] = grad_y.transpose(0, 2, 3, 1)
    quarters = [g[:, u::2, v::2] for u in range(2) for v in range(2)]
    dM = xp.stack([_combine([WINOGRAD_AT[u][i] * WINOGRAD_AT[v][j]
                             for u in range(2) for v in range(2)], quarters)
                   for i in range(4) for j in range(4)])
    return dM.reshape(16, n * th * tw, k)


def winograd_input_backward(dV, tiles, image_size, padding):
    """dx (N, C, H, W): B dv Bᵀ of each tile's dv (4×4 of dV (16, P, C)) added back onto the
    pixels of its 4×4 tile (tiles overlap by 2), padding cut off: the adjoint of
    ``winograd_input``."""
    xp = get_array_module(dV)
    (th, tw), (h, w), (ph, pw) = tiles, image_size, padding
    v = dV.reshape(16, -1, th, tw, dV.shape[2])
    padded = xp.zeros((v.shape[1], 2 * th + 2, 2 * tw + 2, dV.shape[2]), dtype=dV.dtype)
    for a in range(4):
        for b in range(4):
            _tiles_at(padded, a, b, tiles)[...] += _combine(
                [WINOGRAD_BT[i][a] * WINOGRAD_BT[j][b] for i in range(4) for j in range(4)], v)
    return padded[:, ph: ph + h, pw: pw + w].transpose(0, 3, 1, 2)


def erf(x):
    """The error function, elementwise."""
    return np.vectorize(math.erf, otypes=[x.dtype])(x)
