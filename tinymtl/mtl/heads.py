"""Task heads: how each task reads the shared features.

On a feature **vector** (N, F) the head is ``linear`` (a Linear layer, or an MLP with
``head_hidden``). On a feature **map** (N, C, H, W) the head chooses what to keep:

    gap       mean over H, W, then Linear          keeps *what*, discards *where*
    flatten   all C·H·W values, then Linear         keeps where, with one weight per position
    spatial   CoordConv: append x and y coordinate channels, a 3x3 conv, ReLU, flatten, Linear

Orientation is a spatial property (which way the shape points), so ``gap`` is a poor head for
it: averaging over positions keeps only what orientation leaves in the channel statistics. The
``spatial`` head's coordinate channels (Liu et al. 2018, "CoordConv") let a translation-
equivariant conv tell positions apart before the features are flattened.
"""

import numpy as np

from tinymtl import nn
from tinymtl.autograd import Tensor
from tinymtl.autograd.ops.shape import broadcast_to, cat
from tinymtl.backend import get_array_module

HEADS = ("linear", "gap", "flatten", "spatial")


class AddCoords(nn.Module):
    """(N, C, H, W) -> (N, C + 2, H, W): channels holding each pixel's x and y in [-1, 1]."""

    def __init__(self, height, width):
        super().__init__()
        ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width),
                             indexing="ij")
        self.coords = np.stack([xs, ys])[None]  # a constant: not a parameter, not saved

    def forward(self, x):
        coords = Tensor(get_array_module(x.data).asarray(self.coords, dtype=x.data.dtype))
        return cat([x, broadcast_to(coords, (x.shape[0],) + self.coords.shape[1:])], dim=1)


def _classifier(in_features, hidden, out_features, dropout):
    if not hidden:
        return [nn.Linear(in_features, out_features)]
    layers = [nn.Linear(in_features, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers + [nn.Linear(hidden, out_features)]


def make_head(kind, feature_shape, out_features, hidden=0, dropout=0.0, spatial_channels=32):
    """A head of ``kind`` for features of ``feature_shape`` ((F,) or (C, H, W))."""
    if kind == "linear":
        (features,) = feature_shape
        layers = _classifier(features, hidden, out_features, dropout)
        return layers[0] if len(layers) == 1 else nn.Sequential(*layers)
    channels, height, width = feature_shape
    if kind == "gap":
        return nn.Sequential(nn.GlobalAvgPool2d(),
                             *_classifier(channels, hidden, out_features, dropout))
    if kind == "flatten":
        return nn.Sequential(nn.Flatten(),
                             *_classifier(channels * height * width, hidden, out_features,
                                          dropout))
    if kind == "spatial":
        return nn.Sequential(AddCoords(height, width),
                             nn.Conv2d(channels + 2, spatial_channels, 3, padding=1), nn.ReLU(),
                             nn.Flatten(),
                             *_classifier(spatial_channels * height * width, hidden,
                                          out_features, dropout))
    raise ValueError(f"unknown head {kind!r}; expected one of {', '.join(HEADS)}")
