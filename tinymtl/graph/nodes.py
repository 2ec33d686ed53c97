"""``NodeSet``: some nodes of one graph, as a task's examples.

A food classification task's examples are the food nodes of one food–compound graph: the
model sees the whole graph every step (messages pass between foods and the compounds they
contain, whichever foods are labelled), and reads out the nodes of the batch. A ``NodeSet``
answers what a trainer asks of inputs, as a ``GraphSet`` does: ``len(s)``, ``s[index]``
(integer array, boolean mask or slice: those nodes of the same graph), ``s.shape`` ((nodes,
node features)) and ``s.dtype``; a ``GraphEncoder`` given one runs on ``s.graph`` and returns
the rows of ``s.nodes`` (transductive node tasks: every node is in the graph, only the labels
of the training nodes are used).
"""

import numpy as np

from tinymtl.backend import to_device


class NodeSet:
    def __init__(self, graph, nodes):
        self.graph = graph
        self.nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        if len(self.nodes) and (self.nodes.min() < 0 or self.nodes.max() >= graph.num_nodes):
            raise ValueError(f"a NodeSet names node {int(self.nodes.max())} of a graph with "
                             f"{graph.num_nodes} nodes")

    @classmethod
    def concatenate(cls, sets):
        """The nodes of ``sets`` (of one graph), in order."""
        if any(s.graph is not sets[0].graph for s in sets):
            raise ValueError("NodeSet.concatenate: the sets are nodes of different graphs; "
                             "expected one graph")
        return cls(sets[0].graph, np.concatenate([s.nodes for s in sets]))

    def __len__(self):
        return len(self.nodes)

    def to(self, device):
        """These nodes and their graph on ``device`` (a node task's batch reads its rows out of
        every node's embedding, so the whole graph goes)."""
        moved = object.__new__(NodeSet)  # (not NodeSet(): its checks would read device arrays)
        moved.graph, moved.nodes = self.graph.to(device), to_device(self.nodes, device)
        return moved

    def __getitem__(self, index):
        return NodeSet(self.graph, self.nodes[index])

    @property
    def shape(self):
        return (len(self),) + self.graph.x.shape[1:]

    @property
    def dtype(self):
        return self.graph.x.dtype

    def arrays(self):
        """Every array it holds (what a data manifest's digest covers)."""
        graph = self.graph
        return [a for a in (graph.x, graph.edge_index, graph.edge_attr, graph.edge_type,
                            graph.node_type, self.nodes) if a is not None]
