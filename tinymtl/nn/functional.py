"""``tinymtl.nn.functional`` (imported as F): every op as a function, and the losses.

Losses take a ``reduction``: 'mean' (default), 'sum' or 'none', as in PyTorch.
"""

from tinymtl.autograd.ops.conv import conv1d, conv2d  # noqa: F401
from tinymtl.autograd.ops.elementwise import (  # noqa: F401
    abs, clip, exp, gelu, leaky_relu, log, maximum, minimum, relu, sigmoid, sqrt, tanh, where,
)
from tinymtl.autograd.ops.linalg import linear, matmul  # noqa: F401
from tinymtl.autograd.ops.nn_ops import (  # noqa: F401
    BinaryCrossEntropyWithLogits, SoftmaxCrossEntropy, batch_norm, dropout, embedding,
    layer_norm,
)
from tinymtl.autograd.ops.pooling import (  # noqa: F401
    avg_pool2d, global_avg_pool2d, max_pool2d, relu_max_pool2d,
)
from tinymtl.autograd.ops.reduction import (  # noqa: F401
    amax, amin, log_softmax, logsumexp, mean, softmax, sum, var,
)
from tinymtl.autograd.ops.segment import (  # noqa: F401
    index_select, segment_max, segment_mean, segment_softmax, segment_sum,
)
from tinymtl.autograd.ops.shape import (  # noqa: F401
    cat, flatten, gather, permute, reshape, stack, transpose,
)
from tinymtl.autograd.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


def _values(x):
    return x.data if isinstance(x, Tensor) else x


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between logits (N, C) or (N, C, d1, ...) and class indices (N, ...) or
    class probabilities (same shape as ``input``).

    The target distribution q is the one-hot label (or the given probabilities), smoothed to
    (1 - ε) q + ε / C, times the class weights w; 'mean' divides by Σ_i w[y_i] (by N for
    probability targets), exactly as PyTorch. Rows labelled ``ignore_index`` count for nothing;
    when every row is ignored the mean is 0 with a zero gradient (PyTorch gives 0/0 = NaN, which
    would poison every weight of the step it reached; here such a batch changes nothing).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    xp = input.xp
    classes = input.shape[1]
    labels = _values(target)
    if labels.dtype.kind not in "iuf":
        raise TypeError(f"cross_entropy: target must hold integer class indices or float "
                        f"probabilities, got {labels.dtype}")
    row_shape = (input.shape[0],) + input.shape[2:]  # the shape of reduction='none'
    if input.ndim > 2:  # (N, C, d...) -> rows of C, like PyTorch's K-dimensional case
        input = reshape(permute(input, (0, *range(2, input.ndim), 1)), -1, classes)
        labels = (xp.moveaxis(labels, 1, -1).reshape(-1, classes) if labels.dtype.kind == "f"
                  else labels.reshape(-1))
    rows = input.shape[0]
    weight = None if weight is None else _values(weight).astype(input.dtype, copy=False)
    if labels.dtype.kind == "f":  # class probabilities
        targets = labels.astype(input.dtype, copy=True)
        valid = None
        normalizer = rows
    else:
        if labels.shape != (rows,):
            raise ValueError(f"cross_entropy: target shape {labels.shape} does not match "
                             f"input with {rows} rows")
        valid = labels != ignore_index
        safe = xp.where(valid, labels, 0)
        if safe.size and (safe.min() < 0 or safe.max() >= classes):
            raise IndexError(f"cross_entropy: target out of range [0, {classes})")
        targets = xp.zeros((rows, classes), dtype=input.dtype)
        targets[xp.arange(rows), safe] = 1
        normalizer = int(valid.sum())
        if weight is not None:
            normalizer = float(weight[safe][valid].sum())
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / classes
    if weight is not None:
        targets = targets * weight
    if valid is not None:
        targets *= valid[:, None]
    loss = SoftmaxCrossEntropy.apply(
        input, targets=targets, reduction=reduction,
        normalizer=1 if reduction == "sum" else max(normalizer, 1e-12))
    return reshape(loss, row_shape) if reduction == "none" else loss


def nll_loss(log_probs, target, reduction="mean"):
    """Negative log-likelihood of integer targets given log-probabilities (N, C)."""
    picked = gather(log_probs, 1, _values(target).reshape(-1, 1))
    return _reduce(-reshape(picked, -1), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None,
                                     reduction="mean"):
    """-[y log σ(z) + (1 - y) log(1 - σ(z))], computed stably from the logits z."""
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    pos_weight = None if pos_weight is None else \
        _values(pos_weight).astype(input.dtype, copy=False)  # float32 in, float32 out
    loss = BinaryCrossEntropyWithLogits.apply(input, target, pos_weight=pos_weight)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def mse_loss(input, target, reduction="mean"):
    """(x - y)²."""
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    """|x - y|."""
    return _reduce(abs(input - target), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """½ d² where |d| ≤ δ, else δ (|d| - ½ δ): quadratic near zero, linear in the tails."""
    diff = input - target
    size = abs(diff)
    quadratic = 0.5 * diff * diff
    linear_part = delta * (size - 0.5 * delta)
    return _reduce(where(size.data <= delta, quadratic, linear_part), reduction)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6):
    """‖x1 - x2 + eps‖_p over the last axis (PyTorch adds eps before the norm)."""
    diff = abs(x1 - x2 + eps)
    return sum(diff ** p, dim=-1) ** (1.0 / p)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6,
                        reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0): pull the positive closer than the negative."""
    gap = pairwise_distance(anchor, positive, p, eps) - pairwise_distance(anchor, negative, p, eps)
    return _reduce(relu(gap + margin), reduction)


def cosine_similarity(x1, x2, dim=-1, eps=1e-8):
    """Σ (x1 / max(‖x1‖, eps)) (x2 / max(‖x2‖, eps)), as PyTorch computes it. Each norm is
    √max(‖x‖², eps²): the clamp comes before the square root, so an all-zero row sends no
    gradient through its norm (where √ has no finite slope) and stays finite, not 0/0 = NaN."""
    def clamped_norm(x):
        return sqrt(maximum(sum(x * x, dim=dim, keepdim=True), eps * eps))

    return sum((x1 / clamped_norm(x1)) * (x2 / clamped_norm(x2)), dim=dim)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """x / max(‖x‖_p, eps) along ``dim`` (PyTorch's F.normalize): unit vectors, an all-zero
    row left at zero."""
    norm = sum(abs(input) ** p, dim=dim, keepdim=True) ** (1.0 / p) if p != 2.0 else \
        sqrt(maximum(sum(input * input, dim=dim, keepdim=True), eps * eps))
    return input / maximum(norm, eps)


def batch_hard_triplet_loss(embeddings, labels, margin=0.2, eps=1e-6):
    """The batch-hard triplet loss (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet
    Loss"): each example of the batch is an anchor a, with its hardest positive (the farthest
    example of its label) and hardest negative (the nearest of another label),

        L = mean_a max(0, d(a, p_hard(a)) − d(a, n_hard(a)) + margin),   d = ‖·‖₂,

    over the unit-normalised embeddings (so distances lie in [0, 2]). Which examples are the
    hardest is chosen on the values (NumPy, no gradient: a max has no gradient through its
    choice), then the loss is PyTorch's ``triplet_margin_loss`` on the chosen triplets.
    Anchors without a positive or a negative in the batch are left out; a batch with none
    gives a zero loss (still connected to the embeddings, so backward runs)."""
    unit = normalize(embeddings, dim=1)
    values = unit.data
    xp = embeddings.xp
    labels = xp.asarray(_values(labels))
    squares = (values * values).sum(1)
    distances = squares[:, None] + squares[None, :] - 2 * values @ values.T  # ‖a − b‖²
    same = labels[:, None] == labels[None, :]
    other = ~xp.eye(len(labels), dtype=bool)
    positive, negative = same & other, ~same
    anchors = xp.flatnonzero(positive.any(1) & negative.any(1))
    if len(anchors) == 0:
        return sum(embeddings) * 0.0
    hardest_positive = xp.where(positive, distances, -xp.inf)[anchors].argmax(1)
    hardest_negative = xp.where(negative, distances, xp.inf)[anchors].argmin(1)
    return triplet_margin_loss(unit[anchors], unit[hardest_positive], unit[hardest_negative],
                               margin=margin, eps=eps)


def profile_triplet_loss(embeddings, profiles, margin=0.2, eps=1e-6):
    """A triplet loss that aligns an embedding space with a space of properties: each example a
    of the batch is an anchor, its positive the example whose property profile (a row of
    ``profiles``, (N, D)) is nearest its own, its negative the nearest in embedding space
    among the examples whose profile is far (farther than the median of a's profile
    distances) — batch-hard, as ``batch_hard_triplet_loss``, with property distances in
    place of labels:

        L = mean_a max(0, d(a, p(a)) − d(a, n(a)) + margin),   d = ‖·‖₂ of unit embeddings.

    The choices are made on the values (no gradient through them). A batch of fewer than
    three examples has no triplet: a zero loss, still connected to the embeddings."""
    unit = normalize(embeddings, dim=1)
    values = unit.data
    xp = embeddings.xp
    n = len(values)
    if n < 3:
        return sum(embeddings) * 0.0
    profiles = xp.asarray(_values(profiles), dtype=xp.float64).reshape(n, -1)
    squares = (profiles * profiles).sum(1)
    apart = squares[:, None] + squares[None, :] - 2 * profiles @ profiles.T  # ‖y_a − y_b‖²
    self_pairs = xp.eye(n, dtype=bool)
    positive = xp.where(self_pairs, xp.inf, apart).argmin(1)
    median = xp.nanmedian(xp.where(self_pairs, xp.nan, apart), axis=1)
    far = (apart > median[:, None]) & ~self_pairs
    anchors = xp.flatnonzero(far.any(1))
    if len(anchors) == 0:  # every profile alike: nothing is far
        return sum(embeddings) * 0.0
    squares = (values * values).sum(1)
    distances = squares[:, None] + squares[None, :] - 2 * values @ values.T
    hardest_far = xp.where(far, distances, xp.inf)[anchors].argmin(1)
    return triplet_margin_loss(unit[anchors], unit[positive[anchors]], unit[hardest_far],
                               margin=margin, eps=eps)


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """1 - cos(x1, x2) where y = 1;  max(0, cos(x1, x2) - margin) where y = -1."""
    cos = cosine_similarity(input1, input2)
    labels = _values(target)
    return _reduce(where(labels == 1, 1 - cos, relu(cos - margin)), reduction)
