"""Pooling. Max pooling has its own kernels (the index of each window's max is kept for
backward); average pooling reuses im2col: the mean of each patch, whose backward spreads
g / (KH·KW) back over the patch with col2im. ``relu_max_pool2d`` is a conv block's tail (bias,
ReLU, max pooling) as one op, with the same numbers as the three."""

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops._util import bias_gradient, pair
from tinymtl.autograd.ops.conv import conv_output_size
from tinymtl.autograd.ops.reduction import mean
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for


def _pool_geometry(x, kernel_size, stride, padding, dilation):
    kernel = pair(kernel_size)
    stride = kernel if stride is None else pair(stride)
    padding, dilation = pair(padding), pair(dilation)
    effective = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))  # the dilated window
    if padding[0] > effective[0] // 2 or padding[1] > effective[1] // 2:
        raise ValueError(f"pool padding {padding} must be at most half the dilated kernel "
                         f"{effective} (kernel {kernel}, dilation {dilation})")
    out_size = conv_output_size(x.shape[2:], kernel, stride, padding, dilation)
    if min(out_size) <= 0:
        raise ValueError(f"pool: input {x.shape[2:]} is smaller than the kernel {kernel}")
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                out_size=out_size)


class MaxPool2d(Function):
    def forward(ctx, x):
        y, argmax = kernels_for(x).max_pool2d_forward(x, ctx.kernel, ctx.stride, ctx.padding,
                                                      ctx.dilation, ctx.out_size)
        ctx.image_size = x.shape[2:]
        ctx.save_for_backward(argmax)
        return y

    def backward(ctx, grad):
        (argmax,) = ctx.saved_tensors
        return kernels_for(grad).max_pool2d_backward(grad, argmax, ctx.image_size, ctx.kernel,
                                                     ctx.stride, ctx.padding, ctx.dilation)


class AvgPool2d(Function):
    def forward(ctx, x):
        col = kernels_for(x).im2col(x, ctx.kernel, ctx.stride, ctx.padding, (1, 1),
                                    ctx.out_size)                      # (N, OH, OW, KH, KW, C)
        ctx.image_size = x.shape[2:]
        return col.mean(axis=(3, 4)).transpose(0, 3, 1, 2)

    def backward(ctx, grad):
        kh, kw = ctx.kernel
        xp = get_array_module(grad)
        share = grad.transpose(0, 2, 3, 1)[:, :, :, None, None, :] / (kh * kw)
        col = xp.broadcast_to(share, share.shape[:3] + (kh, kw) + share.shape[5:])
        return kernels_for(grad).col2im(col, ctx.image_size, ctx.stride, ctx.padding, (1, 1))


class ReLUMaxPool2d(Function):
    """max_pool2d(relu(x + bias)) as one op, for windows that tile the image (the kernels say
    why: the same numbers as the three ops, a fraction of their memory traffic)."""

    def forward(ctx, x, bias=None):
        y, argmax = kernels_for(x).relu_max_pool2d_forward(x, bias, ctx.kernel)
        ctx.image_size = x.shape[2:]
        ctx.save_for_backward(y, argmax)
        return y

    def backward(ctx, grad):
        y, argmax = ctx.saved_tensors
        grad_x = kernels_for(grad).relu_max_pool2d_backward(grad, y, argmax, ctx.image_size,
                                                            ctx.kernel)
        grad_bias = bias_gradient(grad_x) if ctx.needs_input_grad[1:] == (True,) else None
        return grad_x, grad_bias


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    """Max over KH×KW windows (stride defaults to the kernel size, padding never wins)."""
    return MaxPool2d.apply(x, **_pool_geometry(x, kernel_size, stride, padding, dilation))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over KH×KW windows; zero padding counts in the mean (PyTorch's default)."""
    return AvgPool2d.apply(x, **_pool_geometry(x, kernel_size, stride, padding, 1))


def global_avg_pool2d(x):
    """(N, C, H, W) -> (N, C): the mean of each channel's feature map."""
    return mean(x, dim=(2, 3))


def relu_max_pool2d(x, kernel_size, bias=None):
    """max_pool2d(relu(x + bias[:, None, None]), kernel_size) in one pass each way: the tail
    of a conv block (``nn.ConvEncoder`` hands it the conv's bias). Stride = kernel size and no
    padding, so the windows tile the image."""
    kernel = pair(kernel_size)
    if x.shape[2] < kernel[0] or x.shape[3] < kernel[1]:
        raise ValueError(f"pool: input {x.shape[2:]} is smaller than the kernel {kernel}")
    if bias is None:
        return ReLUMaxPool2d.apply(x, kernel=kernel)
    if bias.shape != (x.shape[1],):
        raise ValueError(f"relu_max_pool2d: bias {bias.shape} must have one value per channel "
                         f"of the input, ({x.shape[1]},)")
    return ReLUMaxPool2d.apply(x, bias, kernel=kernel)
