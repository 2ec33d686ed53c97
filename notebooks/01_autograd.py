# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Autograd from scratch
#
# Every gradient tinymtl computes comes from one idea: a computation is a graph of small
# operations, each of which knows its local derivative; walking the graph backwards in
# topological order and multiplying local derivatives (the **chain rule**) gives the derivative
# of the output with respect to every input. This notebook builds that engine by hand for
# scalars, then shows the same thing in tinymtl's engine, checks both against finite
# differences, and explains why `sum_to` exists.

# %%
import numpy as np

import tinymtl as tm
from tinymtl.autograd.engine import sum_to
from tinymtl.autograd.gradcheck import gradcheck


# %% [markdown]
# ## A scalar engine in 40 lines
#
# A `Value` holds a number, the values it was made from (`parents`) and a function that, given
# the gradient of the final output with respect to this value (`grad`), adds the parents'
# share to theirs. For `out = a * b`: ∂out/∂a = b, so `a.grad += b * out.grad`.

# %%
class Value:
    def __init__(self, data, parents=(), name=""):
        self.data, self.grad, self.parents, self.name = float(data), 0.0, parents, name
        self.backward_step = lambda: None

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other))

        def step():  # ∂(a + b)/∂a = 1, ∂(a + b)/∂b = 1
            self.grad += out.grad
            other.grad += out.grad
        out.backward_step = step
        return out

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other))

        def step():  # ∂(ab)/∂a = b, ∂(ab)/∂b = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out.backward_step = step
        return out

    def tanh(self):
        t = np.tanh(self.data)
        out = Value(t, (self,))

        def step():  # d tanh(x)/dx = 1 − tanh²(x)
            self.grad += (1 - t ** 2) * out.grad
        out.backward_step = step
        return out

    def backward(self):
        order, seen = [], set()

        def visit(value):  # depth first: a value comes after everything it was made from
            if id(value) not in seen:
                seen.add(id(value))
                for parent in value.parents:
                    visit(parent)
                order.append(value)
        visit(self)
        self.grad = 1.0  # ∂out/∂out
        for value in reversed(order):  # each value's grad is complete before it is passed on
            value.backward_step()


# %% [markdown]
# A tiny neuron, `f = tanh(w·x + b)`, with `x` used **twice** (`x * x`) so that the `+=` in
# each step matters: a value that feeds two operations receives gradient from both.

# %%
def neuron(w, x, b):
    return (w * x + x * x + b).tanh()


w, x, b = Value(0.7), Value(-0.4), Value(0.1)
f = neuron(w, x, b)
f.backward()
by_hand = {"w": float(w.grad), "x": float(x.grad), "b": float(b.grad)}
print(f"f = {f.data:.6f}; gradients by the engine: {by_hand}")

# %% [markdown]
# ## Checked against finite differences
#
# The derivative is the limit of (f(v + ε) − f(v − ε)) / 2ε; with ε = 1e-6 in float64 the
# central difference agrees with the exact value to ~1e-9.

# %%
def numeric(name, eps=1e-6):
    values = {"w": 0.7, "x": -0.4, "b": 0.1}
    plus, minus = dict(values), dict(values)
    plus[name] += eps
    minus[name] -= eps
    f_plus = neuron(*(Value(plus[k]) for k in "wxb")).data
    f_minus = neuron(*(Value(minus[k]) for k in "wxb")).data
    return (f_plus - f_minus) / (2 * eps)


for name, value in by_hand.items():
    print(f"∂f/∂{name}: engine {value:+.9f}, finite difference {numeric(name):+.9f}")
    assert abs(value - numeric(name)) < 1e-8

# %% [markdown]
# ## The same with tinymtl
#
# tinymtl's `Tensor` does exactly this for arrays: each operation records a `Function` node
# with its backward rule, and `backward()` walks them in reverse topological order
# (`tinymtl/autograd/engine.py`). Same neuron, same numbers:

# %%
tw, tx, tb = (tm.tensor(v, requires_grad=True, dtype=np.float64) for v in (0.7, -0.4, 0.1))
tf = (tw * tx + tx * tx + tb).tanh()
tf.backward()
by_tinymtl = {"w": float(tw.grad), "x": float(tx.grad), "b": float(tb.grad)}
print(by_tinymtl)
for name in by_hand:
    assert abs(by_tinymtl[name] - by_hand[name]) < 1e-12

# %% [markdown]
# `gradcheck` does the finite-difference comparison for whole tensors (every element, or
# random directions for large ones); every op and layer in the test suite passes it in
# float64. Here: a small two-layer computation.

# %%
generator = np.random.default_rng(0)
A = tm.tensor(generator.normal(size=(4, 3)), requires_grad=True, dtype=np.float64)
B = tm.tensor(generator.normal(size=(3, 2)), requires_grad=True, dtype=np.float64)
gradcheck(lambda a, b: ((a @ b).tanh() * (a @ b)).sum(), [A, B])  # raises if they differ
print("gradcheck passed: analytic and numeric gradients of A and B agree")

# %% [markdown]
# ## Why `sum_to` exists: broadcasting
#
# `X + bias` with `X` of shape (5, 3) and `bias` of shape (3,) adds the same bias to every
# row: NumPy *broadcasts* it. In the graph, `bias` was used five times, so its gradient is
# the **sum** of the five rows' gradients — the `+=` of the scalar engine, in array form.
# `sum_to(grad, shape)` sums the upstream gradient over the broadcast axes back to the
# input's shape; every elementwise op's backward ends with it.

# %%
X = tm.tensor(generator.normal(size=(5, 3)), requires_grad=True, dtype=np.float64)
bias = tm.tensor(np.zeros(3), requires_grad=True, dtype=np.float64)
upstream = generator.normal(size=(5, 3))
out = X + bias
out.backward(tm.tensor(upstream, dtype=np.float64))
print("bias.grad:", bias.grad, " upstream summed over rows:", upstream.sum(0))
assert np.allclose(bias.grad, upstream.sum(0))
assert np.allclose(sum_to(upstream, (3,)), upstream.sum(0))
assert np.allclose(sum_to(upstream, (1, 3)), upstream.sum(0, keepdims=True))
gradcheck(lambda x, b: (x + b).tanh().sum(), [X, bias])
