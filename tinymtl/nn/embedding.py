"""Embedding: a learned vector per token id (a lookup table whose rows are trained)."""

from tinymtl.autograd.ops.nn_ops import embedding
from tinymtl.nn import init
from tinymtl.nn.linear import _empty
from tinymtl.nn.module import Module, Parameter


class Embedding(Module):
    """(..., ) integer ids -> (..., embedding_dim); rows initialised N(0, 1) as in PyTorch.
    ``padding_idx``: that row starts at zero and never receives a gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, generator=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(_empty(num_embeddings, embedding_dim))
        init.normal_(self.weight, generator=generator)
        if padding_idx is not None and not init.is_empty(self.weight):
            self.weight.data[padding_idx] = 0

    def forward(self, indices):
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}"
