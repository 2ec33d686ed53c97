"""Gradient and module utilities (``torch.nn.utils``)."""

import math

from tinymtl.backend import get_array_module


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale all gradients together so their global norm is at most ``max_norm``.

    total = (Σ_p ‖g_p‖^q)^(1/q);  if total > max_norm:  g_p <- g_p · max_norm / (total + 1e-6).
    Returns the total norm before clipping (to log it, or to spot explosions).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    if norm_type == math.inf:
        total = max(float(xp.abs(g).max()) for g in grads)
    else:
        total = sum(float((xp.abs(g.astype(xp.float64)) ** norm_type).sum()) for g in grads)
        total = total ** (1.0 / norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total


def parameters_to_vector(parameters):
    """One flat array holding every parameter (for analysis; a copy)."""
    arrays = [p.data.reshape(-1) for p in parameters]
    return get_array_module(arrays[0]).concatenate(arrays)


def module_device(module):
    """Where a module's parameters are ('cpu' or 'cuda'; 'cpu' for one without any): what a
    PyTorch user reads as ``next(model.parameters()).device``."""
    return next((p.device for p in module.parameters()), "cpu")
