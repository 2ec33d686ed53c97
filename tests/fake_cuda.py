"""A stand-in for CuPy, so that CI (which has no GPU) runs every ``device: cuda`` code path.

Its arrays live in host memory, but like CuPy's they refuse to mix with NumPy arrays: an
operation given one of each raises ``TypeError``, as CuPy does, so a batch, a target, a
parameter or an optimizer state that was never moved to the device fails the test that reaches
it. Moving is explicit both ways: ``asarray`` (NumPy -> device, a copy) and ``.get()``
(device -> NumPy, a copy), which is what ``tinymtl.backend.to_device``/``to_numpy`` call.

Kernels run NumPy's compiled CPU ones on the arrays' memory, and results come back as device
arrays. One gap is left: ``np.asarray(device_array)`` quietly gives a NumPy view here, where
CuPy raises; the library's own code moves arrays with ``to_numpy``.

    from tinymtl.backend.kernels import stand_in_for_cuda
    stand_in_for_cuda(fake_cuda.module, fake_cuda.kernels)   # device 'cuda' is now this
"""

import types

import numpy as np

from tinymtl.backend.kernels import KERNEL_NAMES, numba_cpu


class ndarray(np.ndarray):  # noqa: N801  (CuPy's name for its array type)
    """An array "on the device": NumPy's memory, CuPy's manners."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host_arrays(f"np.{ufunc.__name__}", inputs + (out or ()))
        if out is not None:
            kwargs["out"] = tuple(_host(o) for o in out)
        result = getattr(ufunc, method)(*[_host(a) for a in inputs], **kwargs)
        return _device(result)

    def __array_function__(self, func, types, args, kwargs):
        _refuse_host_arrays(f"np.{func.__name__}", args, kwargs)
        return _device(func(*_host(list(args)), **_host(kwargs)))

    def get(self):
        """A NumPy copy (device -> host), as ``cupy.ndarray.get``."""
        return np.array(self.view(np.ndarray))


def _is_host_array(value):
    return isinstance(value, np.ndarray) and not isinstance(value, ndarray)


def _refuse_host_arrays(where, *values):
    for value in values:
        if isinstance(value, (list, tuple)):
            _refuse_host_arrays(where, *value)
        elif isinstance(value, dict):
            _refuse_host_arrays(where, *value.values())
        elif _is_host_array(value):
            raise TypeError(f"fake cuda: {where} got a NumPy array {value.shape} among device "
                            "arrays; move it with tinymtl.backend.to_device first "
                            "(CuPy refuses the same)")


def _host(value):
    """Device arrays as the NumPy arrays of their memory (no copy), inside containers too."""
    if isinstance(value, ndarray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    return value


def _device(value):
    """NumPy results as device arrays; a NumPy scalar (a full reduction's result) as a 0-d
    device array, as CuPy gives."""
    if isinstance(value, np.ndarray) and not isinstance(value, ndarray):
        return value.view(ndarray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(ndarray)
    if isinstance(value, tuple):
        return tuple(_device(v) for v in value)
    if isinstance(value, list):
        return [_device(v) for v in value]
    return value


def asarray(value, dtype=None):
    """Host -> device: a copy, as ``cupy.asarray`` of a NumPy array (none when already here)."""
    if isinstance(value, ndarray):
        return value if dtype is None else value.astype(dtype, copy=False)
    return np.array(value, dtype=dtype).view(ndarray)


def get_array_module(*arrays):
    return module if any(isinstance(a, ndarray) for a in arrays) else np


class _Module(types.ModuleType):
    """``fake_cuda.module``: NumPy's functions, taking and giving device arrays only."""

    def __getattr__(self, name):
        value = getattr(np, name)
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            return value  # dtypes, constants, np.newaxis

        def on_device(*args, **kwargs):
            _refuse_host_arrays(f"fake cuda.{name}", args, kwargs)
            return _device(value(*_host(list(args)), **_host(kwargs)))
        return on_device


module = _Module("fake_cuda")
module.ndarray, module.asarray, module.array = ndarray, asarray, asarray
module.get_array_module = get_array_module


class _Device:
    mem_info = (8 << 30, 16 << 30)  # (free, total): a 16 GiB "GPU" with half of it free

    def synchronize(self):
        pass  # (its work is done when each call returns)


class _Pool:
    def free_bytes(self):
        return 0

    def total_bytes(self):
        return 0


module.cuda = types.SimpleNamespace(Device=_Device)
module.get_default_memory_pool = _Pool


def _kernel(name):
    function = getattr(numba_cpu, name)

    def on_device(*args, **options):  # (options: plain values, e.g. im2col's taps_first)
        _refuse_host_arrays(f"kernel {name}", args)
        return _device(function(*_host(list(args)), **options))
    return on_device


kernels = types.SimpleNamespace(**{name: _kernel(name) for name in KERNEL_NAMES})
