"""Segment ops: reductions over groups of rows named by an index, what message passing on a
graph is made of. Row e of ``values`` (an edge's message) belongs to segment ``index[e]`` (the
node it points at); a segment may hold any number of rows, none included.

    index_select(x, index)          out[e] = x[index[e]]                (gather a node per edge)
    segment_sum(v, index, N)        out[n] = Σ_{e: index[e]=n} v[e]     (PyTorch's index_add_)
    segment_mean(v, index, N)       out[n] = segment_sum / max(count[n], 1)
    segment_max(v, index, N)        out[n] = max_{e: index[e]=n} v[e]   (0 for an empty one)
    segment_softmax(s, index, N)    α[e] = exp(s[e]) / Σ_{e': index[e']=index[e]} exp(s[e'])

Their derivatives, each written once:

    index_select   dx[n] = Σ_{e: index[e]=n} g[e]        (a segment_sum of the gradient)
    segment_sum    dv[e] = g[index[e]]                    (an index_select of the gradient)
    segment_max    dv[e] = g[n] if e is n's argmax, else 0
    segment_softmax  ds[e] = α[e] (g[e] − Σ_{e' in e's segment} α[e'] g[e'])

Segment softmax subtracts each segment's max before exp (the ratio does not change), so large
attention logits never overflow. The loops are kernels (``backend.kernels``: Numba on CPU,
CuPy on GPU), deterministic: every segment is reduced in edge order.
"""

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops.shape import GetItem
from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for


def _index(index, values):
    """A segment index as an int64 array on ``values``' device, checked against its rows."""
    xp = get_array_module(values.data)
    index = index.data if isinstance(index, Tensor) else index
    index = xp.asarray(index, dtype=xp.int64)
    if index.ndim != 1 or len(index) != values.shape[0]:
        raise ValueError(f"a segment index needs one entry per row: got shape {index.shape} "
                         f"for {values.shape[0]} rows")
    return index


class SegmentSum(Function):
    def forward(ctx, values):
        xp = get_array_module(values)
        out = xp.zeros((ctx.num_segments,) + values.shape[1:], dtype=values.dtype)
        kernels_for(out).scatter_add(out, ctx.index, values)
        return out

    def backward(ctx, grad):
        return grad[ctx.index]


class SegmentMax(Function):
    def forward(ctx, values):
        out, ctx.argmax = kernels_for(values).segment_max(values, ctx.index, ctx.num_segments)
        ctx.rows = values.shape[0]
        return out

    def backward(ctx, grad):
        xp = get_array_module(grad)
        out = xp.zeros((ctx.rows,) + grad.shape[1:], dtype=grad.dtype)
        flat_out, flat_grad = out.reshape(ctx.rows, -1), grad.reshape(len(grad), -1)
        argmax = ctx.argmax.reshape(len(grad), -1)
        segment, feature = xp.nonzero(argmax >= 0)  # each (segment, feature) has one winner
        flat_out[argmax[segment, feature], feature] = flat_grad[segment, feature]
        return out


class SegmentSoftmax(Function):
    def forward(ctx, scores):
        alpha = kernels_for(scores).segment_softmax(scores, ctx.index, ctx.num_segments)
        ctx.save_for_backward(alpha)
        return alpha

    def backward(ctx, grad):
        (alpha,) = ctx.saved_tensors
        return kernels_for(alpha).segment_softmax_backward(alpha, grad, ctx.index,
                                                           ctx.num_segments)


def index_select(x, index):
    """Rows ``x[index]`` (dim 0): a node's features for each edge that reads it (``GetItem``,
    whose backward scatter-adds: a segment sum of the gradient)."""
    xp = get_array_module(x.data)
    index = xp.asarray(index.data if isinstance(index, Tensor) else index, dtype=xp.int64)
    if index.ndim != 1:
        raise ValueError(f"index_select takes a 1-D index, got shape {index.shape}")
    return GetItem.apply(x, index=index)


def segment_sum(values, index, num_segments):
    """out[n] = Σ of the rows e with index[e] = n; shape (num_segments, *values.shape[1:])."""
    return SegmentSum.apply(values, index=_index(index, values), num_segments=int(num_segments))


def segment_mean(values, index, num_segments):
    """out[n] = the mean of the rows e with index[e] = n (0 for a segment with none)."""
    index = _index(index, values)
    xp = get_array_module(values.data)
    counts = xp.bincount(index, minlength=int(num_segments)).astype(values.dtype)
    counts = xp.maximum(counts, 1).reshape((-1,) + (1,) * (values.ndim - 1))
    return segment_sum(values, index, num_segments) / Tensor(counts)


def segment_max(values, index, num_segments):
    """out[n] = the max of the rows e with index[e] = n, per feature (0 for a segment with
    none); the gradient goes to the first row that attains it."""
    return SegmentMax.apply(values, index=_index(index, values), num_segments=int(num_segments))


def segment_softmax(scores, index, num_segments):
    """Softmax of ``scores`` within each segment (e.g. over a node's incoming edges), per
    feature (e.g. per attention head): numerically stable, as the module docstring says."""
    return SegmentSoftmax.apply(scores, index=_index(index, scores),
                                num_segments=int(num_segments))
