"""What sits between the shared backbone and each task's head (``model.architecture``).

    hard      heads[t](f(x))                                  hard parameter sharing (default)
    adapters  heads[t](f + A_t(f)),  A_t(f) = U_t ReLU(D_t f)  a small private residual block per
              task on top of the shared features (Houlsby et al. 2019; Rebuffi et al. 2017):
              the "shared vs private" ablation. U_t starts at zero, so every task starts from
              the shared features themselves; D_t/U_t are 1x1 convolutions on a feature map.
    mmoe      heads[t](Σ_e g_t,e(x) f_e(x)),  g_t(x) = softmax(W_t x + b_t)     (Ma et al. 2018)
              E experts (each a backbone of the configured shape) are shared; every task owns
              a gate that mixes them per example, so tasks that conflict can use different
              experts. The gate reads the input: the pixels (flattened) for images, the
              character histogram (counts / length) for text.

The per-task parts (adapters, gates) are task-private parameters, like the heads.
"""

import numpy as np

from tinymtl import nn
from tinymtl.autograd import Tensor
from tinymtl.autograd.ops.shape import stack
from tinymtl.backend import get_array_module

ARCHITECTURES = ("hard", "adapters", "mmoe")


class Adapter(nn.Module):
    """f + U ReLU(D f): a bottleneck residual block, initialised to the identity (U = 0)."""

    def __init__(self, feature_shape, hidden):
        super().__init__()
        if len(feature_shape) == 1:
            self.down = nn.Linear(feature_shape[0], hidden)
            self.up = nn.Linear(hidden, feature_shape[0])
        else:  # a feature map: the same block at every position (1x1 convolutions)
            self.down = nn.Conv2d(feature_shape[0], hidden, 1)
            self.up = nn.Conv2d(hidden, feature_shape[0], 1)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, features):
        return features + self.up(self.down(features).relu())


class MixtureFeatures:
    """What the shared experts compute for a batch: every expert's features stacked,
    (N, E, *feature_shape), and the gates' input (N, D), a constant. Rows slice together (mixed
    batches split one forward pass among tasks) and ``detach`` stops the gradient into the
    experts (stop-gradient tasks), as on a plain features Tensor."""

    def __init__(self, experts, gate_input):
        self.experts, self.gate_input = experts, gate_input

    def __getitem__(self, rows):
        return MixtureFeatures(self.experts[rows], self.gate_input[rows])

    def __len__(self):
        return len(self.gate_input)

    def detach(self):
        return MixtureFeatures(self.experts.detach(), self.gate_input)


def gate_input(x, vocab_size):
    """The gates' view of a batch: flattened pixels, or a text's character histogram."""
    xp = get_array_module(x)
    if x.dtype.kind in "iu":  # token ids: counts of each character over the (unpadded) length
        counts = xp.zeros((len(x), vocab_size), dtype=np.float32)
        for position in range(x.shape[1]):
            counts[xp.arange(len(x)), x[:, position]] += 1
        counts[:, 0] = 0  # padding
        return counts / xp.maximum(counts.sum(1, keepdims=True), 1)
    return x.reshape(len(x), -1)


class Experts(nn.Module):
    """E backbones side by side; ``forward`` returns ``MixtureFeatures``."""

    def __init__(self, experts, vocab_size):
        super().__init__()
        self.experts = nn.ModuleList(experts)
        self.vocab_size = vocab_size
        self.out_shape = getattr(experts[0], "out_shape", (experts[0].out_features,))

    def forward(self, x):
        outputs = stack([expert(x) for expert in self.experts], dim=1)
        return MixtureFeatures(outputs, gate_input(x.data, self.vocab_size))


class Gate(nn.Module):
    """Task t's mixture: Σ_e softmax(W x + b)_e · f_e."""

    def __init__(self, in_features, experts):
        super().__init__()
        self.linear = nn.Linear(in_features, experts)

    def weights(self, gate_input):
        return self.linear(Tensor(gate_input)).softmax(dim=-1)  # (N, E)

    def forward(self, mixture):
        g = self.weights(mixture.gate_input)
        extra = mixture.experts.ndim - 2  # feature dimensions to broadcast g over
        g = g.reshape(*g.shape, *(1,) * extra)
        return (mixture.experts * g).sum(1)
