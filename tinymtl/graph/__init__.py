"""Graphs: batched (heterogeneous) graphs, message passing with attention, and pooling.

    batch.py   Graph (node features, edge_index 2 × E, edge and node types, graph ids and
               pointers) and ``collate``: many small graphs as one disjoint union; self-loops;
               GraphSet: a task's graphs stored flat, indexed like an array
    conv.py    GATConv (PyTorch Geometric's semantics) and RelationalGATConv (typed edges)
    pool.py    global sum / mean / max pooling, attention pooling
    nodes.py   NodeSet: some nodes of one graph as a task's examples (node tasks)
    encoder.py GraphEncoder: GAT layers then pooling (or a node read-out), a multi-task
               model's shared backbone
    salience.py which nodes an answer rests on: attention, gradient × input, random
    augment.py GraphCL's augmentations (drop nodes, perturb edges, mask attributes, subgraph)
               and its NT-Xent loss

Built on ``nn`` and the segment ops (``autograd.ops.segment``); ``mtl`` builds on it.
"""

from tinymtl.graph.batch import Graph, GraphSet, add_self_loops, collate, remove_self_loops
from tinymtl.graph.conv import GATConv, RelationalGATConv
from tinymtl.graph.encoder import GraphEncoder
from tinymtl.graph.nodes import NodeSet
from tinymtl.graph.pool import (
    AttentionalAggregation, global_add_pool, global_max_pool, global_mean_pool,
)

__all__ = ["Graph", "GraphSet", "NodeSet", "GraphEncoder", "collate", "add_self_loops", "remove_self_loops", "GATConv",
           "RelationalGATConv", "global_add_pool", "global_mean_pool", "global_max_pool",
           "AttentionalAggregation"]
