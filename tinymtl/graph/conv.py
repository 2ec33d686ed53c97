"""Graph attention: every node i sums its neighbours' messages, each weighted by how much i
attends to that neighbour (Veličković et al. 2018, "Graph Attention Networks"), with PyTorch
Geometric's ``GATConv`` semantics so that the same weights give the same numbers.

For H heads of width C, with h_j = W x_j split into heads (W: ``lin``, no bias):

    e_ij = LeakyReLU(a_src · h_j + a_dst · h_i [+ a_edge · W_e x_ij], slope 0.2)   per head
    α_ij = softmax of e_ij over i's incoming edges j → i                             (segment)
    x'_i = Σ_j α_ij h_j       then the heads concatenated (H·C) or averaged (C), + bias

Self-loops (i → i) are added first (existing ones removed), so a node also attends to itself;
with edge features, a loop's features are the mean of the node's incoming edges' (PyG's
``fill_value='mean'``). Attention dropout drops α entries in training. Any layer can return its
attention (``return_attention_weights=True``): (edge_index with the loops, α of shape (E, H)),
what salience maps are made of.

``RelationalGATConv`` is the typed-edge (heterogeneous) variant: each relation r has its own
projection W_r and attention vectors, the softmax runs over all of i's incoming edges whatever
their relation, so relations compete for i's attention (RGAT, Busbridge et al. 2019, "across
relation" attention); self-loops are one more relation.
"""

import math

import numpy as np

from tinymtl import nn
from tinymtl.autograd.ops.elementwise import leaky_relu
from tinymtl.autograd.ops.nn_ops import dropout
from tinymtl.autograd.ops.reduction import mean, sum
from tinymtl.autograd.ops.segment import index_select, segment_mean, segment_softmax, segment_sum
from tinymtl.autograd.ops.shape import cat
from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import get_array_module
from tinymtl.graph.batch import add_self_loops, remove_self_loops
from tinymtl.nn import init
from tinymtl.nn.module import Parameter


def glorot_(parameter, generator=None):
    """PyG's glorot: U(±√(6 / (a + b))) with a, b the last two dimensions."""
    bound = math.sqrt(6.0 / (parameter.shape[-2] + parameter.shape[-1]))
    return init.uniform_(parameter, -bound, bound, generator)


def _as_tensor(value):
    return value if value is None or isinstance(value, Tensor) else Tensor(value)


class GATConv(nn.Module):
    """A graph attention layer (module docstring): ``GATConv(in, out, heads=4)``, then
    ``layer(x, edge_index)`` → (N, heads·out) (or (N, out) with ``concat=False``)."""

    def __init__(self, in_channels, out_channels, heads=1, concat=True, negative_slope=0.2,
                 dropout=0.0, add_self_loops=True, edge_dim=None, bias=True, residual=False,
                 generator=None):
        super().__init__()
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops, self.edge_dim = add_self_loops, edge_dim
        width = out_channels * (heads if concat else 1)
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = Parameter(init.empty(1, heads, out_channels))
        self.att_dst = Parameter(init.empty(1, heads, out_channels))
        self.lin_edge = nn.Linear(edge_dim, heads * out_channels, bias=False) \
            if edge_dim is not None else None
        self.att_edge = Parameter(init.empty(1, heads, out_channels)) \
            if edge_dim is not None else None
        self.res = nn.Linear(in_channels, width, bias=False) if residual else None
        self.bias = Parameter(init.empty(width)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        for layer in (self.lin, self.lin_edge, self.res):
            if layer is not None:
                glorot_(layer.weight, generator)
        for parameter in (self.att_src, self.att_dst, self.att_edge):
            if parameter is not None:
                glorot_(parameter, generator)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x, edge_index, edge_attr=None, return_attention_weights=False):
        n, heads, channels = x.shape[0], self.heads, self.out_channels
        h = self.lin(x).reshape(n, heads, channels)
        score_src = sum(h * self.att_src, dim=-1)  # (N, H): a_src · h_j for each node
        score_dst = sum(h * self.att_dst, dim=-1)
        edge_index, edge_attr = self.edges(edge_index, n, _as_tensor(edge_attr))
        source, target = edge_index
        logits = index_select(score_src, source) + index_select(score_dst, target)
        if self.lin_edge is not None:
            if edge_attr is None:
                raise ValueError("this GATConv has edge_dim set: it needs edge_attr")
            features = self.lin_edge(edge_attr).reshape(-1, heads, channels)
            logits = logits + sum(features * self.att_edge, dim=-1)
        alpha = segment_softmax(leaky_relu(logits, self.negative_slope), target, n)
        alpha = dropout(alpha, self.dropout, self.training)
        messages = index_select(h, source) * alpha.reshape(-1, heads, 1)
        out = segment_sum(messages, target, n)  # (N, H, C)
        out = out.reshape(n, heads * channels) if self.concat else mean(out, dim=1)
        if self.res is not None:
            out = out + self.res(x)
        if self.bias is not None:
            out = out + self.bias
        return (out, (edge_index, alpha)) if return_attention_weights else out

    def edges(self, edge_index, num_nodes, edge_attr=None):
        """The edges messages pass along: the given ones, less their self-loops, then one loop
        per node (if ``add_self_loops``), with a loop's features the mean of the node's
        incoming edges' (0 for a node with none)."""
        edge_index = edge_index.data if isinstance(edge_index, Tensor) else edge_index
        if not self.add_self_loops:
            return edge_index, edge_attr
        edge_index, kept = remove_self_loops(edge_index)
        if edge_attr is not None:
            edge_attr = edge_attr[kept]
            loops = segment_mean(edge_attr, edge_index[1], num_nodes)
            edge_attr = cat([edge_attr, loops], dim=0)
        return add_self_loops(edge_index, num_nodes), edge_attr

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"concat={self.concat}")


class RelationalGATConv(nn.Module):
    """Graph attention over typed edges (module docstring): ``layer(x, edge_index,
    edge_type)`` with relations 0..num_relations−1; self-loops are relation num_relations."""

    def __init__(self, in_channels, out_channels, num_relations, heads=1, concat=True,
                 negative_slope=0.2, dropout=0.0, add_self_loops=True, bias=True,
                 generator=None):
        super().__init__()
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.num_relations, self.concat = num_relations, concat
        self.negative_slope, self.dropout, self.add_self_loops = negative_slope, dropout, \
            add_self_loops
        relations = num_relations + (1 if add_self_loops else 0)
        self.weight = Parameter(init.empty(relations, in_channels, heads * out_channels))
        self.att_src = Parameter(init.empty(relations, heads, out_channels))
        self.att_dst = Parameter(init.empty(relations, heads, out_channels))
        width = out_channels * (heads if concat else 1)
        self.bias = Parameter(init.empty(width)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        for parameter in (self.weight, self.att_src, self.att_dst):
            glorot_(parameter, generator)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x, edge_index, edge_type, return_attention_weights=False):
        n, heads, channels = x.shape[0], self.heads, self.out_channels
        edge_index = edge_index.data if isinstance(edge_index, Tensor) else edge_index
        edge_type = edge_type.data if isinstance(edge_type, Tensor) else edge_type
        if len(edge_type) and (edge_type.min() < 0 or edge_type.max() >= self.num_relations):
            raise ValueError(f"edge_type holds {int(edge_type.max())}; expected relations "
                             f"0..{self.num_relations - 1}")
        if self.add_self_loops:
            edge_index, kept = remove_self_loops(edge_index)
            edge_index, edge_type = add_self_loops(edge_index, n), edge_type[kept]
            xp = get_array_module(edge_type)
            edge_type = xp.concatenate([edge_type, xp.full(n, self.num_relations,
                                                           dtype=edge_type.dtype)])
        relations = self.weight.shape[0]
        h = (x @ self.weight).reshape(relations, n, heads, channels)  # W_r x for every r
        score_src = sum(h * self.att_src.reshape(relations, 1, heads, channels), dim=-1)
        score_dst = sum(h * self.att_dst.reshape(relations, 1, heads, channels), dim=-1)
        source, target = edge_index
        by_relation_src = edge_type * n + source  # row of (r, j) in the flattened (R·N, ...)
        by_relation_dst = edge_type * n + target
        logits = index_select(score_src.reshape(relations * n, heads), by_relation_src) + \
            index_select(score_dst.reshape(relations * n, heads), by_relation_dst)
        alpha = segment_softmax(leaky_relu(logits, self.negative_slope), target, n)
        alpha = dropout(alpha, self.dropout, self.training)
        messages = index_select(h.reshape(relations * n, heads, channels), by_relation_src) \
            * alpha.reshape(-1, heads, 1)
        out = segment_sum(messages, target, n)
        out = out.reshape(n, heads * channels) if self.concat else mean(out, dim=1)
        if self.bias is not None:
            out = out + self.bias
        return (out, (edge_index, alpha)) if return_attention_weights else out
