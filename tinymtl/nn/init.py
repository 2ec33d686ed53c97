"""Weight initialisation (PyTorch's ``nn.init``), drawn from a seeded backend Generator.

fan_in / fan_out of a weight (out, in, *kernel) are in·k and out·k with k = Π kernel.
  Xavier (Glorot):  Var = gain² · 2 / (fan_in + fan_out)
  Kaiming (He):     Var = gain² / fan,  gain = sqrt(2 / (1 + a²)) for (leaky) ReLU
A uniform U(-b, b) has variance b²/3, hence b = sqrt(3 · Var).
"""

import math
from contextlib import contextmanager

from tinymtl.backend import array_module, get_default_dtype
from tinymtl.backend.random import default_generator

_building_empty = [False]


@contextmanager
def empty_weights():
    """Build modules whose parameters have their shapes but hold no memory, and draw nothing.

    What ``torch.device("meta")`` and Accelerate's ``init_empty_weights`` are for: knowing a
    model's size (``sum(p.numel() for p in model.parameters())``) before allocating it, so a
    config asking for 40 GB is refused with a clear line, not an out-of-memory kill. Each
    parameter's data is one zero broadcast to its shape (a read-only view of zero strides);
    the initialisers below leave such a tensor as it is. A model built here cannot be trained.
    """
    before, _building_empty[0] = _building_empty[0], True
    try:
        yield
    finally:
        _building_empty[0] = before


def empty(*shape, fill=0.0):
    """An array of ``shape`` (the default dtype) for a new parameter: filled with ``fill``, or,
    inside ``empty_weights()``, a view that holds no memory."""
    xp = array_module()
    if _building_empty[0]:
        return xp.broadcast_to(xp.asarray(fill, dtype=get_default_dtype()), shape)
    return xp.full(shape, fill, dtype=get_default_dtype())


def calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError("fan in and fan out need a tensor of at least 2 dimensions")
    receptive = 1
    for size in tensor.shape[2:]:
        receptive *= size
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "conv1d", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def is_empty(tensor):
    return not tensor.data.flags.writeable  # built inside empty_weights(): nothing to fill


def _fill(tensor, values):
    if not is_empty(tensor):
        tensor.data[...] = values
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    if is_empty(tensor):
        return tensor
    gen = generator or default_generator
    return _fill(tensor, gen.uniform(a, b, tensor.shape, dtype=tensor.dtype, device=tensor.device))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    if is_empty(tensor):
        return tensor
    gen = generator or default_generator
    return _fill(tensor, gen.normal(mean, std, tensor.shape, dtype=tensor.dtype,
                                    device=tensor.device))


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def constant_(tensor, value):
    return _fill(tensor, value)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)
