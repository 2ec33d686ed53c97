"""Convolution layers (the math, im2col + matrix product, is in ``autograd.ops.conv``)."""

import math

from tinymtl.autograd.ops.conv import conv1d, conv2d
from tinymtl.autograd.ops._util import pair
from tinymtl.nn import init
from tinymtl.nn.linear import _empty
from tinymtl.nn.module import Module, Parameter


class _ConvNd(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 groups, bias, generator):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must "
                             f"both be divisible by groups {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups = dilation, groups
        self.weight = Parameter(_empty(out_channels, in_channels // groups, *kernel_size))
        self.bias = Parameter(_empty(out_channels)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        """PyTorch's default: kaiming_uniform(a=√5) weights, U(±1/√fan_in) bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound, generator)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}")


class Conv2d(_ConvNd):
    """2-D convolution: (N, C_in, H, W) -> (N, C_out, OH, OW),
    OH = floor((H + 2p - d(k - 1) - 1) / s) + 1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, generator=None):
        super().__init__(in_channels, out_channels, pair(kernel_size), pair(stride),
                         pair(padding), pair(dilation), groups, bias, generator)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over sequences: (N, C_in, L) -> (N, C_out, OL)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, generator=None):
        super().__init__(in_channels, out_channels, (kernel_size,), stride, padding, dilation,
                         groups, bias, generator)

    def forward(self, x):
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)
