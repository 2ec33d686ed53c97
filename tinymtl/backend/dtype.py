"""The default floating dtype: float32 everywhere, float64 only when asked (gradient checks)."""

import contextlib

import numpy as np

_state = {"dtype": np.dtype(np.float32)}
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def get_default_dtype():
    """The dtype new floating tensors get (float32 unless changed)."""
    return _state["dtype"]


def set_default_dtype(dtype):
    """Change the default floating dtype; only float32 and float64 are supported."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _state["dtype"] = dtype


@contextlib.contextmanager
def default_dtype(dtype):
    """Temporarily change the default dtype: ``with default_dtype(np.float64): ...``."""
    previous = get_default_dtype()
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)
