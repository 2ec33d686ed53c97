"""``Function``: one differentiable operation, with its forward and its derivative side by side.

A Function works on raw arrays, never on Tensors:

    class Mul(Function):
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return grad * b, grad * a        # d(ab)/da = b, d(ab)/db = a

``Mul.apply(x, y)`` runs forward on the arrays of the Tensors x and y and, when a gradient is
wanted, returns a Tensor that remembers the Function (its "context") so that ``backward`` can be
called later. Non-tensor arguments (axes, strides) are keyword attributes of the context:
``Sum.apply(x, axis=1)`` makes ``ctx.axis`` available to both methods.

``backward`` may return a gradient shaped like the broadcast result: the engine reduces it to
each input's shape in one place, the engine's ``sum_to``.
"""

import numpy as np

from tinymtl.autograd.grad_mode import is_grad_enabled
from tinymtl.autograd.tensor import Tensor


class Function:
    """Base class of every op: subclasses define ``forward(ctx, *arrays)`` and ``backward``."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)
        self.saved_tensors = ()
        self.released = False

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    def release(self):
        """Drop saved arrays once backward has used them (unless the graph is retained)."""
        self.saved_tensors = ()
        self.released = True

    @classmethod
    def apply(cls, *inputs, **attributes):
        ctx = cls(**attributes)
        ctx.needs_input_grad = tuple(t.requires_grad for t in inputs)
        out = ctx.forward(*[t.data for t in inputs])
        if isinstance(out, np.generic):  # a full reduction gives a NumPy scalar: keep arrays
            out = np.asarray(out)
        if is_grad_enabled() and any(ctx.needs_input_grad):
            ctx.inputs = inputs
            return Tensor._make(out, ctx)
        return Tensor._make(out, None)

    def forward(ctx, *arrays):  # noqa: N805  (ctx is the instance, as in PyTorch)
        raise NotImplementedError

    def backward(ctx, grad):  # noqa: N805
        raise NotImplementedError


