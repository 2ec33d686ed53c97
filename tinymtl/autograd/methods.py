"""Attach operators and PyTorch-style methods to ``Tensor`` (kept apart from the container so
that ``tensor.py`` stays short and the ops files can import ``Tensor`` without a cycle)."""

from tinymtl.autograd.ops import elementwise as E
from tinymtl.autograd.ops import linalg, reduction, shape
from tinymtl.autograd.ops._util import as_tensor
from tinymtl.autograd.tensor import Tensor


def _compare(op):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._make(op(self.data, other), None)
    return method


def _argmax(self, dim=None, keepdim=False):
    out = self.data.argmax(axis=dim)
    if keepdim and dim is not None:
        out = self.xp.expand_dims(out, dim)
    return Tensor._make(out, None)


def _argmin(self, dim=None, keepdim=False):
    out = self.data.argmin(axis=dim)
    if keepdim and dim is not None:
        out = self.xp.expand_dims(out, dim)
    return Tensor._make(out, None)



def install():
    T = Tensor
    T.__add__ = E.add
    T.__radd__ = lambda a, b: E.add(b, a)
    T.__sub__ = E.sub
    T.__rsub__ = lambda a, b: E.sub(b, a)
    T.__mul__ = E.mul
    T.__rmul__ = lambda a, b: E.mul(b, a)
    T.__truediv__ = E.div
    T.__rtruediv__ = lambda a, b: E.div(b, a)
    T.__neg__ = E.neg
    T.__pow__ = E.pow
    T.__rpow__ = lambda a, b: E.pow(as_tensor(b, a), a)
    T.__matmul__ = linalg.matmul
    T.__rmatmul__ = lambda a, b: linalg.matmul(as_tensor(b, a), a)
    T.__getitem__ = shape.getitem
    T.__lt__ = _compare(lambda a, b: a < b)
    T.__le__ = _compare(lambda a, b: a <= b)
    T.__gt__ = _compare(lambda a, b: a > b)
    T.__ge__ = _compare(lambda a, b: a >= b)
    T.__eq__ = _compare(lambda a, b: a == b)
    T.__ne__ = _compare(lambda a, b: a != b)

    for name in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "neg"):
        setattr(T, name, getattr(E, name))
    T.pow = E.pow
    T.leaky_relu = E.leaky_relu
    T.gelu = E.gelu
    T.clip = T.clamp = E.clip
    T.matmul = linalg.matmul

    T.sum = reduction.sum
    T.mean = reduction.mean
    T.amax = T.max = reduction.amax
    T.amin = T.min = reduction.amin
    T.var = reduction.var
    T.logsumexp = reduction.logsumexp
    T.softmax = reduction.softmax
    T.log_softmax = reduction.log_softmax
    T.argmax = _argmax
    T.argmin = _argmin

    T.reshape = shape.reshape
    T.view = shape.reshape
    T.flatten = shape.flatten
    T.squeeze = shape.squeeze
    T.unsqueeze = shape.unsqueeze
    T.permute = shape.permute
    T.transpose = shape.transpose
    T.T = property(lambda self: shape.permute(self, tuple(reversed(range(self.ndim)))))
    T.gather = shape.gather
    T.broadcast_to = T.expand = shape.broadcast_to
