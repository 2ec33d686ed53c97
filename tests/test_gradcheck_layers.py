"""Finite-difference gradient checks, in float64, for every layer (input and parameters)."""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn as nn
from tinymtl.autograd.gradcheck import gradcheck
from tinymtl.mtl.heads import AddCoords, make_head

pytestmark = pytest.mark.usefixtures("float64")


def check_layer(layer, x, train=True):
    """Gradient of the layer's output w.r.t. its input (if float) and every parameter."""
    layer.train(train)
    params = list(layer.parameters())
    inputs = ([x] if x.requires_grad else []) + params

    def fn(*values):
        return layer(x)
    gradcheck(fn, inputs)


def rand(*shape, seed=0):
    return tm.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


LAYERS = {
    "linear": lambda: (nn.Linear(4, 3), rand(5, 4)),
    "linear_3d_input": lambda: (nn.Linear(4, 3, bias=False), rand(2, 5, 4)),
    "conv2d": lambda: (nn.Conv2d(2, 3, 3, stride=2, padding=1), rand(2, 2, 6, 5)),
    "conv2d_dilated_grouped": lambda: (nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2),
                                       rand(1, 4, 5, 5)),
    "conv1d": lambda: (nn.Conv1d(3, 4, 3, padding=1), rand(2, 3, 7)),
    "avg_pool": lambda: (nn.AvgPool2d(2), rand(2, 3, 4, 6)),
    "global_avg_pool": lambda: (nn.GlobalAvgPool2d(), rand(2, 3, 4, 6)),
    "flatten": lambda: (nn.Flatten(), rand(2, 3, 2, 2)),
    "layer_norm": lambda: (nn.LayerNorm(4), rand(3, 4)),
    "batch_norm_1d": lambda: (nn.BatchNorm1d(3), rand(5, 3)),
    "batch_norm_1d_sequence": lambda: (nn.BatchNorm1d(3), rand(4, 3, 2)),
    "batch_norm_2d": lambda: (nn.BatchNorm2d(3), rand(4, 3, 2, 2)),
    "relu": lambda: (nn.ReLU(), rand(4, 5)),
    "leaky_relu": lambda: (nn.LeakyReLU(0.2), rand(4, 5)),
    "gelu": lambda: (nn.GELU(), rand(4, 5)),
    "tanh": lambda: (nn.Tanh(), rand(4, 5)),
    "sigmoid": lambda: (nn.Sigmoid(), rand(4, 5)),
    "softmax": lambda: (nn.Softmax(dim=1), rand(4, 5)),
    "log_softmax": lambda: (nn.LogSoftmax(dim=1), rand(4, 5)),
    "sequential": lambda: (nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)),
                           rand(3, 4)),
    "add_coords": lambda: (AddCoords(3, 4), rand(2, 2, 3, 4)),
    "gap_head": lambda: (make_head("gap", (3, 4, 4), 5, hidden=6), rand(2, 3, 4, 4)),
    "flatten_head": lambda: (make_head("flatten", (3, 2, 3), 4), rand(2, 3, 2, 3)),
    "spatial_head": lambda: (make_head("spatial", (2, 3, 3), 4, spatial_channels=3),
                             rand(2, 2, 3, 3)),
    "self_attention": lambda: (nn.SelfAttention(4), rand(2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradients(name):
    layer, x = LAYERS[name]()
    check_layer(layer, x)


def test_max_pool_layer():
    data = np.random.default_rng(1).permutation(2 * 2 * 4 * 6).reshape(2, 2, 4, 6) / 10.0
    check_layer(nn.MaxPool2d(2), tm.tensor(data, requires_grad=True))


def test_batch_norm_eval_mode():
    layer = nn.BatchNorm2d(3)
    layer(rand(4, 3, 2, 2))  # fill the running statistics
    check_layer(layer, rand(4, 3, 2, 2, seed=2), train=False)


def test_dropout_layer_in_eval_is_identity():
    layer = nn.Dropout(0.5).eval()
    x = rand(3, 4)
    assert layer(x) is x
    check_layer(layer, x, train=False)


def test_embedding_layer():
    ids = np.array([[0, 1, 1], [5, 0, 2]])
    layer = nn.Embedding(6, 3)
    gradcheck(lambda w: layer(ids), [layer.weight])
    # with padding_idx the padding row is frozen by design (its true derivative is ignored)
    padded = nn.Embedding(6, 3, padding_idx=0)
    assert np.all(padded.weight.data[0] == 0)
    padded(ids).sum().backward()
    assert np.all(padded.weight.grad[0] == 0)
    np.testing.assert_allclose(padded.weight.grad[1], [2, 2, 2])


@pytest.mark.parametrize("encoder", ["conv", "attention"])
def test_char_encoders(encoder):
    ids = np.array([[1, 4, 2, 0], [3, 3, 1, 2]])
    if encoder == "conv":
        layer = nn.CharConvEncoder(5, 4, embedding_dim=3, channels=(4,), out_features=5,
                                   padding_idx=None)
    else:
        layer = nn.SelfAttentionEncoder(5, 4, dim=4, out_features=5, padding_idx=None)
    gradcheck(lambda *params: layer(ids), list(layer.parameters()), max_elements=60,
              directions=4)
