"""Forward values and gradients agree with PyTorch to float32 tolerance (skipped without torch).

Each case builds the same computation in both frameworks from the same float32 inputs and
backpropagates the same non-uniform upstream gradient.
"""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(0)


def arr(*shape, positive=False):
    values = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(values) + 0.5 if positive else values


def compare(ours, theirs, *arrays, rtol=1e-4, atol=1e-5):
    """Run ``ours`` on tinymtl tensors and ``theirs`` on torch tensors; compare out and grads."""
    mine = [tm.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), theirs(*ref)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=rtol, atol=atol)
    upstream = RNG.standard_normal(out.shape).astype(np.float32)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for k, (m, r) in enumerate(zip(mine, ref)):
        assert m.grad is not None, f"input {k} got no gradient"
        np.testing.assert_allclose(m.grad, r.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")


CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (4,)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [(3, 1), (1, 4)]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [(2, 3, 4), (3, 1)]),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [(3, 4), ("+", 4)]),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, [("+", 3, 4), (3, 4)]),
    "neg": (lambda a: -a, lambda a: -a, [(3, 4)]),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "matmul_batched": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (2, 4, 5)]),
    "exp": (F.exp, torch.exp, [(3, 4)]),
    "log": (F.log, torch.log, [("+", 3, 4)]),
    "sqrt": (F.sqrt, torch.sqrt, [("+", 3, 4)]),
    "abs": (F.abs, torch.abs, [(3, 4)]),
    "tanh": (F.tanh, torch.tanh, [(3, 4)]),
    "sigmoid": (F.sigmoid, torch.sigmoid, [(3, 4)]),
    "relu": (F.relu, TF.relu, [(3, 4)]),
    "leaky_relu": (lambda a: F.leaky_relu(a, 0.1), lambda a: TF.leaky_relu(a, 0.1), [(3, 4)]),
    "gelu": (F.gelu, TF.gelu, [(3, 4)]),
    "gelu_tanh": (lambda a: F.gelu(a, "tanh"), lambda a: TF.gelu(a, approximate="tanh"),
                  [(3, 4)]),
    "sum": (lambda a: a.sum((0, 2)), lambda a: a.sum((0, 2)), [(2, 3, 4)]),
    "mean_keepdim": (lambda a: a.mean(1, keepdim=True), lambda a: a.mean(1, keepdim=True),
                     [(2, 3, 4)]),
    "amax": (lambda a: a.amax(1), lambda a: a.amax(1), [(2, 3, 4)]),
    "amin": (lambda a: a.amin((0, 1)), lambda a: a.amin((0, 1)), [(2, 3, 4)]),
    "var": (lambda a: a.var(2), lambda a: a.var(2), [(2, 3, 4)]),
    "logsumexp": (lambda a: a.logsumexp(1), lambda a: a.logsumexp(1), [(2, 3, 4)]),
    "softmax": (lambda a: F.softmax(a, 1), lambda a: TF.softmax(a, 1), [(2, 3, 4)]),
    "log_softmax": (lambda a: F.log_softmax(a, -1), lambda a: TF.log_softmax(a, -1),
                    [(2, 3, 4)]),
    "reshape_permute": (lambda a: a.permute(2, 0, 1).reshape(4, 6),
                        lambda a: a.permute(2, 0, 1).reshape(4, 6), [(2, 3, 4)]),
    "transpose": (lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    "index": (lambda a: a[:, [2, 0, 2], 1:3], lambda a: a[:, [2, 0, 2], 1:3], [(2, 3, 4)]),
    "gather": (lambda a: F.gather(a, 1, np.array([[0, 0, 3], [2, 1, 1]])),
               lambda a: torch.gather(a, 1, torch.tensor([[0, 0, 3], [2, 1, 1]])), [(2, 4)]),
    "cat": (lambda a, b: F.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1), [(2, 3), (2, 2)]),
    "stack": (lambda a, b: F.stack([a, b], 2), lambda a, b: torch.stack([a, b], 2),
              [(2, 3), (2, 3)]),
    "where": (lambda a, b: F.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b),
              lambda a, b: torch.where(torch.arange(12).reshape(3, 4) % 3 == 0, a, b),
              [(3, 4), (3, 4)]),
    "clip": (lambda a: F.clip(a, -0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5), [(3, 4)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
               lambda x, w, b: TF.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
               [(2, 3, 9, 8), (4, 3, 3, 3), (4,)]),
    "conv2d_winograd": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
                        lambda x, w, b: TF.conv2d(x, w, b, padding=1),
                        [(2, 8, 7, 6), (4, 8, 3, 3), (4,)]),
    "conv2d_groups": (lambda x, w: F.conv2d(x, w, padding=1, groups=2),
                      lambda x, w: TF.conv2d(x, w, padding=1, groups=2),
                      [(2, 4, 6, 6), (6, 2, 3, 3)]),
    "conv1d": (lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2),
               lambda x, w, b: TF.conv1d(x, w, b, stride=2, padding=2, dilation=2),
               [(2, 3, 11), (5, 3, 3), (5,)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1),
                   [(2, 3, 9, 8)]),
    "max_pool2d_tiles": (lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2),
                         [(2, 3, 7, 6)]),  # (windows that tile the image, a row left over)
    "max_pool2d_dilated": (lambda x: F.max_pool2d(x, 2, 1, 0, 2),
                           lambda x: TF.max_pool2d(x, 2, 1, 0, 2), [(2, 3, 7, 6)]),
    "relu_max_pool2d": (lambda x, b: F.relu_max_pool2d(x, 2, b),
                        lambda x, b: TF.max_pool2d(TF.relu(x + b[:, None, None]), 2),
                        [(2, 3, 7, 6), (3,)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1), lambda x: TF.avg_pool2d(x, 3, 2, 1),
                   [(2, 3, 9, 8)]),
    "global_avg_pool2d": (F.global_avg_pool2d, lambda x: x.mean((2, 3)), [(2, 3, 5, 4)]),
    "linear": (F.linear, TF.linear, [(5, 4), (3, 4), (3,)]),
    "embedding": (lambda w: F.embedding(np.array([[0, 2, 2], [1, 3, 0]]), w),
                  lambda w: TF.embedding(torch.tensor([[0, 2, 2], [1, 3, 0]]), w), [(4, 3)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b),
                   lambda x, w, b: TF.layer_norm(x, (4,), w, b), [(2, 3, 4), (4,), (4,)]),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
                   lambda x, w, b: TF.batch_norm(x, None, None, w, b, True),
                   [(4, 3, 2, 2), (3,), (3,)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([1, 0, 4, 2])),
                      lambda x: TF.cross_entropy(x, torch.tensor([1, 0, 4, 2])), [(4, 5)]),
    "cross_entropy_weighted_smoothed": (
        lambda x: F.cross_entropy(x, np.array([1, 0, 4, 2]),
                                  weight=np.array([1, 2, .5, 1, 3], np.float32),
                                  label_smoothing=0.1),
        lambda x: TF.cross_entropy(x, torch.tensor([1, 0, 4, 2]),
                                   weight=torch.tensor([1, 2, .5, 1, 3]), label_smoothing=0.1),
        [(4, 5)]),
    "cross_entropy_ignore_sum": (
        lambda x: F.cross_entropy(x, np.array([1, -100, 4, 2]), reduction="sum"),
        lambda x: TF.cross_entropy(x, torch.tensor([1, -100, 4, 2]), reduction="sum"),
        [(4, 5)]),
    "cross_entropy_none_3d": (
        lambda x: F.cross_entropy(x, np.array([[1, 0], [2, 2]]), reduction="none"),
        lambda x: TF.cross_entropy(x, torch.tensor([[1, 0], [2, 2]]), reduction="none"),
        [(2, 3, 2)]),
    "bce_with_logits": (
        lambda x: F.binary_cross_entropy_with_logits(x, np.eye(3, 4, dtype=np.float32),
                                                     pos_weight=np.array([1, 2, 3, .5],
                                                                         np.float32)),
        lambda x: TF.binary_cross_entropy_with_logits(x, torch.eye(3, 4),
                                                      pos_weight=torch.tensor([1, 2, 3, .5])),
        [(3, 4)]),
    "mse": (F.mse_loss, TF.mse_loss, [(3, 4), (3, 4)]),
    "l1": (F.l1_loss, TF.l1_loss, [(3, 4), (3, 4)]),
    "huber": (lambda a, b: F.huber_loss(a, b, delta=0.7),
              lambda a, b: TF.huber_loss(a, b, delta=0.7), [(3, 4), (3, 4)]),
    "triplet": (F.triplet_margin_loss, TF.triplet_margin_loss, [(4, 5), (4, 5), (4, 5)]),
    "cosine_embedding": (
        lambda a, b: F.cosine_embedding_loss(a, b, np.array([1, -1, 1, -1]), margin=-0.5),
        lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor([1, -1, 1, -1]), margin=-0.5),
        [(4, 5), (4, 5)]),
    "normalize": (lambda x: F.normalize(x, dim=1), lambda x: TF.normalize(x, dim=1), [(4, 5)]),
    "batch_hard_triplet": (
        lambda x: F.batch_hard_triplet_loss(x, np.array(BATCH_LABELS), margin=0.5),
        lambda x: torch_batch_hard_triplet(x, torch.tensor(BATCH_LABELS), margin=0.5),
        [(6, 5)]),
    "profile_triplet": (
        lambda x: F.profile_triplet_loss(x, np.array(PROFILES), margin=0.5),
        lambda x: torch_profile_triplet(x, torch.tensor(PROFILES), margin=0.5),
        [(6, 5)]),
}


BATCH_LABELS = [0, 1, 0, 2, 1, 2]
PROFILES = [[0.0, 1.0], [2.0, 0.5], [0.2, 1.1], [-1.0, -2.0], [2.1, 0.2], [-1.2, -1.5]]


def torch_profile_triplet(x, profiles, margin):
    """The profile triplet loss written with torch: each anchor's positive is its nearest
    profile, its negative the nearest embedding among profiles farther than its median."""
    unit = TF.normalize(x, dim=1)
    distances = torch.cdist(unit, unit).detach()
    apart = torch.cdist(profiles, profiles)
    eye = torch.eye(len(profiles), dtype=torch.bool)
    positive = apart.masked_fill(eye, float("inf")).argmin(1)
    median = torch.stack([row[~eye[k]].median() if len(row) % 2 else
                          row[~eye[k]].sort().values[len(row) // 2 - 1:len(row) // 2 + 1].mean()
                          for k, row in enumerate(apart)])
    far = (apart > median[:, None]) & ~eye
    negative = distances.masked_fill(~far, float("inf")).argmin(1)
    return TF.triplet_margin_loss(unit, unit[positive], unit[negative], margin=margin)


def torch_batch_hard_triplet(x, labels, margin):
    """Hermans et al.'s batch-hard triplet loss written with torch: cdist, masks, then
    TF.triplet_margin_loss on each anchor's farthest positive and nearest negative."""
    unit = TF.normalize(x, dim=1)
    distances = torch.cdist(unit, unit).detach()
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool)
    hardest_positive = distances.masked_fill(~positive, -1.0).argmax(1)
    hardest_negative = distances.masked_fill(same, float("inf")).argmin(1)
    return TF.triplet_margin_loss(unit, unit[hardest_positive], unit[hardest_negative],
                                  margin=margin)


def _inputs(specs):
    return [arr(*spec[1:], positive=True) if spec and spec[0] == "+" else arr(*spec)
            for spec in specs]


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name):
    ours, theirs, specs = CASES[name]
    compare(ours, theirs, *_inputs(specs))


def test_winograd_conv_matches_torch(monkeypatch):
    from tinymtl.autograd.ops import winograd

    monkeypatch.setattr(winograd, "WINOGRAD", True)  # (opt-in: TINYMTL_WINOGRAD=1)
    ours, theirs, specs = CASES["conv2d_winograd"]
    compare(ours, theirs, *_inputs(specs))


def test_dropout_matches_torch_statistics():
    x = tm.ones(200, 200, requires_grad=True)
    out = F.dropout(x, 0.3)
    kept = out.data != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(out.data[kept], 1 / 0.7, rtol=1e-6)  # torch's inverted scaling
