"""Numerical stability of the log-domain ops at extreme logits."""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn.functional as F


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_log_softmax_and_cross_entropy_stay_finite(scale):
    logits = tm.tensor(np.array([[1.0, 0.0, -1.0], [0.5, -0.5, 2.0]]) * scale, requires_grad=True)
    log_probs = F.log_softmax(logits, dim=1)
    assert np.all(np.isfinite(log_probs.data))
    loss = F.cross_entropy(logits, np.array([0, 2]), label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(loss.item())
    assert np.all(np.isfinite(logits.grad))


def test_cross_entropy_of_confident_correct_logits_is_zero():
    logits = tm.tensor(np.array([[1e4, 0.0, -1e4]]))
    assert F.cross_entropy(logits, np.array([0])).item() == 0.0
    assert F.cross_entropy(logits, np.array([2])).item() == pytest.approx(2e4, rel=1e-6)


def test_softmax_logsumexp_sigmoid_bce_at_extremes():
    x = tm.tensor(np.array([[-1e4, 0.0, 1e4]]), requires_grad=True)
    assert np.all(np.isfinite(F.softmax(x, 1).data))
    assert F.logsumexp(x, 1).item() == pytest.approx(1e4)
    assert np.all(np.isfinite(F.sigmoid(x).data))
    loss = F.binary_cross_entropy_with_logits(x, np.array([[0.0, 1.0, 1.0]]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad))
