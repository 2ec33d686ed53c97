"""tinymtl: a small, readable deep-learning and multi-task-learning framework.

The layers, bottom to top: ``backend`` (array module, dtype, RNG, kernels), ``autograd``
(Tensor, Function, backward), ``nn`` and ``optim``, then ``mtl``, ``train`` and ``cli``.
"""

__version__ = "0.1.0"

from tinymtl.backend import (  # noqa: E402
    get_default_dtype,
    set_default_dtype,
    default_dtype,
    set_device,
    get_device,
    manual_seed,
)
from tinymtl.autograd import (  # noqa: E402
    Tensor,
    tensor,
    zeros,
    ones,
    randn,
    no_grad,
    enable_grad,
    is_grad_enabled,
)

__all__ = [
    "__version__", "Tensor", "tensor", "zeros", "ones", "randn", "no_grad", "enable_grad",
    "is_grad_enabled", "get_default_dtype", "set_default_dtype", "default_dtype", "set_device",
    "get_device", "manual_seed",
]
