"""Matrix products, sent to BLAS through the array module.

For C = A @ B:  dL/dA = dL/dC @ Bᵀ  and  dL/dB = Aᵀ @ dL/dC  (batched over leading axes;
the engine's ``sum_to`` reduces any broadcast batch axes). 1-D operands are promoted to
matrices, as numpy and PyTorch do, and the promoted axis is dropped again.
"""

from tinymtl.autograd.function import Function


class MatMul(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:  # restore the axes that the 1-D promotions dropped from the output
            grad = grad[..., None]
        if a.ndim == 1:
            grad = grad[..., None, :]
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = grad @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a.reshape(-1, a.shape[0]).sum(axis=0)
        if ctx.needs_input_grad[1]:
            grad_b = a2.swapaxes(-1, -2) @ grad
            if b.ndim == 1:
                grad_b = grad_b.reshape(-1, b.shape[0]).sum(axis=0)
        return grad_a, grad_b


class Linear(Function):
    """y = x Wᵀ + b in one node (PyTorch's layout: W is (out, in)).

    dL/dx = g W,   dL/dW = gᵀ x,   dL/db = Σ_rows g   (x flattened to rows when it has >2 axes)
    """

    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1])
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = rows.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        grad_b = rows.sum(axis=0) if ctx.needs_input_grad[2:] == (True,) else None
        return grad_x, grad_w, grad_b


def matmul(a, b):
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """``F.linear``: x @ weightᵀ + bias."""
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
