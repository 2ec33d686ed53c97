"""Hot-spot kernels, one module per device with identically named functions.

``numpy_ref``  the readable reference: plain NumPy, what the others must agree with (tests check)
``numba_cpu``  the CPU implementation used by default (Numba, compiled once and cached)
``cupy_gpu``   the GPU implementation (CuPy kernels compiled once at import)

Ops never branch on the device: they ask ``kernels_for(array)`` for the module and call it.
Every module provides: im2col, col2im, winograd_empty, winograd_input, winograd_output,
winograd_output_backward, winograd_input_backward, max_pool2d_forward, max_pool2d_backward,
relu, relu_backward, relu_max_pool2d_forward, relu_max_pool2d_backward, log_softmax,
adam_update, scatter_add, segment_max, segment_softmax, segment_softmax_backward, erf.
"""

from tinymtl.backend.device import device_of, use_cuda_module
from tinymtl.backend.kernels import numba_cpu, numpy_ref

KERNEL_NAMES = (
    "im2col", "col2im", "winograd_empty", "winograd_input", "winograd_output",
    "winograd_output_backward", "winograd_input_backward", "max_pool2d_forward",
    "max_pool2d_backward", "relu", "relu_backward", "relu_max_pool2d_forward",
    "relu_max_pool2d_backward", "log_softmax",
    "adam_update", "scatter_add", "segment_max", "segment_softmax", "segment_softmax_backward",
    "erf",
)


_CUDA_KERNELS = {"module": None}  # kernels.cupy_gpu, imported on first use, or a stand-in's


def kernels_for(array):
    """The kernel module that runs on ``array``'s device."""
    if device_of(array) == "cpu":
        return numba_cpu
    if _CUDA_KERNELS["module"] is None:
        from tinymtl.backend.kernels import cupy_gpu

        _CUDA_KERNELS["module"] = cupy_gpu
    return _CUDA_KERNELS["module"]


def stand_in_for_cuda(module, kernels):
    """Make device 'cuda' mean ``module`` (an array module with CuPy's API) and ``kernels`` (a
    module with the functions of ``KERNEL_NAMES``); ``None, None`` puts CuPy back. For tests:
    ``tests/fake_cuda.py`` runs every "cuda" path on a machine without a GPU."""
    use_cuda_module(module)
    _CUDA_KERNELS["module"] = kernels


__all__ = ["kernels_for", "stand_in_for_cuda", "numpy_ref", "numba_cpu", "KERNEL_NAMES"]
