"""tinymtl: a small, readable deep-learning and multi-task-learning framework.

The layers, bottom to top: ``backend`` (array module, dtype, RNG, kernels), ``autograd``
(Tensor, Function, backward), ``nn`` and ``optim``, ``datasets``, then ``mtl`` (models and
methods as plugins), ``train`` (the Trainer, checkpoints, config), ``runs`` (run protocols) and
``report`` (plots, tables), and ``cli`` last.

``tinymtl.run``, ``tinymtl.Trainer`` and ``tinymtl.Plugin`` are the training API; they are
imported on first use, so ``import tinymtl`` stays as light as the tensor library.
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

_TRAINING_API = {"run": "tinymtl.runs", "Trainer": "tinymtl.train.trainer",
                 "Plugin": "tinymtl.mtl.plugin"}


def __getattr__(name):
    """``tinymtl.run``, ``tinymtl.Trainer``, ``tinymtl.Plugin``, imported when first asked for."""
    if name in _TRAINING_API:
        import importlib

        return getattr(importlib.import_module(_TRAINING_API[name]), name)
    raise AttributeError(f"module 'tinymtl' has no attribute {name!r}")


__all__ = [
    "run", "Trainer", "Plugin", "__version__", "Tensor", "tensor", "zeros", "ones", "randn", "no_grad", "enable_grad",
    "is_grad_enabled", "get_default_dtype", "set_default_dtype", "default_dtype", "set_device",
    "get_device", "manual_seed",
]
