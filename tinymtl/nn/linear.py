"""Fully connected layers and shape helpers."""

import math

from tinymtl.autograd.ops.linalg import linear
from tinymtl.autograd.ops.shape import flatten
from tinymtl.nn import init
from tinymtl.nn.module import Module, Parameter


def _empty(*shape):
    return init.empty(*shape)


class Linear(Module):
    """y = x Wᵀ + b with W of shape (out_features, in_features), PyTorch's layout and init:
    W, b ~ U(-1/sqrt(in), 1/sqrt(in)).

    Backward (derived in ``autograd.ops.linalg.Linear``): dx = g W, dW = gᵀ x, db = Σ g.
    """

    def __init__(self, in_features, out_features, bias=True, generator=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(_empty(out_features, in_features))
        self.bias = Parameter(_empty(out_features)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    """(N, C, H, W) -> (N, C·H·W): flattens dims ``start_dim`` .. ``end_dim``."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)
