"""A property-based oracle: random computation graphs, built from the elementwise, binary and
reduction ops, run in tinymtl and in PyTorch (float64) and compared value by value and gradient
by gradient, on random shapes (0-d, empty and broadcasting ones included); and the same graphs
in float32, whose every gradient must stay float32. Skipped without PyTorch (the bench extra,
which the test command installs)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinymtl as tm
import tinymtl.nn.functional as F
from tinymtl.autograd import grad

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# name: (tinymtl, torch); inputs in [-2, 2], so log and sqrt read |x| + 1 and division |y| + 1
UNARY = {
    "exp": (F.exp, torch.exp),
    "tanh": (F.tanh, torch.tanh),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "relu": (F.relu, torch.relu),
    "gelu": (F.gelu, TF.gelu),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu),
    "abs": (F.abs, torch.abs),
    "log1abs": (lambda x: F.log(F.abs(x) + 1.0), lambda x: torch.log(torch.abs(x) + 1.0)),
    "sqrt1abs": (lambda x: F.sqrt(F.abs(x) + 1.0), lambda x: torch.sqrt(torch.abs(x) + 1.0)),
    "neg": (lambda x: -x, lambda x: -x),
    "square": (lambda x: x * x, lambda x: x * x),
    "scale": (lambda x: x * 0.5 - 1.0, lambda x: x * 0.5 - 1.0),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / (F.abs(b) + 1.0), lambda a, b: a / (torch.abs(b) + 1.0)),
    "maximum": (F.maximum, torch.maximum),
    "minimum": (F.minimum, torch.minimum),
}
FINAL = {  # (tinymtl(x, dim, keepdim), torch(x, dim, keepdim)); dim None: over everything
    "sum": (lambda x, d, k: F.sum(x, dim=d, keepdim=k),
            lambda x, d, k: torch.sum(x, dim=d, keepdim=k)),
    "mean": (lambda x, d, k: F.mean(x, dim=d, keepdim=k),
             lambda x, d, k: torch.mean(x, dim=d, keepdim=k)),
    "amax": (lambda x, d, k: F.amax(x, dim=d, keepdim=k),
             lambda x, d, k: torch.amax(x, dim=d if d is not None else list(range(x.ndim)),
                                        keepdim=k)),
    "none": (lambda x, d, k: x, lambda x, d, k: x),
}


@st.composite
def graphs(draw):
    """A base shape (0 to 3 dims, sizes 0 to 3), 1 to 3 inputs broadcastable to it, a chain of
    ops over them, and a final reduction."""
    base = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        drop = draw(st.integers(0, len(base)))
        shape = tuple(1 if draw(st.booleans()) else size for size in base[drop:])
        shapes.append(shape)
    steps = draw(st.lists(st.tuples(st.sampled_from(sorted(UNARY) + sorted(BINARY)),
                                    st.integers(0, 10), st.integers(0, 10)),
                          min_size=1, max_size=6))
    final = draw(st.sampled_from(sorted(FINAL)))
    dim = draw(st.none() | st.integers(0, 2))
    keepdim = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 31))
    return shapes, steps, final, dim, keepdim, seed


def run_graph(graph, make, ops, finals, dtype):
    """Build the graph with one framework: ``make(array)`` makes a leaf needing a gradient."""
    shapes, steps, final, dim, keepdim, seed = graph
    rng = np.random.default_rng(seed)
    leaves = [make(rng.uniform(-2, 2, shape).astype(dtype)) for shape in shapes]
    values = list(leaves)
    for name, i, j in steps:
        if name in UNARY:
            values.append(ops[name][0](values[i % len(values)]))
        else:
            values.append(ops[name][0](values[i % len(values)], values[j % len(values)]))
    out = values[-1]
    ndim = len(out.shape)
    d = None if dim is None or ndim == 0 else dim % ndim
    empty = any(size == 0 for size in out.shape)
    name = final
    if (name == "amax" and empty) or (name in ("mean", "amax") and empty):
        name = "sum"  # (PyTorch refuses the max of nothing, and the mean of nothing is NaN)
    return leaves, finals[name][0](out, d, keepdim), name


def both(graph):
    ours = {k: (v[0],) for k, v in {**UNARY, **BINARY}.items()}
    theirs = {k: (v[1],) for k, v in {**UNARY, **BINARY}.items()}
    our_finals = {k: (v[0],) for k, v in FINAL.items()}
    their_finals = {k: (v[1],) for k, v in FINAL.items()}
    our_leaves, our_out, _ = run_graph(graph, lambda a: tm.tensor(a, requires_grad=True),
                                       ours, our_finals, np.float64)
    their_leaves, their_out, _ = run_graph(
        graph, lambda a: torch.tensor(a, requires_grad=True), theirs, their_finals, np.float64)
    return our_leaves, our_out, their_leaves, their_out


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_random_graphs_match_pytorch_in_float64(graph):
    with tm.default_dtype(np.float64):
        our_leaves, our_out, their_leaves, their_out = both(graph)
        assert our_out.shape == tuple(their_out.shape)
        np.testing.assert_allclose(our_out.numpy(), their_out.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        upstream = np.random.default_rng(1).standard_normal(our_out.shape)
        ours = grad(our_out, our_leaves, grad_outputs=[upstream], allow_unused=True)
        theirs = torch.autograd.grad(their_out, their_leaves,
                                     grad_outputs=torch.tensor(upstream), allow_unused=True)
        for leaf, g, h in zip(our_leaves, ours, theirs):
            g = np.zeros(leaf.shape) if g is None else g
            h = np.zeros(leaf.shape) if h is None else h.numpy()
            assert g.shape == leaf.shape
            np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_random_float32_graphs_keep_float32_gradients(graph):
    ops = {k: (v[0],) for k, v in {**UNARY, **BINARY}.items()}
    finals = {k: (v[0],) for k, v in FINAL.items()}
    leaves, out, _ = run_graph(graph, lambda a: tm.tensor(a, requires_grad=True), ops, finals,
                               np.float32)
    assert out.dtype == np.float32
    upstream = np.ones(out.shape, np.float32)
    for leaf, g in zip(leaves, grad(out, leaves, grad_outputs=[upstream], allow_unused=True)):
        assert g is None or (g.dtype == np.float32 and g.shape == leaf.shape)
