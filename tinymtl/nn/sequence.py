"""Encoders for short character sequences ("7+5", "after C"), used by the text tasks.

``CharConvEncoder``: ids (N, L) -> embedding (N, L, E) -> Conv1d+ReLU layers over positions
(N, C, L) -> pooling -> Linear -> ReLU -> features (N, out_features). ``pooling`` chooses what
the projection sees: "flatten" keeps *where* each pattern is (the whole (C, L) map); "max" keeps
only *whether* it occurs anywhere (max over positions: the same detector fires wherever an
offset put the text); "flatten+max" concatenates both.

``SelfAttentionEncoder``: ids -> embedding + learned positions -> one pre-norm transformer
block (single-head self-attention, then an MLP, each with a residual) -> mean over positions.
"""

import math

from tinymtl.autograd.ops.reduction import amax, mean, softmax
from tinymtl.autograd.ops.shape import cat, flatten, transpose
from tinymtl.nn import init
from tinymtl.nn.activation import GELU, ReLU
from tinymtl.nn.containers import ModuleList, Sequential
from tinymtl.nn.conv import Conv1d
from tinymtl.nn.embedding import Embedding
from tinymtl.nn.linear import Linear, _empty
from tinymtl.nn.module import Module, Parameter
from tinymtl.nn.normalization import LayerNorm


class CharConvEncoder(Module):
    POOLINGS = ("flatten", "max", "flatten+max")

    def __init__(self, vocab_size, max_length, embedding_dim=32, channels=(64, 64),
                 kernel_size=3, out_features=128, padding_idx=0, pooling="flatten",
                 generator=None):
        super().__init__()
        if pooling not in self.POOLINGS:
            raise ValueError(f"pooling must be one of {self.POOLINGS}, got {pooling!r}")
        self.max_length, self.pooling = max_length, pooling
        self.embedding = Embedding(vocab_size, embedding_dim, padding_idx, generator)
        convs, width = [], embedding_dim
        for out_channels in channels:
            convs.append(Conv1d(width, out_channels, kernel_size, padding=kernel_size // 2,
                                generator=generator))
            width = out_channels
        self.convs = ModuleList(convs)
        self.relu = ReLU()
        pooled = {"flatten": width * max_length, "max": width,
                  "flatten+max": width * (max_length + 1)}[pooling]
        self.project = Sequential(Linear(pooled, out_features, generator=generator), ReLU())
        self.out_features = out_features

    def forward(self, ids):
        if ids.shape[-1] != self.max_length:
            raise ValueError(f"CharConvEncoder expects sequences of length {self.max_length}, "
                             f"got {ids.shape[-1]}")
        x = transpose(self.embedding(ids), 1, 2)  # (N, L, E) -> (N, E, L)
        for conv in self.convs:
            x = self.relu(conv(x))
        if self.pooling == "flatten":
            pooled = flatten(x, 1)
        elif self.pooling == "max":
            pooled = amax(x, dim=2)
        else:
            pooled = cat([flatten(x, 1), amax(x, dim=2)], dim=1)
        return self.project(pooled)


class SelfAttention(Module):
    """softmax(Q Kᵀ / √d) V with Q, K, V = x W_q, x W_k, x W_v (one head), then W_o."""

    def __init__(self, dim, generator=None):
        super().__init__()
        self.query = Linear(dim, dim, generator=generator)
        self.key = Linear(dim, dim, generator=generator)
        self.value = Linear(dim, dim, generator=generator)
        self.out = Linear(dim, dim, generator=generator)
        self.scale = 1 / math.sqrt(dim)

    def forward(self, x):
        scores = self.query(x) @ transpose(self.key(x), 1, 2) * self.scale  # (N, L, L)
        return self.out(softmax(scores, dim=-1) @ self.value(x))


class SelfAttentionEncoder(Module):
    def __init__(self, vocab_size, max_length, dim=64, out_features=128, padding_idx=0,
                 generator=None):
        super().__init__()
        self.max_length = max_length
        self.embedding = Embedding(vocab_size, dim, padding_idx, generator)
        self.position = Parameter(_empty(max_length, dim))
        init.normal_(self.position, std=0.02, generator=generator)
        self.norm1, self.norm2 = LayerNorm(dim), LayerNorm(dim)
        self.attention = SelfAttention(dim, generator)
        self.mlp = Sequential(Linear(dim, 2 * dim, generator=generator), GELU(),
                              Linear(2 * dim, dim, generator=generator))
        self.project = Sequential(Linear(dim, out_features, generator=generator), ReLU())
        self.out_features = out_features

    def forward(self, ids):
        x = self.embedding(ids) + self.position
        x = x + self.attention(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.project(mean(x, dim=1))
