"""Activation layers: Module wrappers of the elementwise ops."""

from tinymtl.autograd.ops import elementwise as E
from tinymtl.autograd.ops.reduction import log_softmax, softmax
from tinymtl.nn.module import Module


class ReLU(Module):
    def forward(self, x):
        return E.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return E.leaky_relu(x, self.negative_slope)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return E.gelu(x, self.approximate)


class Tanh(Module):
    def forward(self, x):
        return E.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return E.sigmoid(x)


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return log_softmax(x, self.dim)
