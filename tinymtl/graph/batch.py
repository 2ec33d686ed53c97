"""``Graph``: one graph, or a batch of many as one disjoint union.

    x           (N, F)   node features
    edge_index  (2, E)   int64; column e is an edge from node edge_index[0, e] (the source j)
                         to node edge_index[1, e] (the target i): messages flow j → i, as in
                         PyTorch Geometric
    edge_attr   (E, D)   edge features (optional)
    edge_type   (E,)     int64 relation of each edge, for typed (heterogeneous) graphs
    node_type   (N,)     int64 type of each node (optional)
    y                    the graph's (or each node's) labels (optional)
    batch       (N,)     which graph each node belongs to; ``ptr`` (G + 1,) the node offsets

``collate(graphs)`` puts G graphs into one: nodes stacked, each graph's edge indices shifted by
the nodes before it, so no edge crosses two graphs and one pass of message passing treats the
whole batch (the way PyG's ``Batch`` does). ``graph.edge_batch`` gives each edge's graph.
"""

import copy
import dataclasses

import numpy as np

from tinymtl.backend import device_of, get_array_module, to_device


@dataclasses.dataclass
class Graph:
    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray = None
    edge_type: np.ndarray = None
    node_type: np.ndarray = None
    y: object = None
    batch: np.ndarray = None
    ptr: np.ndarray = None

    def __post_init__(self):
        self.edge_index = np.asarray(self.edge_index, dtype=np.int64).reshape(2, -1)
        n = len(self.x)
        if self.edge_index.size and (self.edge_index.min() < 0 or self.edge_index.max() >= n):
            raise ValueError(f"edge_index refers to node {int(self.edge_index.max())} of a "
                             f"graph with {n} nodes; expected indices in [0, {n})")
        for name in ("edge_attr", "edge_type"):
            value = getattr(self, name)
            if value is not None and len(value) != self.num_edges:
                raise ValueError(f"{name} has {len(value)} rows for {self.num_edges} edges")
        if self.node_type is not None and len(self.node_type) != n:
            raise ValueError(f"node_type has {len(self.node_type)} rows for {n} nodes")
        if self.batch is None:
            self.batch = np.zeros(n, dtype=np.int64)
            self.ptr = np.array([0, n], dtype=np.int64)

    @property
    def num_nodes(self):
        return len(self.x)

    @property
    def num_edges(self):
        return self.edge_index.shape[1]

    @property
    def num_graphs(self):
        return len(self.ptr) - 1

    @property
    def edge_batch(self):
        """Which graph each edge belongs to (its target's)."""
        return self.batch[self.edge_index[1]]

    def to(self, device):
        """This graph with its arrays on ``device`` ('cpu' or 'cuda'), as ``Data.to`` in PyG; the
        labels ``y`` stay in host memory, where the losses and scores read them."""
        if device_of(self.x) == device_of(self.edge_index) == device:
            return self
        moved = copy.copy(self)  # (not a new Graph: its checks would read device arrays)
        for name in ("x", "edge_index", "edge_attr", "edge_type", "node_type", "batch", "ptr"):
            value = getattr(self, name)
            if value is not None:
                setattr(moved, name, to_device(value, device))
        return moved

    def graph(self, k):
        """Graph k of a batch, as it was before ``collate`` (indices back from 0)."""
        start, end = int(self.ptr[k]), int(self.ptr[k + 1])
        keep = (self.edge_index[1] >= start) & (self.edge_index[1] < end)
        pick = (lambda a: None if a is None else a[keep])
        return Graph(x=self.x[start:end], edge_index=self.edge_index[:, keep] - start,
                     edge_attr=pick(self.edge_attr), edge_type=pick(self.edge_type),
                     node_type=None if self.node_type is None else self.node_type[start:end],
                     y=None if self.y is None or np.ndim(self.y) == 0 else self.y[k])


def _joined(items, name, who):
    """The ``name`` arrays of ``items`` (graphs or graph sets) end to end, or None when none
    has them; a ValueError when only some have."""
    values = [getattr(item, name) for item in items]
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise ValueError(f"{who}: some graphs have {name} and some do not")
    return np.concatenate(values)


def collate(graphs):
    """One ``Graph`` holding ``graphs`` as a disjoint union (module docstring). Optional fields
    are kept when every graph has them; labels are stacked (one row per graph)."""
    graphs = list(graphs)
    if not graphs:
        raise ValueError("collate needs at least one graph")
    sizes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)])

    joined = (lambda name: _joined(graphs, name, "collate"))
    ys = [g.y for g in graphs]
    y = None if any(v is None for v in ys) else np.stack([np.asarray(v) for v in ys])
    return Graph(
        x=np.concatenate([g.x for g in graphs]),
        edge_index=np.concatenate([g.edge_index + offset for g, offset in zip(graphs, ptr)],
                                  axis=1),
        edge_attr=joined("edge_attr"), edge_type=joined("edge_type"),
        node_type=joined("node_type"), y=y,
        batch=np.repeat(np.arange(len(graphs), dtype=np.int64), sizes), ptr=ptr)


def remove_self_loops(edge_index):
    """(the edges without those i → i, the positions of the edges kept): index an edge
    feature array or Tensor with the positions to drop its loops' rows too."""
    kept = np.flatnonzero(edge_index[0] != edge_index[1])
    return edge_index[:, kept], kept


def add_self_loops(edge_index, num_nodes):
    """Edges i → i for every node, appended after the given ones (PyG's order)."""
    xp = get_array_module(edge_index)
    loops = xp.arange(num_nodes, dtype=edge_index.dtype)
    return xp.concatenate([edge_index, xp.stack([loops, loops])], axis=1)


class GraphSet:
    """A dataset of graphs stored flat, the way a task's ``x_train`` holds images: every
    graph's nodes stacked in ``x`` (and ``node_type``), every edge in ``edge_index`` (node
    numbers local to its graph) with ``edge_attr`` / ``edge_type``; graph g owns nodes
    ``node_ptr[g]:node_ptr[g+1]`` and edges ``edge_ptr[g]:edge_ptr[g+1]``.

    It answers what a trainer asks of inputs: ``len(s)``, ``s[index]`` (integer array or
    slice: those graphs, as a GraphSet), ``s.shape`` ((graphs, node features): one example's
    "shape" is its node features' width) and ``s.dtype``; ``s.collate()`` is the batch a graph
    encoder reads (a ``Graph``, disjoint union)."""

    def __init__(self, x, edge_index, node_ptr, edge_ptr, edge_attr=None, edge_type=None,
                 node_type=None):
        self.x, self.edge_index = np.asarray(x), np.asarray(edge_index, np.int64).reshape(2, -1)
        self.node_ptr = np.asarray(node_ptr, np.int64)
        self.edge_ptr = np.asarray(edge_ptr, np.int64)
        self.edge_attr, self.edge_type, self.node_type = edge_attr, edge_type, node_type
        if self.node_ptr[-1] != len(self.x) or self.edge_ptr[-1] != self.edge_index.shape[1] \
                or len(self.node_ptr) != len(self.edge_ptr):
            raise ValueError(f"a GraphSet's pointers do not fit its arrays: node_ptr ends at "
                             f"{self.node_ptr[-1]} for {len(self.x)} nodes, edge_ptr at "
                             f"{self.edge_ptr[-1]} for {self.edge_index.shape[1]} edges")

    @classmethod
    def from_graphs(cls, graphs):
        """The set of ``graphs`` (each a ``Graph`` with local node numbers)."""
        graphs = list(graphs)
        node_ptr = np.concatenate([[0], np.cumsum([g.num_nodes for g in graphs])])
        edge_ptr = np.concatenate([[0], np.cumsum([g.num_edges for g in graphs])])

        joined = (lambda name: _joined(graphs, name, "GraphSet.from_graphs"))
        return cls(np.concatenate([g.x for g in graphs]),
                   np.concatenate([g.edge_index for g in graphs], axis=1), node_ptr, edge_ptr,
                   joined("edge_attr"), joined("edge_type"), joined("node_type"))

    @classmethod
    def concatenate(cls, sets):
        """One set of the graphs of ``sets``, in order."""
        joined = (lambda name: _joined(sets, name, "GraphSet.concatenate"))
        nodes = np.concatenate([s.sizes()[0] for s in sets])
        edges = np.concatenate([s.sizes()[1] for s in sets])
        return cls(np.concatenate([s.x for s in sets]),
                   np.concatenate([s.edge_index for s in sets], axis=1),
                   np.concatenate([[0], np.cumsum(nodes)]), np.concatenate([[0], np.cumsum(edges)]),
                   joined("edge_attr"), joined("edge_type"), joined("node_type"))

    def __len__(self):
        return len(self.node_ptr) - 1

    @property
    def shape(self):
        return (len(self),) + self.x.shape[1:]

    @property
    def dtype(self):
        return self.x.dtype

    def sizes(self):
        """(nodes, edges) of each graph."""
        return np.diff(self.node_ptr), np.diff(self.edge_ptr)

    def __getitem__(self, index):
        graphs = np.arange(len(self))[index]
        if np.ndim(graphs) == 0:
            graphs = graphs.reshape(1)
        nodes, edges = self.sizes()
        node_rows = _ranges(self.node_ptr[graphs], nodes[graphs])
        edge_rows = _ranges(self.edge_ptr[graphs], edges[graphs])
        pick = (lambda a, rows: None if a is None else a[rows])
        return GraphSet(self.x[node_rows], self.edge_index[:, edge_rows],
                        np.concatenate([[0], np.cumsum(nodes[graphs])]),
                        np.concatenate([[0], np.cumsum(edges[graphs])]),
                        pick(self.edge_attr, edge_rows), pick(self.edge_type, edge_rows),
                        pick(self.node_type, node_rows))

    def collate(self):
        """All the set's graphs as one ``Graph``: node numbers shifted by the nodes before."""
        nodes, edges = self.sizes()
        offsets = np.repeat(self.node_ptr[:-1], edges)
        return Graph(x=self.x, edge_index=self.edge_index + offsets,
                     edge_attr=self.edge_attr, edge_type=self.edge_type,
                     node_type=self.node_type,
                     batch=np.repeat(np.arange(len(self), dtype=np.int64), nodes),
                     ptr=self.node_ptr)

    def arrays(self):
        """Every array it holds (what a data manifest's digest covers)."""
        return [a for a in (self.x, self.edge_index, self.node_ptr, self.edge_ptr,
                            self.edge_attr, self.edge_type, self.node_type) if a is not None]


def _ranges(starts, lengths):
    """The concatenated ranges start..start+length (the rows of the chosen graphs)."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(np.sum(lengths)), dtype=np.int64) + offsets
