"""Graph motifs: small random graphs, each with one planted motif, labelled by several tasks.

Every graph is a random tree of 8–16 "base" nodes with a few extra edges, and one motif of
5–6 nodes joined to it by one edge:

    cycle    a ring of 6          star     a centre and 5 leaves
    clique   5 nodes, all joined  house    a square with a roof (5 nodes)

Each node has a type in 0..3 (drawn uniformly) and its features are [one-hot type, degree / 4];
edges go both ways. The tasks that label one set of graphs (a joint schedule puts a batch
through every head):

    motif   which motif was planted (4 classes): a question about structure
    count   how many nodes of type 0 the graph has (regression): a question about features

A graph's motif nodes are its last ones (6 for cycle and star, 5 for clique and house): the
ground truth that attention-based salience should find for ``motif``. Deterministic in the
seed: train and test graphs come from independent streams.
"""

import numpy as np

from tinymtl.datasets.base import TaskData, array_digest
from tinymtl.datasets.source import DataPlan, DataSource
from tinymtl.errors import DataError
from tinymtl.graph.batch import Graph, GraphSet
from tinymtl.options import Choice

MOTIFS = ("cycle", "star", "clique", "house")
TARGETS = ("motif", "count")
NODE_TYPES = 4
FEATURES = NODE_TYPES + 1  # one-hot type, degree / 4
SIZES = (2000, 500)        # default train, test graphs
VERSION = 1


def motif_edges(name):
    """(nodes, undirected edges) of a motif, numbered from 0."""
    if name == "cycle":
        return 6, [(k, (k + 1) % 6) for k in range(6)]
    if name == "star":
        return 6, [(0, k) for k in range(1, 6)]
    if name == "clique":
        return 5, [(a, b) for a in range(5) for b in range(a + 1, 5)]
    return 5, [(0, 1), (1, 2), (2, 3), (3, 0), (2, 4), (3, 4)]  # house: square, roof 4


def random_graph(rng, motif):
    """(node features, edge_index (2, E) both directions, node types) of one graph; its motif
    is its last nodes."""
    base = int(rng.integers(8, 17))
    edges = [(int(rng.integers(0, k)), k) for k in range(1, base)]  # a random tree
    for _ in range(int(rng.integers(0, 4))):  # a few extra edges
        a, b = (int(v) for v in rng.integers(0, base, 2))
        if a != b:
            edges.append((a, b))
    size, inner = motif_edges(motif)
    edges += [(base + a, base + b) for a, b in inner]
    edges.append((int(rng.integers(0, base)), base + int(rng.integers(0, size))))
    nodes = base + size
    pairs = sorted({(min(a, b), max(a, b)) for a, b in edges})
    edge_index = np.array([[a for a, b in pairs] + [b for a, b in pairs],
                           [b for a, b in pairs] + [a for a, b in pairs]], dtype=np.int64)
    types = rng.integers(0, NODE_TYPES, nodes)
    degree = np.bincount(edge_index[1], minlength=nodes)
    features = np.concatenate([np.eye(NODE_TYPES, dtype=np.float32)[types],
                               (degree / 4.0).astype(np.float32)[:, None]], axis=1)
    return features, edge_index, types


def graph_set(size, seed, stream):
    """(GraphSet, motif labels, type-0 counts) of ``size`` graphs."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, VERSION, stream])))
    graphs, labels, counts = [], [], []
    for _ in range(size):
        label = int(rng.integers(0, len(MOTIFS)))
        x, edge_index, types = random_graph(rng, MOTIFS[label])
        graphs.append(Graph(x=x, edge_index=edge_index))
        labels.append(label)
        counts.append(float((types == 0).sum()))
    return GraphSet.from_graphs(graphs), np.array(labels, np.int64), \
        np.array(counts, np.float32)


class MotifSource(DataSource):
    """Graphs with a planted motif (module docstring); ``target`` picks the task's label."""

    name = "motifs"
    inputs = "graphs"
    shared_inputs = True
    OPTIONS = {"target": Choice(TARGETS, required=True, help="which label the task learns: "
                                                             "the motif, or the type-0 count")}

    @staticmethod
    def sizes(spec):
        return spec.get("train_size") or SIZES[0], spec.get("test_size") or SIZES[1]

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        shared = {} if shared is None else shared
        key = (self.name, *self.sizes(spec))
        if key not in shared:
            train_size, test_size = self.sizes(spec)
            shared[key] = (graph_set(train_size, seed, 0), graph_set(test_size, seed, 1))
        (x_train, motif_train, count_train), (x_test, motif_test, count_test) = shared[key]
        target = spec["target"]
        if target not in TARGETS:
            raise DataError(f"{task}: unknown motifs target {target!r}")
        motif = target == "motif"
        manifest = {"name": task, "generator": self.name, "version": VERSION, "seed": seed,
                    "target": target, "train_size": len(x_train), "test_size": len(x_test),
                    "sha256": array_digest(*x_train.arrays(), *x_test.arrays())}
        return TaskData(
            name=task, classes=list(MOTIFS) if motif else [],
            kind="classification" if motif else "regression",
            x_train=x_train, y_train=motif_train if motif else count_train,
            x_test=x_test, y_test=motif_test if motif else count_test, manifest=manifest,
            train_attributes={"motif": motif_train},
            test_attributes={"motif": motif_test})

    def plan(self, spec, max_length=20, where="tasks"):
        nodes, edges = 18, 44  # about the mean nodes and (directed) edges of a graph
        example_bytes = 4 * nodes * FEATURES + 8 * 2 * edges + 8 * 2 + 8
        return DataPlan((FEATURES,), example_bytes, *self.sizes(spec),
                        len(MOTIFS) if spec["target"] == "motif" else 1,
                        shared=(self.name, *self.sizes(spec)))


SOURCE = MotifSource()
