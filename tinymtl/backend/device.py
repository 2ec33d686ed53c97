"""Device selection: NumPy on the CPU (the default and the reference), CuPy on a CUDA GPU.

The device is chosen once per process, by ``set_device("cuda")``, by a run config, or by the
environment variable ``TINYMTL_DEVICE=cuda``. CuPy is imported only when asked for, so the whole
library works, and its tests pass, on machines that do not have it.

"cuda" is two things: an array module (CuPy) and the kernels written for it
(``kernels.cupy_gpu``). ``kernels.stand_in_for_cuda`` replaces both, so that tests on a machine
without a GPU can run every "cuda" code path on arrays that refuse to mix with NumPy's, as
CuPy's do (``tests/fake_cuda.py``): a batch, a parameter or a state that misses its move to the
device then fails there as it would on a GPU.
"""

import os
import sys

import numpy as np

from tinymtl.errors import InputError

DEVICES = ("cpu", "cuda")
_state = {"device": None, "cuda": None}  # "cuda": CuPy, or a stand-in


class DeviceUnavailableError(InputError):
    """The asked-for device cannot be used here (e.g. 'cuda' without CuPy)."""


def _import_cupy():
    """The array module of device 'cuda': CuPy (imported now), or the stand-in a test put."""
    if _state["cuda"] is not None:
        return _state["cuda"]
    try:
        import cupy  # noqa: F401  (optional dependency: the `gpu` extra)
    except ImportError as error:
        raise DeviceUnavailableError(
            "device 'cuda' needs CuPy: install it with `pip install -e \".[gpu]\"` "
            f"({error})"
        ) from None
    _state["cuda"] = cupy
    return cupy


def use_cuda_module(module):
    """Make device 'cuda' mean ``module`` (an array module with CuPy's API: ``ndarray``,
    ``asarray``, ``get_array_module``, arrays with ``.get()``); None puts CuPy back. For tests,
    through ``kernels.stand_in_for_cuda``."""
    _state["cuda"] = module


def set_device(name):
    """Make ``name`` ('cpu' or 'cuda') the device new tensors are created on."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)}")
    if name == "cuda":
        _import_cupy()
    _state["device"] = name


def get_device():
    """The current default device; ``TINYMTL_DEVICE`` decides until ``set_device`` is called."""
    if _state["device"] is None:
        set_device(os.environ.get("TINYMTL_DEVICE", "cpu"))
    return _state["device"]


def array_module(device=None):
    """The module (numpy or cupy) that holds arrays on ``device`` (default: the current one)."""
    if (device or get_device()) == "cuda":
        return _import_cupy()
    return np


def get_array_module(*arrays):
    """numpy or cupy, whichever owns ``arrays`` (Chainer's helper; cheap when CuPy is absent)."""
    cuda = _state["cuda"] or sys.modules.get("cupy")
    if cuda is not None:
        return cuda.get_array_module(*arrays)
    return np


def device_of(array):
    """'cuda' for an array of the GPU's array module, 'cpu' for anything else."""
    cuda = _state["cuda"] or sys.modules.get("cupy")
    return "cuda" if cuda is not None and isinstance(array, cuda.ndarray) else "cpu"


def to_device(array, device):
    """A copy of ``array`` on ``device`` (no copy when it is already there)."""
    if device == "cuda":
        return _import_cupy().asarray(array)
    return to_numpy(array)


def to_numpy(array):
    """A NumPy array holding ``array``'s values, moved from the GPU when needed."""
    if device_of(array) == "cuda":
        return array.get()
    if isinstance(array, np.ndarray):
        return array
    return np.asarray(array)
