"""Graph augmentations for contrastive pretraining (GraphCL, You et al., NeurIPS 2020), and
its loss.

Each augmentation takes a collated ``Graph`` (a batch) and a NumPy ``Generator`` and returns a
new batch with the same graphs in the same order (a view of each), changed by ``ratio``
(0.2 by default, GraphCL's):

    drop_nodes       each graph loses ⌊ratio · n⌋ random nodes and their edges (never all)
    perturb_edges    each graph loses ⌊ratio · m⌋ random edges and gains as many random ones
    mask_attributes  ⌊ratio · n⌋ random nodes of each graph get all-zero features
    subgraph         each graph keeps the ⌈(1 − ratio) · n⌉ nodes a random walk from a random
                     node reaches first (growing by neighbours; a new start if it stalls)

The two views of a graph are pulled together and pushed from the other graphs of the batch by
the NT-Xent loss of GraphCL's eq. (3): with z, z' the projections of the two views, unit
length, s(a, b) = a·b / τ,

    ℓ_n = −s(z_n, z'_n) + log Σ_{n' ≠ n} exp s(z_n, z'_n')      loss = mean_n ℓ_n

(the denominator runs over the other graphs' second views). ``contrastive_accuracy`` is the
share of graphs whose own second view scores above every other graph's.
"""

import numpy as np

from tinymtl.autograd.ops.reduction import logsumexp, mean, sum
from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import to_numpy
from tinymtl.graph.batch import Graph
from tinymtl.nn.functional import normalize



def _rebuild(graph, keep_nodes, edge_index=None, edge_keep=None, x=None):
    """``graph`` restricted to the nodes ``keep_nodes`` (a boolean mask), numbered anew; edges
    between kept nodes survive (or ``edge_index`` given whole, with rows ``edge_keep`` of the
    edge arrays)."""
    new_number = np.cumsum(keep_nodes) - 1
    if edge_index is None:
        source, target = graph.edge_index
        edge_keep = np.flatnonzero(keep_nodes[source] & keep_nodes[target])
        edge_index = new_number[graph.edge_index[:, edge_keep]]
    counts = np.bincount(graph.batch[keep_nodes], minlength=graph.num_graphs)
    pick = (lambda a: None if a is None else a[edge_keep])
    return Graph(x=(graph.x if x is None else x)[keep_nodes], edge_index=edge_index,
                 edge_attr=pick(graph.edge_attr), edge_type=pick(graph.edge_type),
                 node_type=None if graph.node_type is None else graph.node_type[keep_nodes],
                 y=graph.y, batch=graph.batch[keep_nodes],
                 ptr=np.concatenate([[0], np.cumsum(counts)]))


def _chosen_per_graph(graph, rng, ratio, ceil=False):
    """A boolean node mask choosing ⌊ratio · n⌋ (or ⌈⌉) random nodes of each graph, never all
    of a graph's nodes."""
    chosen = np.zeros(graph.num_nodes, dtype=bool)
    for g in range(graph.num_graphs):
        start, end = int(graph.ptr[g]), int(graph.ptr[g + 1])
        n = end - start
        count = min(int(np.ceil(ratio * n)) if ceil else int(ratio * n), max(n - 1, 0))
        chosen[start + rng.permutation(n)[:count]] = True
    return chosen


def drop_nodes(graph, rng, ratio=0.2):
    return _rebuild(graph, ~_chosen_per_graph(graph, rng, ratio))


def mask_attributes(graph, rng, ratio=0.2):
    x = graph.x.copy()
    x[_chosen_per_graph(graph, rng, ratio)] = 0
    return Graph(x=x, edge_index=graph.edge_index, edge_attr=graph.edge_attr,
                 edge_type=graph.edge_type, node_type=graph.node_type, y=graph.y,
                 batch=graph.batch, ptr=graph.ptr)


def perturb_edges(graph, rng, ratio=0.2):
    """Drop ⌊ratio · m⌋ of each graph's edges, add as many between random nodes of the same
    graph (an added edge copies a dropped one's features and type)."""
    edge_graph = graph.edge_batch
    keep = np.ones(graph.num_edges, dtype=bool)
    added, copied = [], []
    for g in range(graph.num_graphs):
        edges = np.flatnonzero(edge_graph == g)
        count = int(ratio * len(edges))
        if count == 0:
            continue
        dropped = rng.permutation(edges)[:count]
        keep[dropped] = False
        start, end = int(graph.ptr[g]), int(graph.ptr[g + 1])
        added.append(rng.integers(start, end, (2, count)))
        copied.append(dropped)
    rows = np.concatenate([np.flatnonzero(keep)] + copied)
    edge_index = np.concatenate([graph.edge_index[:, keep]] + added, axis=1)
    return _rebuild(graph, np.ones(graph.num_nodes, dtype=bool), edge_index, rows)


def subgraph(graph, rng, ratio=0.2):
    keep = np.zeros(graph.num_nodes, dtype=bool)
    neighbours = [[] for _ in range(graph.num_nodes)]
    for a, b in graph.edge_index.T:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for g in range(graph.num_graphs):
        start, end = int(graph.ptr[g]), int(graph.ptr[g + 1])
        target = max(1, int(np.ceil((1 - ratio) * (end - start))))
        reached, frontier = set(), []
        while len(reached) < target:
            if not frontier:  # start (again) from a random node not yet reached
                left = [v for v in range(start, end) if v not in reached]
                frontier = [left[int(rng.integers(len(left)))]]
            node = frontier.pop(int(rng.integers(len(frontier))))
            if node in reached:
                continue
            reached.add(node)
            frontier.extend(v for v in neighbours[node] if v not in reached)
        keep[list(reached)] = True
    return _rebuild(graph, keep)


AUGMENTATIONS = {"drop_nodes": drop_nodes, "perturb_edges": perturb_edges,
                 "mask_attributes": mask_attributes, "subgraph": subgraph}


def augment(name, graph, rng, ratio=0.2):
    """The augmentation called ``name`` (one of ``AUGMENTATIONS``) of ``graph``."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; expected one of "
                         f"{', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](graph, rng, ratio)


def nt_xent_loss(z, z_prime, temperature=0.5):
    """GraphCL's NT-Xent (module docstring) of two (N, d) batches of projections."""
    n = z.shape[0]
    # (N, N): s(z_n, z'_n'), every graph's first view against every graph's second
    logits = (normalize(z, dim=1) @ normalize(z_prime, dim=1).T) / temperature
    xp = z.xp
    others = Tensor(xp.where(xp.eye(n, dtype=bool), -1e9, 0.0).astype(z.dtype))
    positives = sum(logits * Tensor(xp.eye(n, dtype=z.dtype)), dim=1)
    return mean(logsumexp(logits + others, dim=1) - positives)


def contrastive_accuracy(z, z_prime):
    """Share of graphs whose second view is the nearest (by cosine) of the batch's."""
    a, b = to_numpy(z.data), to_numpy(z_prime.data)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    similarity = a @ b.T
    return float((similarity.argmax(1) == np.arange(len(a))).mean())
