"""Small helpers shared by the op files."""

from tinymtl.autograd.tensor import Tensor


def as_tensor(value, like):
    """Wrap a Python number or array as a constant Tensor of ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        return value
    xp = like.xp
    return Tensor._make(xp.asarray(value, dtype=like.data.dtype), None)


def normalize_axis(axis, ndim):
    """``None`` -> all axes; an int or sequence -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


def pair(value):
    """2 -> (2, 2); (1, 2) -> (1, 2): how conv and pooling accept sizes."""
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair of ints, got {value!r}")
    return value
