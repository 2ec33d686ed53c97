"""The bottom layer: which array module runs the math, in which dtype, with which random numbers.

Everything above this package writes its math once, against ``xp = get_array_module(x)``;
only the hot spots in ``backend.kernels`` have one implementation per device.
"""

from tinymtl.backend.device import (
    array_module,
    get_array_module,
    get_device,
    set_device,
    to_device,
    to_numpy,
    device_of,
)
from tinymtl.backend.dtype import default_dtype, get_default_dtype, set_default_dtype
from tinymtl.backend.memory import configure_allocator
from tinymtl.backend.random import Generator, default_generator, manual_seed

configure_allocator()

__all__ = [
    "array_module", "get_array_module", "get_device", "set_device", "to_device", "to_numpy",
    "device_of", "default_dtype", "get_default_dtype", "set_default_dtype", "Generator",
    "default_generator", "manual_seed",
]
