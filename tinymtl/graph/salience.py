"""Node salience: which nodes of a graph a model's answer rests on, measured three ways, so that
each can be checked against a known per-node truth (``train.scores.salience_scores``; for
molecules, RDKit's per-atom contributions).

    attention         s_j = mean over layers ℓ and heads h of  Σ_{i : j → i} α^{ℓ,h}_ij
                      the attention node j receives from the nodes it sends messages to
                      (its self-loop included); task-independent: the encoder is shared
    gradient × input  s_j = Σ_f x_jf · ∂y/∂x_jf   (signed; y: the task's output for the
                      graph, or for the nodes of a node task — a regression output, or the
                      logit of the predicted class, or of a given one)
    random            s_j ~ U(0, 1): what chance agreement looks like

All take a collated ``Graph`` (a batch) and return one value per node, (N,), as NumPy;
``edge_attention`` gives the attention of each edge (what "which compounds does a food attend
to" is read from, on the food graph).
"""

import copy

import numpy as np

from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import to_numpy
from tinymtl.graph.nodes import NodeSet
from tinymtl.nn.utils import module_device


def edge_attention(encoder, graph):
    """(edge_index (2, E), α (E,)): each edge's attention, averaged over the encoder's layers
    and heads (every layer attends along the same edges, self-loops included)."""
    layers = encoder.attention(graph.to(module_device(encoder)))
    edge_index = to_numpy(layers[0][0])
    return edge_index, np.mean([to_numpy(alpha.data).mean(1) for _, alpha in layers], axis=0)


def attention_salience(encoder, graph):
    """The attention each node receives, averaged over the encoder's layers and heads."""
    edge_index, alpha = edge_attention(encoder, graph)
    received = np.zeros(graph.num_nodes)
    np.add.at(received, edge_index[0], alpha)
    return received


def gradient_input_salience(model, task, graph, targets=None):
    """Σ_f x_jf ∂y/∂x_jf for each node j (module docstring). ``graph``: a batch of graphs, y
    each graph's output; or a ``NodeSet``, y each of its nodes' output (node tasks). For a
    classifier y is the logit of the predicted class, or of ``targets`` (one class per graph
    or node) when given. One backward pass for all of them: the gradient of their sum."""
    device = module_device(model)
    nodes = graph.to(device) if isinstance(graph, NodeSet) else None
    base = nodes.graph if nodes is not None else graph.to(device)
    x = Tensor(base.x, requires_grad=True)
    changed = copy.copy(base)  # the graph with x as a Tensor whose gradient is kept
    changed.x = x
    if nodes is not None:
        nodes = copy.copy(nodes)
        nodes.graph = changed
    # the backbone called directly: a frozen one (no gradient for its weights) still passes
    # the gradient on to its input
    outputs = model.forward_heads(model.backbone(nodes if nodes is not None else changed), task)
    values = to_numpy(outputs.data)
    if values.ndim == 2 and values.shape[1] > 1:
        chosen = np.zeros(values.shape, dtype=values.dtype)
        picked = values.argmax(1) if targets is None else np.asarray(targets)
        chosen[np.arange(len(values)), picked] = 1
        (outputs * Tensor(chosen, device=device)).sum().backward()
    else:
        outputs.sum().backward()
    return (to_numpy(x.grad) * to_numpy(base.x)).sum(1)


def random_salience(graph, rng):
    """U(0, 1) per node, from the NumPy generator ``rng``."""
    return rng.random(graph.num_nodes)


METHODS = ("attention", "gradient_x_input", "random")
