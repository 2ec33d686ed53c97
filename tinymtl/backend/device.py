"""Device selection: NumPy on the CPU (the default and the reference), CuPy on a CUDA GPU.

The device is chosen once per process, by ``set_device("cuda")``, by a run config, or by the
environment variable ``TINYMTL_DEVICE=cuda``. CuPy is imported only when asked for, so the whole
library works, and its tests pass, on machines that do not have it.
"""

import os
import sys

import numpy as np

from tinymtl.errors import InputError

DEVICES = ("cpu", "cuda")
_state = {"device": None}


class DeviceUnavailableError(InputError):
    """The asked-for device cannot be used here (e.g. 'cuda' without CuPy)."""


def _import_cupy():
    try:
        import cupy  # noqa: F401  (optional dependency: the `gpu` extra)
    except ImportError as error:
        raise DeviceUnavailableError(
            "device 'cuda' needs CuPy: install it with `pip install -e \".[gpu]\"` "
            f"({error})"
        ) from None
    return cupy


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
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return np


def device_of(array):
    """'cuda' for a CuPy array, 'cpu' for anything else."""
    return "cpu" if isinstance(array, (np.ndarray, np.generic)) else "cuda"


def to_device(array, device):
    """A copy of ``array`` on ``device`` (no copy when it is already there)."""
    if device == "cuda":
        return _import_cupy().asarray(array)
    return to_numpy(array)


def to_numpy(array):
    """A NumPy array holding ``array``'s values, moved from the GPU when needed."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "get"):
        return array.get()
    return np.asarray(array)
