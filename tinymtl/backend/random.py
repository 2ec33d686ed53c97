"""Seeded random numbers whose state can be saved and restored exactly.

All randomness in tinymtl (initialisation, dropout masks, shuffling, task sampling) draws from a
``Generator``. Its state is a small JSON-able dict, so it is written into checkpoints and a
resumed run draws exactly the numbers an uninterrupted one would. Numbers are drawn on the host
(NumPy's PCG64) and moved to the device afterwards, so a seed gives the same initial weights on
the CPU and on the GPU.
"""

import json

import numpy as np

from tinymtl.backend.device import array_module
from tinymtl.backend.dtype import get_default_dtype


class Generator:
    """A seeded PCG64 stream; ``state_dict()`` / ``load_state_dict()`` round-trip it exactly."""

    def __init__(self, seed=0):
        self.manual_seed(seed)

    def manual_seed(self, seed):
        self.seed = int(seed)
        self.numpy = np.random.Generator(np.random.PCG64(self.seed))
        return self

    # -- draws -----------------------------------------------------------------------------
    def _finish(self, values, dtype, device):
        dtype = np.dtype(dtype or get_default_dtype())
        return array_module(device).asarray(values.astype(dtype, copy=False))

    def uniform(self, low, high, shape, dtype=None, device=None):
        return self._finish(self.numpy.uniform(low, high, size=shape), dtype, device)

    def normal(self, mean, std, shape, dtype=None, device=None):
        return self._finish(self.numpy.normal(mean, std, size=shape), dtype, device)

    def bernoulli(self, p, shape, device=None):
        """A boolean mask, True with probability ``p``."""
        return array_module(device).asarray(self.numpy.random(size=shape) < p)

    def integers(self, low, high=None, size=None):
        return self.numpy.integers(low, high, size=size)

    def permutation(self, n):
        return self.numpy.permutation(n)

    def choice(self, n, size=None, replace=True, p=None):
        return self.numpy.choice(n, size=size, replace=replace, p=p)

    def random(self, size=None):
        return self.numpy.random(size=size)

    def spawn(self, key):
        """An independent child stream derived from this seed and an integer ``key``."""
        return Generator(np.random.SeedSequence([self.seed, int(key)]).generate_state(1)[0])

    # -- state -----------------------------------------------------------------------------
    def state_dict(self):
        return {"seed": self.seed, "bit_generator": self.numpy.bit_generator.state}

    def load_state_dict(self, state):
        self.seed = int(state["seed"])
        self.numpy.bit_generator.state = state["bit_generator"]

    def state_json(self):
        """The state as one JSON string (how checkpoints store it: no pickle)."""
        return json.dumps(self.state_dict())

    def load_state_json(self, text):
        self.load_state_dict(json.loads(text))


default_generator = Generator(0)


def manual_seed(seed):
    """Seed the default generator (PyTorch's ``torch.manual_seed``)."""
    return default_generator.manual_seed(seed)
