"""Node salience: which nodes of a graph a model's answer rests on, measured three ways, so that
each can be checked against a known per-node truth (``train.scores.salience_scores``; for
molecules, RDKit's per-atom contributions).

    attention         s_j = mean over layers ℓ and heads h of  Σ_{i : j → i} α^{ℓ,h}_ij
                      the attention node j receives from the nodes it sends messages to
                      (its self-loop included); task-independent: the encoder is shared
    gradient × input  s_j = Σ_f x_jf · ∂y/∂x_jf   (signed; y: the task's output for the
                      graph — a regression output, or the logit of the predicted class)
    random            s_j ~ U(0, 1): what chance agreement looks like

All take a collated ``Graph`` (a batch) and return one value per node, (N,), as NumPy.
"""

import dataclasses

import numpy as np

from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import to_numpy


def attention_salience(encoder, graph):
    """The attention each node receives, averaged over the encoder's layers and heads."""
    received = np.zeros(graph.num_nodes)
    layers = encoder.attention(graph)
    for edge_index, alpha in layers:
        np.add.at(received, np.asarray(edge_index[0]), to_numpy(alpha.data).mean(1))
    return received / max(len(layers), 1)


def gradient_input_salience(model, task, graph):
    """Σ_f x_jf ∂y/∂x_jf for each node j, y the task's output for its graph (module
    docstring): one backward pass for the whole batch (graphs do not share nodes, so each
    graph's y depends on its own nodes only)."""
    x = Tensor(np.asarray(graph.x), requires_grad=True)
    # the backbone called directly: a frozen one (no gradient for its weights) still passes
    # the gradient on to its input
    outputs = model.forward_heads(model.backbone(dataclasses.replace(graph, x=x)), task)
    values = outputs.data
    if values.ndim == 2 and values.shape[1] > 1:  # the logit of each graph's predicted class
        chosen = np.zeros(values.shape, dtype=values.dtype)
        chosen[np.arange(len(values)), to_numpy(values).argmax(1)] = 1
        (outputs * Tensor(chosen)).sum().backward()
    else:
        outputs.sum().backward()
    return (to_numpy(x.grad) * np.asarray(graph.x)).sum(1)


def random_salience(graph, rng):
    """U(0, 1) per node, from the NumPy generator ``rng``."""
    return rng.random(graph.num_nodes)


METHODS = ("attention", "gradient_x_input", "random")
