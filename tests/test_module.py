"""Module registration, state dicts with strict checks, train/eval, devices and RNG state."""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn as nn
from tinymtl.backend import Generator


def small_model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(8, 3))


def test_parameters_and_names_follow_the_module_tree():
    model = small_model()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"]
    assert model.num_parameters() == 2 * 9 + 2 + 2 + 2 + 8 * 3 + 3
    heads = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 1)})
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_shared_parameters_are_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2


def test_state_dict_round_trip_is_bitwise_and_includes_buffers():
    model = small_model()
    model(tm.randn(4, 1, 4, 4))  # updates the batch-norm running statistics
    state = model.state_dict()
    assert "1.running_mean" in state and "1.running_var" in state
    other = small_model()
    other.load_state_dict(state)
    for (name, a), b in zip(state.items(), other.state_dict().values()):
        assert a.tobytes() == b.tobytes(), name


def test_load_state_dict_rejects_bad_shapes_and_names_without_changing_anything():
    model = nn.Linear(3, 2)
    before = model.weight.data.copy()
    with pytest.raises(ValueError, match=r"weight has shape \(2, 4\).*\(2, 3\)"):
        model.load_state_dict({"weight": np.zeros((2, 4)), "bias": np.zeros(2)})
    with pytest.raises(KeyError, match="missing keys \\['bias'\\].*unexpected keys \\['extra'\\]"):
        model.load_state_dict({"weight": np.zeros((2, 3)), "extra": np.zeros(1)})
    np.testing.assert_array_equal(model.weight.data, before)
    missing, unexpected = model.load_state_dict({"weight": np.ones((2, 3))}, strict=False)
    assert missing == ["bias"] and unexpected == []
    np.testing.assert_array_equal(model.weight.data, 1)


def test_train_and_eval_switch_dropout_and_batch_norm():
    model = small_model()
    x = tm.randn(4, 1, 4, 4)
    model.eval()
    assert not any(m.training for m in model.modules())
    np.testing.assert_array_equal(model(x).data, model(x).data)  # deterministic in eval
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_and_repr():
    model = nn.Linear(2, 1)
    model(tm.randn(3, 2)).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad()
    assert model.weight.grad is None
    assert "Linear(in_features=2, out_features=1, bias=True)" in repr(nn.Sequential(model))


def test_init_is_seeded_and_has_the_right_scale():
    tm.manual_seed(7)
    a = nn.Linear(400, 300).weight.data.copy()
    tm.manual_seed(7)
    b = nn.Linear(400, 300).weight.data
    assert a.tobytes() == b.tobytes()
    assert a.dtype == np.float32
    assert np.abs(a).max() <= 1 / np.sqrt(400)
    w = tm.zeros(300, 400)
    nn.init.kaiming_normal_(w, nonlinearity="relu", generator=Generator(1))
    assert abs(w.data.std() - np.sqrt(2 / 400)) < 0.003
    nn.init.xavier_uniform_(w, generator=Generator(1))
    assert abs(w.data.std() - np.sqrt(2 / 700)) < 0.003


def test_generator_state_round_trips_through_json():
    g = Generator(5)
    g.normal(0, 1, (10,))
    saved = g.state_json()
    first = g.normal(0, 1, (5,))
    g.load_state_json(saved)
    np.testing.assert_array_equal(g.normal(0, 1, (5,)), first)


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tm.set_device("tpu")


def test_clip_grad_norm_scales_all_gradients_together():
    a, b = tm.tensor([3.0], requires_grad=True), tm.tensor([4.0], requires_grad=True)
    (a * a / 2 + b * b / 2).backward()  # grads 3 and 4: global norm 5
    total = nn.utils.clip_grad_norm_([a, b], 1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose([a.grad[0], b.grad[0]], [0.6, 0.8], rtol=1e-5)
