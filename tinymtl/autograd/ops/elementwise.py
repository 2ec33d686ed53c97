"""Elementwise operations. Each backward is the local derivative times the incoming gradient;
broadcasting is undone by the engine (``sum_to``), not here."""

import math

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops._util import as_tensor
from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for


# -- arithmetic ------------------------------------------------------------------------------
class Add(Function):
    def forward(ctx, a, b):
        return a + b

    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    def forward(ctx, a, b):
        return a - b

    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (grad * b if ctx.needs_input_grad[0] else None,
                grad * a if ctx.needs_input_grad[1] else None)


class Div(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    def backward(ctx, grad):
        a, b = ctx.saved_tensors  # d(a/b)/da = 1/b,  d(a/b)/db = -a/b^2
        grad_a = grad / b
        return grad_a, (-grad_a * a / b if ctx.needs_input_grad[1] else None)


class Neg(Function):
    def forward(ctx, a):
        return -a

    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """a ** b for two tensors: d/da = b a^(b-1),  d/db = a^b log(a)."""

    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        xp = get_array_module(a)
        grad_a = grad * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            safe_log = xp.log(xp.where(a > 0, a, 1))
            grad_b = grad * out * safe_log
        return grad_a, grad_b


class PowScalar(Function):
    """a ** p for a constant exponent p:  d/da = p a^(p-1)."""

    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a ** ctx.exponent

    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * ctx.exponent * a ** (ctx.exponent - 1)


# -- unary math ------------------------------------------------------------------------------
class Exp(Function):
    def forward(ctx, a):
        out = get_array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors  # d e^a = e^a
        return grad * out


class Log(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).log(a)

    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad / a


class Sqrt(Function):
    def forward(ctx, a):
        out = get_array_module(a).sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors  # d sqrt(a) = 1 / (2 sqrt(a))
        return grad / (2 * out)


class Abs(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).abs(a)

    def backward(ctx, grad):
        (a,) = ctx.saved_tensors  # sign(a); 0 at 0, as PyTorch
        return grad * get_array_module(a).sign(a)


class Tanh(Function):
    def forward(ctx, a):
        out = get_array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors  # d tanh = 1 - tanh^2
        return grad * (1 - out * out)


class Sigmoid(Function):
    def forward(ctx, a):
        xp = get_array_module(a)
        # 1/(1+e^-a) for a >= 0 and e^a/(1+e^a) for a < 0: neither overflows
        e = xp.exp(-xp.abs(a))
        out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors  # s' = s (1 - s)
        return grad * out * (1 - out)


class ReLU(Function):
    def forward(ctx, a):
        out = kernels_for(a).relu(a)                # max(a, 0)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return kernels_for(out).relu_backward(grad, out)  # grad · [out > 0]


class LeakyReLU(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).where(a > 0, a, a * ctx.negative_slope)

    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return get_array_module(a).where(a > 0, grad, grad * ctx.negative_slope)


class GELU(Function):
    """x Φ(x), Φ the standard normal CDF (``approximate='none'``), or its tanh approximation.

    exact:  d/dx = Φ(x) + x φ(x),   φ(x) = exp(-x²/2) / sqrt(2π)
    tanh:   u = sqrt(2/π) (x + 0.044715 x³),  y = x/2 (1 + tanh u),
            d/dx = (1 + tanh u)/2 + x/2 (1 - tanh² u) sqrt(2/π) (1 + 3·0.044715 x²)
    """

    def forward(ctx, a):
        xp = get_array_module(a)
        if ctx.approximate == "tanh":
            t = xp.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))
            ctx.save_for_backward(a, t)
            return 0.5 * a * (1 + t)
        cdf = 0.5 * (1 + kernels_for(a).erf(a / math.sqrt(2)))
        ctx.save_for_backward(a, cdf)
        return a * cdf

    def backward(ctx, grad):
        a, saved = ctx.saved_tensors
        xp = get_array_module(a)
        if ctx.approximate == "tanh":
            du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * a * a)
            return grad * (0.5 * (1 + saved) + 0.5 * a * (1 - saved * saved) * du)
        pdf = xp.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return grad * (saved + a * pdf)


class Where(Function):
    """where(cond, a, b): the gradient flows to a where cond holds, to b elsewhere."""

    def forward(ctx, a, b):
        return get_array_module(a).where(ctx.condition, a, b)

    def backward(ctx, grad):
        xp = get_array_module(grad)
        zero = xp.zeros((), dtype=grad.dtype)
        return (xp.where(ctx.condition, grad, zero) if ctx.needs_input_grad[0] else None,
                xp.where(ctx.condition, zero, grad) if ctx.needs_input_grad[1] else None)


class Clip(Function):
    """clip(a, low, high): gradient 1 strictly inside the bounds (and on them), 0 outside."""

    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).clip(a, ctx.low, ctx.high)

    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        inside = True
        if ctx.low is not None:
            inside = inside & (a >= ctx.low)
        if ctx.high is not None:
            inside = inside & (a <= ctx.high)
        return grad * inside


# -- functional wrappers ---------------------------------------------------------------------
def _binary(function, a, b):
    """Apply a two-input Function; a Python number or array on either side becomes a constant."""
    if isinstance(a, Tensor):
        return function.apply(a, as_tensor(b, a))
    return function.apply(as_tensor(a, b), b)


def add(a, b):
    return _binary(Add, a, b)


def sub(a, b):
    return _binary(Sub, a, b)


def mul(a, b):
    return _binary(Mul, a, b)


def div(a, b):
    return _binary(Div, a, b)


def neg(a):
    return Neg.apply(a)


def pow(a, exponent):  # noqa: A001  (PyTorch's name)
    if isinstance(exponent, Tensor):
        return Pow.apply(as_tensor(a, exponent), exponent)
    return PowScalar.apply(a, exponent=exponent)


def exp(a):
    return Exp.apply(a)


def log(a):
    return Log.apply(a)


def sqrt(a):
    return Sqrt.apply(a)


def abs(a):  # noqa: A001
    return Abs.apply(a)


def tanh(a):
    return Tanh.apply(a)


def sigmoid(a):
    return Sigmoid.apply(a)


def relu(a):
    return ReLU.apply(a)


def leaky_relu(a, negative_slope=0.01):
    return LeakyReLU.apply(a, negative_slope=negative_slope)


def gelu(a, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(a, approximate=approximate)


def where(condition, a, b):
    """Elementwise ``a if condition else b``; ``condition`` is a boolean array or Tensor."""
    like = a if isinstance(a, Tensor) else b
    condition = condition.data if isinstance(condition, Tensor) else condition
    return Where.apply(as_tensor(a, like), as_tensor(b, like), condition=condition)


def clip(a, min=None, max=None):  # noqa: A002  (PyTorch's names)
    return Clip.apply(a, low=min, high=max)


def maximum(a, b):
    """Elementwise max of two tensors (gradient to a where a >= b)."""
    b = as_tensor(b, a)
    return where(a.data >= b.data, a, b)


def minimum(a, b):
    b = as_tensor(b, a)
    return where(a.data <= b.data, a, b)
