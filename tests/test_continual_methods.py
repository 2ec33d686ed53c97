"""Continual-learning building blocks on hand-made values: Fisher, EWC, SI, reservoir, LwF,
and the accuracy-matrix metrics."""

import types

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn as nn
from tinymtl.autograd import Tensor
from tinymtl.backend.random import Generator
from tinymtl.mtl.continual import (EWC, SI, LwF, OnlineEWC, ReservoirBuffer, diagonal_fisher,
                                   distillation_loss)
from tinymtl.train import continual_metrics as M


def on(model):
    """What a method's hooks read of the trainer: its model."""
    return types.SimpleNamespace(model=model)


class Tiny(nn.Module):
    """logits = W x + b, with the task argument the multi-task models take."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, x, task=None):
        return self.linear(x)


def softmax_by_hand(model, xn):
    W, b = model.linear.weight.numpy().astype(np.float64), model.linear.bias.numpy()
    z = W @ xn + b
    p = np.exp(z - z.max())
    return p / p.sum()


def per_sample_fisher_by_hand(model, x, labels, weights=None):
    """(1/N) Σ_n w_n g_n², g_n = ∂(−log softmax(W x_n + b)[y_n])/∂θ = (p_n − onehot(y_n)) ⊗ x_n
    (w_n = 1 unless given)."""
    fw = np.zeros(model.linear.weight.shape)
    fb = np.zeros(model.linear.bias.shape)
    weights = np.ones(len(labels)) if weights is None else weights
    for xn, yn, wn in zip(x.astype(np.float64), labels, weights):
        delta = softmax_by_hand(model, xn) - np.eye(4)[yn]
        fw += wn * np.outer(delta, xn) ** 2
        fb += wn * delta ** 2
    return fw / len(x), fb / len(x)


def test_empirical_fisher_is_the_mean_of_per_sample_squared_gradients():
    model = Tiny()
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 1, 0])
    fisher = diagonal_fisher(model, None, x, y)
    fw, fb = per_sample_fisher_by_hand(model, x, y)
    np.testing.assert_allclose(fisher["linear.weight"], fw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fisher["linear.bias"], fb, rtol=1e-5, atol=1e-7)
    # not the square of the batch-mean gradient (smaller, by Jensen's inequality)
    model.zero_grad()
    tm.nn.functional.cross_entropy(model(Tensor(x)), y).backward()
    assert (model.linear.bias.grad ** 2 < fisher["linear.bias"]).all()


def test_true_fisher_samples_labels_from_the_model():
    model = Tiny()
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    drawn = Generator(7)
    fisher = diagonal_fisher(model, None, x, None, generator=Generator(7))
    logits = model(Tensor(x)).numpy().astype(np.float64)
    labels = []
    for z in logits:  # the same draws, in the same order
        p = np.exp(z - z.max())
        p /= p.sum()
        labels.append(int(drawn.choice(4, p=p / p.sum())))
    fw, _ = per_sample_fisher_by_hand(model, x, np.array(labels))
    np.testing.assert_allclose(fisher["linear.weight"], fw, rtol=1e-4, atol=1e-7)


def test_predicted_fisher_takes_the_models_own_prediction():
    model = Tiny()
    x = np.random.default_rng(3).standard_normal((7, 3)).astype(np.float32)
    fisher = diagonal_fisher(model, None, x, kind="predicted")
    predicted = [int(np.argmax(softmax_by_hand(model, xn))) for xn in x.astype(np.float64)]
    fw, fb = per_sample_fisher_by_hand(model, x, np.array(predicted))
    np.testing.assert_allclose(fisher["linear.weight"], fw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fisher["linear.bias"], fb, rtol=1e-5, atol=1e-7)


def test_exact_fisher_is_the_expectation_over_every_class():
    """Σ_c p(c | x_n) g_n,c², averaged over n: every (example, class) pair by hand. The labels in
    the data play no part, and the one-label estimates scatter around it."""
    model = Tiny()
    x = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
    fisher = diagonal_fisher(model, None, x, np.array([0, 0, 0, 0, 0]), kind="exact")
    pairs_x = np.repeat(x, 4, axis=0)
    pairs_label = np.tile(np.arange(4), len(x))
    pairs_weight = np.concatenate([softmax_by_hand(model, xn) for xn in x.astype(np.float64)])
    fw, fb = per_sample_fisher_by_hand(model, pairs_x, pairs_label, pairs_weight)
    np.testing.assert_allclose(fisher["linear.weight"], fw * 4, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fisher["linear.bias"], fb * 4, rtol=1e-5, atol=1e-7)
    sampled = [diagonal_fisher(model, None, x, kind="true", generator=Generator(seed))["linear.bias"]
               for seed in range(400)]
    np.testing.assert_allclose(np.mean(sampled, axis=0), fisher["linear.bias"], rtol=0.1)


def test_fisher_kind_is_checked():
    model, x = Tiny(), np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="'exactly' is not one of"):
        diagonal_fisher(model, None, x, kind="exactly")
    with pytest.raises(ValueError, match="needs the labels"):
        diagonal_fisher(model, None, x, kind="empirical")


@pytest.mark.parametrize("online, stages", [(False, 1), (True, 1), (False, 3)])
def test_ewc_penalty_gradient_is_lambda_f_times_the_displacement(online, stages):
    """∇ = λ Σ_t F_t (θ − θ*_t) and value (λ/2) Σ_t F_t (θ − θ*_t)²; with several anchors this
    checks the merged quadratic A (θ − μ)² + c against the sum of the separate penalties."""
    model = Tiny()
    rng = np.random.default_rng(2)
    ewc, anchors = (OnlineEWC if online else EWC)(lambd=3.0), []
    for _ in range(stages):
        for p in model.parameters():
            p.data += rng.standard_normal(p.shape).astype(np.float32)
        fisher = {n: rng.random(p.shape).astype(np.float32) for n, p in model.named_parameters()}
        fisher["linear.bias"][0] = 0.0  # a weight no task cares about
        ewc.add_anchor(model, fisher)
        anchors.append((fisher, {n: p.data.copy() for n, p in model.named_parameters()}))
    for p in model.parameters():
        p.data += rng.standard_normal(p.shape).astype(np.float32)
    model.zero_grad()
    penalty = ewc.penalty(model)
    penalty.backward()
    expected = 0.0
    for name, p in model.named_parameters():
        theta = p.data.astype(np.float64)
        gradient = sum(3.0 * f[name] * (theta - t[name]) for f, t in anchors)
        np.testing.assert_allclose(p.grad, gradient, rtol=1e-4, atol=1e-5)
        expected += sum(1.5 * (f[name] * (theta - t[name]) ** 2).sum() for f, t in anchors)
    assert penalty.item() == pytest.approx(expected, rel=1e-5)


def test_online_ewc_keeps_one_anchor_with_decayed_fisher_and_ewc_keeps_one_per_task():
    model = Tiny()
    ones = {n: np.ones(p.shape, np.float32) for n, p in model.named_parameters()}
    ewc, online = EWC(lambd=1.0), OnlineEWC(lambd=1.0, gamma=0.5)
    for method in (ewc, online):
        method.add_anchor(model, ones)
        method.add_anchor(model, ones)
    assert len(ewc.anchors) == 2 and len(online.anchors) == 1
    np.testing.assert_allclose(online.anchors[0][0]["linear.bias"], 1.5)  # γ·1 + 1
    copy = EWC(lambd=1.0)
    copy.load_state_dict(ewc.state_dict())
    assert len(copy.anchors) == 2
    assert copy.penalty(model).item() == ewc.penalty(model).item() == 0.0


def test_si_path_integral_on_a_hand_made_step():
    model = Tiny()
    si = SI(c=2.0, xi=0.1)
    si.begin(model, ["t"], seed=0)
    start = model.linear.bias.data.copy()
    model.linear.bias.grad = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    si.on_before_optimizer_step(on(model))
    model.linear.bias.data -= np.array([0.1, -0.2, 0.0, 0.3], np.float32)  # the update
    si.on_after_optimizer_step(on(model), {})
    # ω = −g Δθ = −[1, −2, 0.5, 0]·[−0.1, 0.2, 0, −0.3] = [0.1, 0.4, 0, 0]
    np.testing.assert_allclose(si.omega["linear.bias"], [0.1, 0.4, 0.0, 0.0], rtol=1e-6)
    si.on_stage_end(on(model), 0, ["t"])
    travelled = model.linear.bias.data - start
    np.testing.assert_allclose(si.importance["linear.bias"],
                               np.array([0.1, 0.4, 0, 0]) / (travelled ** 2 + 0.1), rtol=1e-5)
    assert not si.omega["linear.bias"].any()
    model.linear.bias.data += 1.0
    penalty = si.penalty(model)
    expected = 2.0 * (si.importance["linear.bias"] * 1.0).sum()
    assert penalty.item() == pytest.approx(expected, rel=1e-5)


def test_reservoir_keeps_each_item_with_probability_k_over_n():
    k, n, trials = 10, 50, 2000
    generator = Generator(0)
    kept = np.zeros(n)
    for _ in range(trials):
        buffer = ReservoirBuffer(k, generator)
        items = np.arange(n)
        buffer.add(items[:, None], items, task=0)
        kept[buffer.y[:len(buffer)]] += 1
    expected = trials * k / n  # 400 per item
    chi_square = float(((kept - expected) ** 2 / expected).sum())
    # 49 degrees of freedom (each trial keeps exactly k items): p = 0.001 at 85.4
    assert chi_square < 85.4, chi_square
    assert kept.sum() == trials * k


def test_reservoir_state_round_trip():
    buffer = ReservoirBuffer(4, Generator(1))
    buffer.add(np.arange(12.0)[:, None], np.arange(12), task=2)
    copy = ReservoirBuffer(4, Generator(99))
    copy.load_state_dict(buffer.state_dict())
    a, b = buffer.sample(6), copy.sample(6)
    assert all(np.array_equal(u, v) for u, v in zip(a, b)) and set(a[2]) == {2}
    assert copy.seen == 12 and len(copy) == 4
    assert copy.sample(3, exclude_task=2) is None  # every stored item is task 2's
    assert ReservoirBuffer(4, Generator(0)).sample(3) is None  # empty


def test_distillation_matches_soft_cross_entropy(float64):
    rng = np.random.default_rng(3)
    student = tm.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    teacher = tm.tensor(rng.standard_normal((2, 3)))
    T = 2.0
    loss = distillation_loss(student, teacher, T)
    q = np.exp(teacher.numpy() / T)
    q /= q.sum(1, keepdims=True)
    log_p = student.numpy() / T - np.log(np.exp(student.numpy() / T).sum(1, keepdims=True))
    assert loss.item() == pytest.approx(-(q * log_p).sum() * T ** 2 / 2)
    loss.backward()
    p = np.exp(log_p)
    np.testing.assert_allclose(student.grad, (p - q) * T / 2, rtol=1e-6)  # T² · (1/T) / N


def test_lwf_distils_every_earlier_head_as_its_own_forward_would():
    """The strategy runs the backbones once and the heads per earlier task; each term must
    equal distillation_loss(model(x, t), teacher(x, t)) computed the plain way."""
    from tinymtl.mtl.model import MultiTaskModel

    def build():
        backbone = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
        return MultiTaskModel(backbone, {t: nn.Linear(6, 3) for t in "abc"})

    tm.manual_seed(0)
    model = build()

    def make_teacher(state):
        teacher = build()
        teacher.load_state_dict(state)
        return teacher.eval()

    strategy = LwF(temperature=2.0, alpha=0.5)
    strategy.begin(model, "abc", 0, make_teacher)
    strategy.on_stage_end(on(model), 0, ["a"])
    strategy.on_stage_end(on(model), 1, ["b"])
    teacher = make_teacher(model.state_dict())
    rng = np.random.default_rng(4)
    for p in model.parameters():  # the student has moved on since the teacher's snapshot
        p.data += 0.3 * rng.standard_normal(p.shape).astype(np.float32)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    terms = strategy.distill(model, x)
    assert sorted(terms) == ["distill:a", "distill:b"]
    for task in "ab":
        plain = distillation_loss(model(Tensor(x), task), teacher(Tensor(x), task), 2.0) * 0.5
        assert terms[f"distill:{task}"].item() == pytest.approx(plain.item(), rel=1e-6)
    assert not np.allclose(model(Tensor(x), "a").numpy(), teacher(Tensor(x), "a").numpy())

    # the trainer hands over the features its task loss used: same terms, and the gradient
    # still reaches the backbone through them
    def backbone_grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.copy() for p in model.backbone.parameters()]

    reused = strategy.distill(model, x, model.features(Tensor(x)))
    for task in "ab":
        assert reused[f"distill:{task}"].item() == terms[f"distill:{task}"].item()
    expected = backbone_grads(terms["distill:a"] + terms["distill:b"])
    got = backbone_grads(reused["distill:a"] + reused["distill:b"])
    assert any(np.abs(g).max() > 0 for g in got)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)


def test_accuracy_matrix_metrics_on_a_hand_made_matrix():
    R = [[0.90, 0.10, 0.20],
         [0.60, 0.95, 0.30],
         [0.50, 0.80, 0.85]]
    b = [0.1, 0.1, 0.1]
    assert M.average_accuracy(R) == pytest.approx((0.50 + 0.80 + 0.85) / 3)
    assert M.backward_transfer(R) == pytest.approx(((0.50 - 0.90) + (0.80 - 0.95)) / 2)
    assert M.forward_transfer(R, b) == pytest.approx(((0.10 - 0.1) + (0.30 - 0.1)) / 2)
    assert M.forgetting(R) == pytest.approx([0.90 - 0.50, 0.95 - 0.80])
    assert M.average_forgetting(R) == pytest.approx(0.275)
    # the best value since training, not only R[j][j]: task 0 peaks after stage 1 here
    assert M.forgetting([[0.7, 0.0, 0], [0.9, 0.8, 0], [0.6, 0.7, 0.9]])[0] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="T x T"):
        M.average_accuracy([[1.0, 2.0]])
    assert M.backward_transfer([[0.5]]) is None


def test_online_ewc_penalty_carries_the_decay_gamma():
    """Schwarz et al. (2018), eq. 7: (λ/2) Σ γ F* (θ − θ*)² (at γ = 1, EWC's form)."""
    model = Tiny()
    ones = {n: np.ones(p.shape, np.float32) for n, p in model.named_parameters()}
    half, full = OnlineEWC(lambd=2.0, gamma=0.5), OnlineEWC(lambd=2.0, gamma=1.0)
    for method in (half, full):
        method.add_anchor(model, ones)
    for p in model.parameters():
        p.data += 1.0
    count = sum(p.data.size for p in model.parameters())
    assert full.penalty(model).item() == pytest.approx(count)          # (2/2) Σ 1 · 1²
    assert half.penalty(model).item() == pytest.approx(0.5 * count)    # γ = 1/2 in front
