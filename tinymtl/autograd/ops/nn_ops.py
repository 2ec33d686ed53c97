"""Operations specific to neural networks: dropout, embedding lookup, layer and batch norm,
and the two fused loss primitives (softmax cross-entropy, binary cross-entropy with logits)."""

from tinymtl.autograd.function import Function
from tinymtl.autograd.ops.elementwise import sqrt
from tinymtl.autograd.ops.reduction import mean, var
from tinymtl.autograd.tensor import Tensor
from tinymtl.backend import get_array_module
from tinymtl.backend.kernels import kernels_for
from tinymtl.backend.random import default_generator


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout),
    so the expected activation is unchanged and evaluation needs no rescaling."""

    def forward(ctx, a):
        keep = ctx.generator.bernoulli(1 - ctx.p, a.shape, device=ctx.device)
        scale = (keep / (1 - ctx.p)).astype(a.dtype)
        ctx.save_for_backward(scale)
        return a * scale

    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad * scale


def dropout(a, p=0.5, training=True, generator=None):
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0:
        return a
    return Dropout.apply(a, p=p, generator=generator or default_generator, device=a.device)


class Embedding(Function):
    """out = weight[indices]; backward adds each output row's gradient into its weight row
    (rows looked up several times receive the sum), except the ``padding_idx`` row."""

    def forward(ctx, weight):
        ctx.weight_shape = weight.shape
        return weight[ctx.indices]

    def backward(ctx, grad):
        xp = get_array_module(grad)
        out = xp.zeros(ctx.weight_shape, dtype=grad.dtype)
        kernels_for(out).scatter_add(out, ctx.indices.reshape(-1),
                                     grad.reshape(-1, ctx.weight_shape[1]))
        if ctx.padding_idx is not None:
            out[ctx.padding_idx] = 0
        return out


def embedding(indices, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, dim) selected by integer ``indices`` of any shape;
    the ``padding_idx`` row receives no gradient."""
    indices = indices.data if isinstance(indices, Tensor) else indices
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= weight.shape[0]):
        raise IndexError(f"embedding index out of range [0, {weight.shape[0]})")
    return Embedding.apply(weight, indices=indices, padding_idx=padding_idx)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over the last ``len(normalized_shape)`` axes, then · w + b.

    Composed from differentiable primitives, so its gradient is the chain rule through them.
    """
    axes = tuple(range(x.ndim - len(tuple(normalized_shape)), x.ndim))
    centred = x - mean(x, dim=axes, keepdim=True)
    out = centred / sqrt(var(x, dim=axes, keepdim=True, correction=0) + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=True,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (axis 1) by batch statistics in training, running ones in eval.

    Training also updates the running statistics in place (PyTorch's convention: the running
    variance uses the unbiased batch variance):  r <- (1 - momentum) r + momentum · batch_stat
    """
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        batch_mean = mean(x, dim=axes, keepdim=True)
        batch_var = var(x, dim=axes, keepdim=True, correction=0)
        count = x.data.size // x.shape[1]
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * batch_mean.data.reshape(-1)
            running_var *= 1 - momentum
            running_var += momentum * batch_var.data.reshape(-1) * count / max(count - 1, 1)
        out = (x - batch_mean) / sqrt(batch_var + eps)
    else:
        inv_std = 1 / get_array_module(x.data).sqrt(running_var + eps)
        out = (x - running_mean.reshape(shape)) * inv_std.reshape(shape)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


class SoftmaxCrossEntropy(Function):
    """Cross-entropy from logits against a target distribution, fused and stable.

    With log p = log_softmax(z) and per-row target weights A (one-hot labels, optionally
    smoothed and scaled by class weights):

        loss_i = -Σ_c A_ic log p_ic               d loss_i / d z_ic = p_ic Σ_c' A_ic' - A_ic

    The loss is reduced by ``normalizer`` (Σ of target weights for 'mean', 1 for 'sum').
    """

    def forward(ctx, logits):
        xp = get_array_module(logits)
        log_probs = kernels_for(logits).log_softmax(xp.ascontiguousarray(logits))
        per_row = -(ctx.targets * log_probs).sum(axis=1)
        ctx.save_for_backward(log_probs)
        if ctx.reduction == "none":
            return per_row
        return xp.asarray(per_row.sum() / ctx.normalizer, dtype=logits.dtype)

    def backward(ctx, grad):
        (log_probs,) = ctx.saved_tensors
        xp = get_array_module(log_probs)
        row_weight = ctx.targets.sum(axis=1, keepdims=True)
        local = xp.exp(log_probs) * row_weight - ctx.targets
        if ctx.reduction == "none":
            return local * grad[:, None]
        return local * (grad / ctx.normalizer)


class BinaryCrossEntropyWithLogits(Function):
    """loss = max(z, 0) - z·y + log(1 + e^-|z|)  (stable form of -y log σ(z) - (1-y) log(1-σ(z)));
    d loss / dz = σ(z) - y  (with ``pos_weight`` w: (1 + (w-1) y) σ(z) - w y)."""

    def forward(ctx, logits, target):
        xp = get_array_module(logits)
        softplus = xp.log1p(xp.exp(-xp.abs(logits)))
        if ctx.pos_weight is None:
            loss = xp.maximum(logits, 0) - logits * target + softplus
        else:
            log_weight = 1 + (ctx.pos_weight - 1) * target
            loss = (1 - target) * logits + log_weight * (softplus + xp.maximum(-logits, 0))
        ctx.save_for_backward(logits, target)
        return loss.astype(logits.dtype, copy=False)

    def backward(ctx, grad):
        logits, target = ctx.saved_tensors
        xp = get_array_module(logits)
        e = xp.exp(-xp.abs(logits))
        prob = xp.where(logits >= 0, 1 / (1 + e), e / (1 + e))
        if ctx.pos_weight is None:
            local = prob - target
        else:
            local = (1 + (ctx.pos_weight - 1) * target) * prob - ctx.pos_weight * target
        grad_target = None
        if ctx.needs_input_grad[1]:  # d loss / dy = -z  (+ (w-1) log(1 + e^-z) with pos_weight)
            local_target = -logits
            if ctx.pos_weight is not None:
                softplus_neg = xp.log1p(e) + xp.maximum(-logits, 0)
                local_target = local_target + (ctx.pos_weight - 1) * softplus_neg
            grad_target = grad * local_target
        return grad * local, grad_target
