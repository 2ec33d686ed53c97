"""Convolution as im2col + one matrix product (Chainer's recipe).

im2col lays every receptive field out as a row: col has shape (N·OH·OW, KH·KW·C). With the
weight W reordered to (O, KH·KW·C):

    forward    Y = col @ Wᵀ (+ b)                        -> (N·OH·OW, O) -> N, O, OH, OW
    backward   dL/dW = dL/dYᵀ @ col,   dL/dcol = dL/dY @ W,   dL/dx = col2im(dL/dcol)

Groups split C and O into G independent blocks: the same products, batched over G. The output
is returned as a (N, O, OH, OW) view of channels-last (N, OH, OW, O) memory: no copy is made,
and the kernels that read it next (pooling, the next im2col) want exactly that layout.

``conv2d`` computes 3×3 convolutions of stride 1 by Winograd's algorithm instead, with 2.25x
fewer multiply-adds (``winograd.py``); this module does every other one.
"""

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops import winograd
from tinymtl.autograd.ops._util import bias_gradient, pair
from tinymtl.autograd.ops.shape import reshape
from tinymtl.backend.kernels import kernels_for


def conv_output_size(size, kernel, stride, padding, dilation):
    """floor((size + 2·padding - dilation·(kernel - 1) - 1) / stride) + 1, per spatial axis."""
    return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                 for s, k, st, p, d in zip(size, kernel, stride, padding, dilation))


def _weight_blocks(weight, groups):
    """(O, C/G, KH, KW) -> (G, O/G, KH·KW·C/G): each row ordered like a col row."""
    out_channels, group_channels, kh, kw = weight.shape
    blocks = weight.reshape(groups, out_channels // groups, group_channels, kh * kw)
    return blocks.transpose(0, 1, 3, 2).reshape(groups, out_channels // groups,
                                                kh * kw * group_channels)


class Conv2d(Function):
    def forward(ctx, x, weight, bias=None):
        n, c, h, w = x.shape
        out_channels, group_channels, kh, kw = weight.shape
        groups = ctx.groups
        ctx.out_size = conv_output_size((h, w), (kh, kw), ctx.stride, ctx.padding, ctx.dilation)
        if min(ctx.out_size) <= 0:
            raise ValueError(f"conv2d: input {h}x{w} is smaller than the dilated kernel")
        col = kernels_for(x).im2col(x, (kh, kw), ctx.stride, ctx.padding, ctx.dilation,
                                    ctx.out_size, taps_first=True)  # (any layout: a product's)
        rows = n * ctx.out_size[0] * ctx.out_size[1]
        col = col.reshape(rows, kh * kw, groups, group_channels)
        # (G, M, K); sizes spelled out, not -1: an empty batch (N = 0) gives an empty result
        col = col.transpose(2, 0, 1, 3).reshape(groups, rows, kh * kw * group_channels)
        w_blocks = _weight_blocks(weight, groups)                         # (G, O/G, K)
        y = (col @ w_blocks.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(rows, out_channels)
        if bias is not None:
            y += bias
        ctx.save_for_backward(col, w_blocks)
        ctx.image_shape, ctx.weight_shape = x.shape, weight.shape
        return y.reshape(n, *ctx.out_size, out_channels).transpose(0, 3, 1, 2)

    def backward(ctx, grad):
        col, w_blocks = ctx.saved_tensors
        n, c, h, w = ctx.image_shape
        out_channels, group_channels, kh, kw = ctx.weight_shape
        groups, rows = ctx.groups, col.shape[1]
        g_rows = grad.transpose(0, 2, 3, 1).reshape(rows, out_channels)   # (M, O)
        g = g_rows.reshape(rows, groups, out_channels // groups).transpose(1, 0, 2)  # (G, M, O/G)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            # (colᵀ g)ᵀ rather than gᵀ col: the same numbers, and BLAS is faster with the long
            # axis M inside for a first layer's narrow col (K = 9: 0.48 vs 0.80 ms)
            grad_w = (col.transpose(0, 2, 1) @ g).transpose(0, 2, 1)      # (G, O/G, K)
            grad_w = grad_w.reshape(out_channels, kh * kw, group_channels)
            grad_w = grad_w.transpose(0, 2, 1).reshape(ctx.weight_shape)
        if ctx.needs_input_grad[0]:
            grad_col = (g @ w_blocks).reshape(groups, rows, kh * kw, group_channels)
            grad_col = grad_col.transpose(1, 2, 0, 3).reshape(n, *ctx.out_size, kh, kw, c)
            grad_x = kernels_for(grad_col).col2im(grad_col, (h, w), ctx.stride, ctx.padding,
                                                  ctx.dilation)
        if ctx.needs_input_grad[2:] == (True,):
            grad_b = bias_gradient(grad)
        return grad_x, grad_w, grad_b


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with weight (O, C/groups, KH, KW), PyTorch's layout."""
    if x.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels, weight {weight.shape} "
                         f"with groups={groups} expects {weight.shape[1] * groups}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    geometry = dict(stride=pair(stride), padding=pair(padding), dilation=pair(dilation))
    if winograd.applies(weight.shape, geometry["stride"], geometry["dilation"], groups):
        return winograd.WinogradConv2d.apply(*inputs, padding=geometry["padding"])
    return Conv2d.apply(*inputs, groups=groups, **geometry)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of x (N, C, L) with weight (O, C/groups, K): a conv2d of height 1."""
    n, c, length = x.shape
    out = conv2d(reshape(x, n, c, 1, length),
                 reshape(weight, *weight.shape[:2], 1, weight.shape[2]), bias,
                 stride=(1, stride), padding=(0, padding), dilation=(1, dilation), groups=groups)
    return reshape(out, out.shape[0], out.shape[1], out.shape[3])


