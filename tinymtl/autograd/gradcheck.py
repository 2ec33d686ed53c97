"""Finite-difference gradient checks (float64), the proof that each backward is right.

For a function f of tensors, pick a random upstream gradient u (non-uniform, so that a backward
that mixes up elements cannot pass) and compare, for every input element x_k,

    analytic   ∂/∂x_k Σ u ⊙ f(x)          from the engine
    numeric    (Σ u ⊙ f(x + h e_k) - Σ u ⊙ f(x - h e_k)) / 2h      (central difference)

Inputs larger than ``max_elements`` are checked along random directions d instead
(Chainer's ``check_backward``): analytic ∇·d against the difference quotient along d.
"""

import numpy as np

from tinymtl.autograd.engine import grad as autograd_grad
from tinymtl.backend import to_numpy


def _objective(fn, inputs, upstream):
    out = fn(*inputs)
    return float((to_numpy(out.data).astype(np.float64) * upstream).sum())


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, max_elements=400, directions=8,
              seed=0):
    """Raise AssertionError (naming the input and element) unless analytic and numeric agree."""
    rng = np.random.default_rng(seed)
    for tensor in inputs:
        if tensor.requires_grad and tensor.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {tensor.dtype}")
    out = fn(*inputs)
    upstream = rng.standard_normal(out.shape)
    wanted = [t for t in inputs if t.requires_grad]
    grads = autograd_grad(out, wanted, grad_outputs=[out.xp.asarray(upstream, dtype=out.dtype)],
                          allow_unused=True)
    for position, (tensor, analytic) in enumerate(zip(wanted, grads)):
        analytic = np.zeros(tensor.shape) if analytic is None else to_numpy(analytic)
        values = tensor.data  # perturbed in place, restored after each probe
        if values.size <= max_elements:
            numeric = np.zeros(values.shape)
            for k in np.ndindex(values.shape):
                original = values[k].copy()
                values[k] = original + eps
                plus = _objective(fn, inputs, upstream)
                values[k] = original - eps
                minus = _objective(fn, inputs, upstream)
                values[k] = original
                numeric[k] = (plus - minus) / (2 * eps)
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                worst = np.unravel_index(np.abs(analytic - numeric).argmax(), values.shape)
                raise AssertionError(
                    f"gradient of input {position} (shape {values.shape}) differs at {worst}: "
                    f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g}")
            continue
        original = values.copy()
        for _ in range(directions):
            direction = rng.standard_normal(values.shape)
            values[...] = original + eps * direction
            plus = _objective(fn, inputs, upstream)
            values[...] = original - eps * direction
            minus = _objective(fn, inputs, upstream)
            values[...] = original
            numeric = (plus - minus) / (2 * eps)
            along = float((analytic * direction).sum())
            if not np.isclose(along, numeric, atol=atol * np.sqrt(values.size), rtol=rtol):
                raise AssertionError(
                    f"gradient of input {position} (shape {values.shape}) along a random "
                    f"direction: analytic {along:.8g}, numeric {numeric:.8g}")
    return True
