"""Hot-spot kernels, one module per device with identically named functions.

``numpy_ref``  the readable reference: plain NumPy, what the others must agree with (tests check)
``numba_cpu``  the CPU implementation used by default (Numba, compiled once and cached)
``cupy_gpu``   the GPU implementation (CuPy kernels compiled once at import)

Ops never branch on the device: they ask ``kernels_for(array)`` for the module and call it.
Every module provides: im2col, col2im, max_pool2d_forward, max_pool2d_backward, relu,
relu_backward, log_softmax,
adam_update, scatter_add, segment_max, segment_softmax, segment_softmax_backward, erf.
"""

import numpy as np

from tinymtl.backend.kernels import numba_cpu, numpy_ref

KERNEL_NAMES = (
    "im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward", "relu", "relu_backward",
    "log_softmax",
    "adam_update", "scatter_add", "segment_max", "segment_softmax", "segment_softmax_backward",
    "erf",
)


def kernels_for(array):
    """The kernel module that runs on ``array``'s device."""
    if isinstance(array, (np.ndarray, np.generic)):  # (a 0-d result may be a NumPy scalar)
        return numba_cpu
    from tinymtl.backend.kernels import cupy_gpu

    return cupy_gpu


__all__ = ["kernels_for", "numpy_ref", "numba_cpu", "KERNEL_NAMES"]
