"""Optimizers match their update formulas on small hand-computed cases (and torch, if present)."""

import math

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn as nn
import tinymtl.nn.functional as F
from tinymtl.optim import SGD, Adam, AdamW, GradientAccumulator
from tinymtl.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, SequentialLR, StepLR)


def param(values, grad):
    p = nn.Parameter(np.array(values, dtype=np.float32))
    p.grad = np.array(grad, dtype=np.float32)
    return p


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.5])
    SGD([p], lr=0.1, weight_decay=0.1).step()
    # g = 0.5 + 0.1 * p = [0.6, 0.3];  p - 0.1 g
    np.testing.assert_allclose(p.data, [1 - 0.06, -2 - 0.03], rtol=1e-6)


def test_sgd_momentum_and_nesterov_by_hand():
    p = param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()                      # b = 1            p = 1 - 0.1
    p.grad = np.array([2.0], np.float32)
    opt.step()                      # b = 0.9 + 2 = 2.9  p = 0.9 - 0.29
    np.testing.assert_allclose(p.data, [0.61], rtol=1e-6)
    q = param([1.0], [1.0])
    opt = SGD([q], lr=0.1, momentum=0.9, nesterov=True)
    opt.step()                      # b = 1, g = 1 + 0.9 = 1.9   q = 1 - 0.19
    np.testing.assert_allclose(q.data, [0.81], rtol=1e-6)


def test_adam_first_two_steps_by_hand():
    p = param([1.0], [0.5])
    opt = Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    # m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25 -> step 0.1 * 0.5 / (0.5 + 1e-8) ≈ 0.1
    np.testing.assert_allclose(p.data, [0.9], rtol=1e-6)
    p.grad = np.array([-1.0], np.float32)
    opt.step()
    m = 0.9 * 0.05 + 0.1 * -1.0
    v = 0.999 * 0.00025 + 0.001 * 1.0
    expected = 0.9 - 0.1 / (1 - 0.81) * m / (math.sqrt(v) / math.sqrt(1 - 0.999 ** 2) + 1e-8)
    np.testing.assert_allclose(p.data, [expected], rtol=1e-5)


def test_adam_l2_versus_adamw_decoupled_decay():
    p = param([2.0], [0.0])
    Adam([p], lr=0.1, weight_decay=0.5).step()
    # L2: g = 0 + 0.5 * 2 = 1 -> a full Adam step of size lr
    np.testing.assert_allclose(p.data, [1.9], rtol=1e-6)
    q = param([2.0], [0.0])
    AdamW([q], lr=0.1, weight_decay=0.5).step()
    # decoupled: q <- q (1 - lr wd) = 1.9, then the Adam step of a zero gradient is 0
    np.testing.assert_allclose(q.data, [1.9], rtol=1e-6)
    r = param([2.0], [1.0])
    AdamW([r], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(r.data, [1.9 - 0.1], rtol=1e-6)


def test_parameter_groups_have_their_own_learning_rates():
    a, b = param([1.0], [1.0]), param([1.0], [1.0])
    opt = SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.5, 0.9], rtol=1e-6)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [a]}, {"params": [a]}], lr=0.1)


def test_optimizer_state_dict_resumes_exactly():
    def run(split):
        tm.manual_seed(0)
        model = nn.Linear(3, 2)
        opt = Adam(model.parameters(), lr=0.01)
        x, y = tm.randn(8, 3), tm.tensor(np.arange(8) % 2)
        for step in range(6):
            if step == split:
                state, weights = opt.state_dict(), model.state_dict()
                model = nn.Linear(3, 2)
                model.load_state_dict(weights)
                opt = Adam(model.parameters(), lr=0.01)
                opt.load_state_dict(state)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return model.state_dict()
    straight, resumed = run(split=-1), run(split=3)
    for name in straight:
        assert straight[name].tobytes() == resumed[name].tobytes(), name


def test_schedules_follow_their_closed_forms():
    opt = SGD([param([1.0], [0.0])], lr=1.0)
    step = StepLR(opt, step_size=2, gamma=0.5)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        step.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]

    opt = SGD([param([1.0], [0.0])], lr=1.0)
    cosine = CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    for _ in range(2):
        cosine.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)

    opt = SGD([param([1.0], [0.0])], lr=1.0)
    warm = SequentialLR(opt, [LinearLR(opt, 0.1, 1.0, total_iters=2),
                              CosineAnnealingLR(opt, T_max=2)], milestones=[2])
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        warm.step()
        lrs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [0.1, 0.55, 1.0, 0.5, 0.0], atol=1e-12)
    state = warm.state_dict()
    warm.step()
    warm.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_gradient_accumulation_equals_one_large_batch():
    tm.manual_seed(0)
    x = tm.randn(12, 5)
    y = tm.tensor(np.arange(12) % 3)

    def train(micro_batches):
        tm.manual_seed(1)
        model = nn.Linear(5, 3)
        opt = SGD(model.parameters(), lr=0.5)
        acc = GradientAccumulator(opt, micro_batches)
        size = 12 // micro_batches
        for k in range(micro_batches):
            part = slice(k * size, (k + 1) * size)
            stepped = acc.backward(F.cross_entropy(model(x[part]), y.data[part]))
        assert stepped
        return model.weight.data

    np.testing.assert_allclose(train(4), train(1), rtol=1e-5, atol=1e-7)


def test_adam_matches_torch_over_several_steps():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(5)]
    for ours_cls, theirs_cls in ((Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)):
        p = nn.Parameter(w0.copy())
        t = torch.tensor(w0.copy(), requires_grad=True)
        ours = ours_cls([p], lr=0.01, weight_decay=0.1)
        theirs = theirs_cls([t], lr=0.01, weight_decay=0.1)
        for g in grads:
            p.grad = g.copy()
            t.grad = torch.tensor(g)
            ours.step()
            theirs.step()
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)
