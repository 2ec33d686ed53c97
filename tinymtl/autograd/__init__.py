"""Reverse-mode automatic differentiation on top of the backend's arrays.

``Tensor`` holds values; ``Function`` subclasses define an op's forward and backward;
``backward``/``grad`` run the chain rule over the recorded graph.
"""

from tinymtl.autograd import methods as _methods
from tinymtl.autograd.engine import backward, grad, graph_bytes, sum_to
from tinymtl.autograd.function import Function
from tinymtl.autograd.grad_mode import (
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from tinymtl.autograd.tensor import Tensor, ones, randn, tensor, zero_grads, zeros

_methods.install()

__all__ = [
    "Tensor", "Function", "backward", "grad", "graph_bytes", "sum_to", "no_grad", "enable_grad",
    "set_grad_enabled", "is_grad_enabled", "tensor", "zeros", "ones", "randn", "zero_grads",
]
