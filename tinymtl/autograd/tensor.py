"""``Tensor``: an array, plus what is needed to differentiate through it.

    data           the values: a numpy (CPU) or cupy (GPU) array
    grad           the accumulated gradient, an array of the same shape (None until backward)
    requires_grad  whether operations on this tensor are recorded for differentiation
    _ctx           the Function that produced it (None for a leaf: parameters and inputs)

Operator methods (``+``, ``@``, ``.sum()``, ``.relu()`` ...) are attached in
``tinymtl.autograd.methods``, so this file holds only the container.
"""

import numpy as np

from tinymtl.autograd.engine import backward
from tinymtl.backend import array_module, device_of, get_array_module, get_default_dtype, to_device
from tinymtl.backend.random import default_generator


def _as_array(data, dtype=None, device=None):
    """Convert user data to an array; floating data gets the default dtype (float32)."""
    if isinstance(data, Tensor):
        data = data.data
    xp = array_module(device) if device else get_array_module(data)
    if device and device_of(data) != device:
        data = to_device(data, device)
    array = xp.asarray(data)
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and array.dtype != get_default_dtype():
        return array.astype(get_default_dtype())
    if array.dtype.kind in "iu" and not hasattr(data, "dtype"):  # Python ints -> int64
        return array.astype(np.int64, copy=False)
    return array


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # numpy arrays on the left defer to Tensor's operators

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        self.data = _as_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, got {self.data.dtype}")
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._retains_grad = False

    @classmethod
    def _make(cls, data, ctx):
        """A tensor produced by an operation (no conversion: ops already produce arrays)."""
        tensor = cls.__new__(cls)
        tensor.data = data
        tensor.grad = None
        tensor.requires_grad = ctx is not None
        tensor._ctx = ctx
        tensor._retains_grad = False
        return tensor

    # -- what it is --------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    @property
    def xp(self):
        """The array module (numpy or cupy) that holds this tensor."""
        return get_array_module(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def numel(self):
        return int(self.data.size)

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.numpy()!r}{grad})".replace("\n", "\n       ")

    __hash__ = object.__hash__  # == is elementwise, so hash by identity (as PyTorch does)

    # -- conversions -------------------------------------------------------------------------
    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed)."""
        if hasattr(self.data, "get"):
            return self.data.get()
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """A copy on ``device`` and/or in ``dtype`` (self when nothing changes)."""
        data = self.data
        if device is not None and device != self.device:
            data = to_device(data, device)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if data is self.data:
            return self
        return Tensor(data, requires_grad=self.requires_grad and self.is_leaf, dtype=data.dtype)

    def detach(self):
        """The same values, cut off from the graph (no gradient flows through)."""
        return Tensor._make(self.data, None)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep theirs)."""
        self._retains_grad = True

    # -- gradients ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; free the graph unless retained."""
        backward(self, gradient, retain_graph)

    def _accumulate_grad(self, grad):
        if grad.dtype != self.data.dtype:
            grad = grad.astype(self.data.dtype)
        if self.grad is None:
            self.grad = grad.copy()  # own the array: grad may alias another tensor's buffer
        else:
            self.grad += grad


def zero_grads(tensors, set_to_none=True):
    """Forget accumulated gradients: ``grad = None`` (the default), or zero them in place."""
    for tensor in tensors:
        if set_to_none:
            tensor.grad = None
        elif tensor.grad is not None:
            tensor.grad[...] = 0


# -- factories (PyTorch names) ---------------------------------------------------------------
def tensor(data, requires_grad=False, dtype=None, device=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def zeros(*shape, requires_grad=False, dtype=None, device=None):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = array_module(device).zeros(shape, dtype=dtype or get_default_dtype())
    return Tensor(data, requires_grad=requires_grad)


def ones(*shape, requires_grad=False, dtype=None, device=None):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = array_module(device).ones(shape, dtype=dtype or get_default_dtype())
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, requires_grad=False, dtype=None, device=None, generator=None):
    """Standard normal values from ``generator`` (default: the seeded global generator)."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = (generator or default_generator).normal(0.0, 1.0, shape, dtype=dtype, device=device)
    return Tensor(data, requires_grad=requires_grad)
