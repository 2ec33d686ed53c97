"""Dropout layer: active in ``train()`` mode, the identity in ``eval()`` mode."""

from tinymtl.autograd.ops.nn_ops import dropout
from tinymtl.nn.module import Module


class Dropout(Module):
    def __init__(self, p=0.5, generator=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.generator = p, generator

    def forward(self, x):
        return dropout(x, self.p, self.training, self.generator)

    def extra_repr(self):
        return f"p={self.p}"
