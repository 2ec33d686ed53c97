"""Graph pooling: one vector per graph of a batch from its nodes' vectors (``batch``: each
node's graph, as ``Graph.batch`` holds it).

    global_add_pool    Σ_{i in g} x_i          global_mean_pool   mean_{i in g} x_i
    global_max_pool    max_{i in g} x_i        (per feature)
    AttentionalAggregation    Σ_{i in g} softmax_g(gate(x_i)) · nn(x_i)   (Li et al. 2016,
                       "Gated Graph Sequence Neural Networks"; PyG's AttentionalAggregation):
                       the gate's weights say which nodes the graph's vector is made of
"""

from tinymtl import nn
from tinymtl.autograd.ops.segment import segment_max, segment_mean, segment_softmax, segment_sum


def _size(batch, size):
    return int(batch.max()) + 1 if size is None else int(size)


def global_add_pool(x, batch, size=None):
    return segment_sum(x, batch, _size(batch, size))


def global_mean_pool(x, batch, size=None):
    return segment_mean(x, batch, _size(batch, size))


def global_max_pool(x, batch, size=None):
    return segment_max(x, batch, _size(batch, size))


class AttentionalAggregation(nn.Module):
    """Attention pooling (module docstring): ``gate_nn`` maps a node to one score, softmaxed
    over the nodes of its graph; ``nn`` (optional) transforms the nodes first.
    ``return_attention_weights=True`` also returns the (N, 1) weights."""

    def __init__(self, gate_nn, nn=None):
        super().__init__()
        self.gate_nn, self.nn = gate_nn, nn

    def forward(self, x, batch, size=None, return_attention_weights=False):
        size = _size(batch, size)
        gate = segment_softmax(self.gate_nn(x), batch, size)  # (N, 1)
        values = self.nn(x) if self.nn is not None else x
        out = segment_sum(gate * values, batch, size)
        return (out, gate) if return_attention_weights else out
