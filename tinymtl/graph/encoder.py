"""``GraphEncoder``: the shared backbone of graph tasks — a stack of graph attention layers,
then pooling into one vector per graph.

    h⁰ = node features;  hᵏ = ReLU(GATᵏ(hᵏ⁻¹))  (heads concatenated: each layer is
    ``hidden[k]`` wide, ``hidden[k] / heads`` per head);  z_g = pool_{i in g}(h_iᴸ)

with typed edges (``num_relations``) each layer is a ``RelationalGATConv``. ``pooling`` is
sum, mean, max or attention (``pool.py``). ``forward(graph)`` takes a collated ``Graph`` (one
vector per graph), or a ``NodeSet`` (one vector per node of the set, no pooling: node tasks);
``node_embeddings(graph)`` stops before pooling; ``attention(graph)`` returns each layer's
attention (edge_index, α), what attention-based salience is made of.
"""

from tinymtl import nn
from tinymtl.autograd.ops.elementwise import relu
from tinymtl.autograd.tensor import Tensor
from tinymtl.autograd.ops.segment import index_select
from tinymtl.graph.conv import GATConv, RelationalGATConv
from tinymtl.graph.nodes import NodeSet
from tinymtl.graph.pool import (
    AttentionalAggregation, global_add_pool, global_max_pool, global_mean_pool,
)

POOLING = ("sum", "mean", "max", "attention")


class GraphEncoder(nn.Module):
    def __init__(self, in_features, hidden=(64, 64), heads=4, edge_dim=None,
                 num_relations=None, pooling="mean", dropout=0.0):
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"unknown graph pooling {pooling!r}; expected one of "
                             f"{', '.join(POOLING)}")
        for width in hidden:
            if width % heads:
                raise ValueError(f"a graph layer {width} wide cannot split into {heads} heads; "
                                 f"expected widths divisible by the heads")
        self.num_relations, self.pooling = num_relations, pooling
        layers, width = [], in_features
        for out in hidden:
            if num_relations:
                layers.append(RelationalGATConv(width, out // heads, num_relations, heads=heads,
                                                dropout=dropout))
            else:
                layers.append(GATConv(width, out // heads, heads=heads, dropout=dropout,
                                      edge_dim=edge_dim))
            width = out
        self.layers = nn.ModuleList(layers)
        self.pool = AttentionalAggregation(nn.Linear(width, 1)) if pooling == "attention" \
            else None
        self.out_features = width
        self.out_shape = (width,)

    def _layer(self, layer, x, graph, attention=False):
        if self.num_relations:
            return layer(x, graph.edge_index, graph.edge_type,
                         return_attention_weights=attention)
        edge_attr = None if graph.edge_attr is None or layer.edge_dim is None else \
            Tensor(graph.edge_attr)
        return layer(x, graph.edge_index, edge_attr, return_attention_weights=attention)

    @staticmethod
    def _features(graph):
        """The node features as a Tensor (already one when a caller wants their gradient)."""
        return graph.x if isinstance(graph.x, Tensor) else Tensor(graph.x)

    def node_embeddings(self, graph):
        x = self._features(graph)
        for layer in self.layers:
            x = relu(self._layer(layer, x, graph))
        return x

    def attention(self, graph):
        """[(edge_index, α (E, heads))] of every layer, on ``graph``."""
        x, found = self._features(graph), []
        for layer in self.layers:
            out, weights = self._layer(layer, x, graph, attention=True)
            found.append(weights)
            x = relu(out)
        return found

    def forward(self, graph):
        if isinstance(graph, NodeSet):  # node tasks: the whole graph, read out at the nodes
            return index_select(self.node_embeddings(graph.graph), graph.nodes)
        x = self.node_embeddings(graph)
        size = graph.num_graphs
        if self.pooling == "attention":
            return self.pool(x, graph.batch, size)
        pool = {"sum": global_add_pool, "mean": global_mean_pool,
                "max": global_max_pool}[self.pooling]
        return pool(x, graph.batch, size)
