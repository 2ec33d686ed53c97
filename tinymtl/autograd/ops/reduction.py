"""Reductions over axes: sum, mean, max/min, var, logsumexp, and (log-)softmax.

A reduction's backward broadcasts the incoming gradient back over the reduced axes; with
``keepdim=False`` the reduced axes are first re-inserted (``_expand``)."""

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops._util import normalize_axis
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for


def _expand(grad, axes, keepdim):
    """Re-insert reduced axes as size 1 so ``grad`` broadcasts against the input."""
    if keepdim:
        return grad
    xp = get_array_module(grad)
    return xp.expand_dims(grad, axes) if axes else grad


class Sum(Function):
    def forward(ctx, a):
        ctx.shape = a.shape
        return a.sum(axis=ctx.axes, keepdims=ctx.keepdim)

    def backward(ctx, grad):
        xp = get_array_module(grad)
        return xp.broadcast_to(_expand(grad, ctx.axes, ctx.keepdim), ctx.shape)


class Mean(Function):
    def forward(ctx, a):
        ctx.shape = a.shape
        ctx.count = 1
        for axis in ctx.axes:
            ctx.count *= a.shape[axis]
        return a.mean(axis=ctx.axes, keepdims=ctx.keepdim)

    def backward(ctx, grad):
        xp = get_array_module(grad)
        return xp.broadcast_to(_expand(grad, ctx.axes, ctx.keepdim) / ctx.count, ctx.shape)


class Max(Function):
    """max over axes; the gradient is shared equally among tied maxima (as ``torch.amax``)."""

    def forward(ctx, a):
        out = a.max(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(a, out)
        return out if ctx.keepdim else out.squeeze(ctx.axes)

    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        mask = a == out
        ties = mask.sum(axis=ctx.axes, keepdims=True).astype(a.dtype)  # (a float32 count)
        return mask * (_expand(grad, ctx.axes, ctx.keepdim) / ties)


class Var(Function):
    """var = sum((a - mean)^2) / (n - correction);  d/da = 2 (a - mean) / (n - correction)."""

    def forward(ctx, a):
        count = 1
        for axis in ctx.axes:
            count *= a.shape[axis]
        centred = a - a.mean(axis=ctx.axes, keepdims=True)
        ctx.divisor = max(count - ctx.correction, 0)
        ctx.save_for_backward(centred)
        return (centred * centred).sum(axis=ctx.axes, keepdims=ctx.keepdim) / ctx.divisor

    def backward(ctx, grad):
        (centred,) = ctx.saved_tensors
        return _expand(grad, ctx.axes, ctx.keepdim) * (2 / ctx.divisor) * centred


class LogSumExp(Function):
    """log Σ e^a, computed as m + log Σ e^(a - m) with m = max a;  d/da = softmax(a)."""

    def forward(ctx, a):
        xp = get_array_module(a)
        largest = a.max(axis=ctx.axes, keepdims=True)
        out = xp.log(xp.exp(a - largest).sum(axis=ctx.axes, keepdims=True)) + largest
        ctx.save_for_backward(a, out)
        return out if ctx.keepdim else out.squeeze(ctx.axes)

    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        return _expand(grad, ctx.axes, ctx.keepdim) * get_array_module(a).exp(a - out)


def _rows(a, axis):
    """Move ``axis`` last and flatten the rest: the 2-D layout the row-wise kernel wants."""
    xp = get_array_module(a)
    moved = xp.moveaxis(a, axis, -1)
    return xp.ascontiguousarray(moved).reshape(-1, moved.shape[-1]), moved.shape


class LogSoftmax(Function):
    """log softmax(a) = a - logsumexp(a);  backward: g - softmax(a) * sum(g)."""

    def forward(ctx, a):
        xp = get_array_module(a)
        rows, moved_shape = _rows(a, ctx.axis)
        out = xp.moveaxis(kernels_for(a).log_softmax(rows).reshape(moved_shape), -1, ctx.axis)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        xp = get_array_module(out)
        return grad - xp.exp(out) * grad.sum(axis=ctx.axis, keepdims=True)


class Softmax(Function):
    """softmax(a) = e^(a - logsumexp a);  backward: s * (g - sum(g * s))."""

    def forward(ctx, a):
        xp = get_array_module(a)
        rows, moved_shape = _rows(a, ctx.axis)
        log_probs = kernels_for(a).log_softmax(rows).reshape(moved_shape)
        out = xp.exp(xp.moveaxis(log_probs, -1, ctx.axis))
        ctx.save_for_backward(out)
        return out

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


# -- functional wrappers (PyTorch's names: dim, keepdim) -------------------------------------
def sum(a, dim=None, keepdim=False):  # noqa: A001
    return Sum.apply(a, axes=normalize_axis(dim, a.ndim), keepdim=keepdim)


def mean(a, dim=None, keepdim=False):
    return Mean.apply(a, axes=normalize_axis(dim, a.ndim), keepdim=keepdim)


def amax(a, dim=None, keepdim=False):
    return Max.apply(a, axes=normalize_axis(dim, a.ndim), keepdim=keepdim)


def amin(a, dim=None, keepdim=False):
    from tinymtl.autograd.ops.elementwise import neg

    return neg(amax(neg(a), dim, keepdim))


def var(a, dim=None, keepdim=False, correction=1):
    """Variance with Bessel's correction by default (``correction=1``), as ``torch.var``."""
    return Var.apply(a, axes=normalize_axis(dim, a.ndim), keepdim=keepdim, correction=correction)


def logsumexp(a, dim=None, keepdim=False):
    return LogSumExp.apply(a, axes=normalize_axis(dim, a.ndim), keepdim=keepdim)


def softmax(a, dim=-1):
    return Softmax.apply(a, axis=dim % a.ndim)


def log_softmax(a, dim=-1):
    return LogSoftmax.apply(a, axis=dim % a.ndim)
