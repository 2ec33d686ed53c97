"""Operations that move values without changing them: reshape, permute, indexing, gather,
concatenation. Each backward moves the gradient back to where the values came from."""

from tinymtl.autograd.function import Function
from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for


class Reshape(Function):
    def forward(ctx, a):
        ctx.input_shape = a.shape
        return a.reshape(ctx.shape)

    def backward(ctx, grad):
        return grad.reshape(ctx.input_shape)


class Permute(Function):
    def forward(ctx, a):
        return a.transpose(ctx.axes)

    def backward(ctx, grad):
        inverse = [0] * len(ctx.axes)
        for position, axis in enumerate(ctx.axes):
            inverse[axis] = position
        return grad.transpose(inverse)


class BroadcastTo(Function):
    def forward(ctx, a):
        return get_array_module(a).broadcast_to(a, ctx.shape)

    def backward(ctx, grad):
        return grad  # the engine's sum_to reduces it back to the input's shape


def _is_advanced(index):
    """True when ``index`` uses integer/boolean arrays (repeats possible: must scatter-add)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(part, "shape") or isinstance(part, list) for part in parts)


class GetItem(Function):
    """a[index]; backward writes the gradient into a zero array at the same index (adding on
    repeated indices, which only integer-array indexing can produce)."""

    def forward(ctx, a):
        ctx.input_shape = a.shape
        return a[ctx.index]

    def backward(ctx, grad):
        xp = get_array_module(grad)
        out = xp.zeros(ctx.input_shape, dtype=grad.dtype)
        if _is_advanced(ctx.index):
            kernels_for(out).scatter_add(out, ctx.index, grad)
        else:
            out[ctx.index] = grad
        return out


class Gather(Function):
    """out[..., k, ...] = a[..., index[..., k, ...], ...] along ``axis`` (torch.gather);
    backward scatter-adds the gradient back to the gathered positions."""

    def forward(ctx, a):
        ctx.input_shape = a.shape
        index = ctx.index
        if index.ndim != a.ndim or any(index.shape[d] > a.shape[d]
                                       for d in range(a.ndim) if d != ctx.axis):
            raise ValueError(f"gather: index of shape {index.shape} for input of shape "
                             f"{a.shape} along dim {ctx.axis}; expected as many dimensions, "
                             f"none larger than the input's except along dim")
        # torch.gather reads the corner of ``a`` the index covers (no broadcasting)
        corner = tuple(slice(None) if d == ctx.axis else slice(0, index.shape[d])
                       for d in range(a.ndim))
        return get_array_module(a).take_along_axis(a[corner], index, axis=ctx.axis)

    def backward(ctx, grad):
        xp = get_array_module(grad)
        out = xp.zeros(ctx.input_shape, dtype=grad.dtype)
        positions = list(xp.indices(ctx.index.shape, sparse=True))
        positions[ctx.axis] = ctx.index
        kernels_for(out).scatter_add(out, tuple(positions), grad)
        return out


class Concat(Function):
    def forward(ctx, *arrays):
        ctx.sizes = [a.shape[ctx.axis] for a in arrays]
        return get_array_module(arrays[0]).concatenate(arrays, axis=ctx.axis)

    def backward(ctx, grad):
        xp = get_array_module(grad)
        bounds = [0]
        for size in ctx.sizes:
            bounds.append(bounds[-1] + size)
        return tuple(xp.take(grad, xp.arange(lo, hi), axis=ctx.axis)
                     for lo, hi in zip(bounds[:-1], bounds[1:]))


class Stack(Function):
    def forward(ctx, *arrays):
        return get_array_module(arrays[0]).stack(arrays, axis=ctx.axis)

    def backward(ctx, grad):
        xp = get_array_module(grad)
        return tuple(xp.take(grad, k, axis=ctx.axis) for k in range(grad.shape[ctx.axis]))


# -- functional wrappers ---------------------------------------------------------------------
def reshape(a, *shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Reshape.apply(a, shape=tuple(shape))


def flatten(a, start_dim=0, end_dim=-1):
    end_dim %= a.ndim
    middle = 1
    for size in a.shape[start_dim:end_dim + 1]:
        middle *= size
    return reshape(a, a.shape[:start_dim] + (middle,) + a.shape[end_dim + 1:])


def unsqueeze(a, dim):
    dim = dim % (a.ndim + 1)
    return reshape(a, a.shape[:dim] + (1,) + a.shape[dim:])


def squeeze(a, dim=None):
    if dim is None:
        return reshape(a, tuple(s for s in a.shape if s != 1))
    dim %= a.ndim
    if a.shape[dim] != 1:
        return a
    return reshape(a, a.shape[:dim] + a.shape[dim + 1:])


def permute(a, *axes):
    axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    return Permute.apply(a, axes=tuple(axis % a.ndim for axis in axes))


def transpose(a, dim0=-2, dim1=-1):
    axes = list(range(a.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute.apply(a, axes=tuple(axes))


def broadcast_to(a, shape):
    return BroadcastTo.apply(a, shape=tuple(shape))


def getitem(a, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(part.data if isinstance(part, Tensor) else part for part in index)
    return GetItem.apply(a, index=index)


def gather(a, dim, index):
    """``torch.gather(a, dim, index)``: index has a's number of dimensions."""
    index = index.data if isinstance(index, Tensor) else index
    return Gather.apply(a, axis=dim % a.ndim, index=index)


def take_along_dim(a, index, dim):
    return gather(a, dim, index)


def cat(tensors, dim=0):
    return Concat.apply(*tensors, axis=dim % tensors[0].ndim)


concat = cat


def stack(tensors, dim=0):
    return Stack.apply(*tensors, axis=dim % (tensors[0].ndim + 1))
