"""Seeded random numbers whose state can be saved and restored exactly.

All randomness in tinymtl (initialisation, dropout masks, shuffling, task sampling) draws from a
``Generator``. Its state is a small JSON-able dict, so it is written into checkpoints and a
resumed run draws exactly the numbers an uninterrupted one would. Numbers are drawn on the host
(NumPy's PCG64) and moved to the device afterwards, so a seed gives the same initial weights on
the CPU and on the GPU.
"""

import json
import zlib

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


# -- the named streams of a run ----------------------------------------------------------------------
# Every random stream a run draws besides the default generator, spawned from the run's seed:
# Generator(seed).spawn(key + offset). One table, so that no two parts of the code pick the same
# key by accident; the keys are those of earlier versions, so runs stay bitwise identical.
STREAMS = {
    "task_sampler": 0,         # Trainer: the task of each alternating step
    "epoch_sampler": 1,        # Trainer: task k's batch order (tasks sorted by name): + k
    "gradient_surgery": 1,     # Trainer: PCGrad's orders: + T (T tasks), after the samplers
    "continual_replay": 7_000,  # continual sequence: the replay reservoir's draws
    "continual_fisher": 8_000,  # continual sequence: stage s's Fisher examples (and labels): + s
    "rlw": 9_000,              # Trainer: random loss weighting's draws
    "quick_eval": 10_000,      # Trainer: task k's fixed validation subsample (eval_size): + k
    "pretrain_split": 11_000,  # pretraining: which graphs of the pool are held out (valid)
    "pretrain_batches": 11_001,  # pretraining: the order of the pool's graphs, epoch by epoch
    "pretrain_views": 11_002,  # pretraining: each batch's two augmentations
    "pretrain_eval": 11_003,   # pretraining: the fixed views of the held-out graphs
    "salience": 12_000,        # the random salience baseline's draws
}
CONTINUAL_STAGE_SEED = 1_000  # continual sequence: stage s trains with seed + 1000 (s + 1)


def stream(seed, name, offset=0):
    """The named stream ``name`` of a run with this seed (``STREAMS``; a name not in the table,
    e.g. a user plugin's, gets a key derived from the name, clear of the table's)."""
    key = STREAMS[name] if name in STREAMS else 100_000 + zlib.crc32(name.encode()) % 900_000
    return Generator(seed).spawn(key + offset)
