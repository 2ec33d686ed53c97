"""An image encoder: blocks of Conv2d → ReLU → MaxPool2d, then Flatten → Linear → ReLU.

``ConvEncoder(1, (28, 28), channels=(32, 64))`` is the classic MNIST CNN's feature extractor:
28x28 -conv3-> 26x26 -pool-> 13x13 -conv3-> 11x11 -pool-> 5x5, so 64·5·5 = 1600 features go
into the Linear layer.

With ``out_features=None`` the encoder stops at the last conv's ReLU, unpooled, and returns
that feature map: ``ConvEncoder(1, (32, 32), (32, 64, 128), padding=1, out_features=None)`` is
Conv(32)-Pool-Conv(64)-Pool-Conv(128), giving (N, 128, 8, 8) for heads that read positions.
``out_shape`` is one example's output shape either way.

Each block's ReLU and pooling run as one op, ``F.relu_max_pool2d``, which also adds the conv's
bias (the conv itself then runs without it): the same numbers as the layers one by one, with
a fraction of their memory traffic (``docs/benchmarks.md``). The layers stay what they are, so
the module's parameters and ``state_dict`` are a plain Conv2d-ReLU-MaxPool2d stack's.
"""

from tinymtl.autograd.ops.conv import conv2d, conv_output_size
from tinymtl.autograd.ops.pooling import relu_max_pool2d
from tinymtl.nn.activation import ReLU
from tinymtl.nn.containers import Sequential
from tinymtl.nn.conv import Conv2d
from tinymtl.nn.dropout import Dropout
from tinymtl.nn.linear import Flatten, Linear
from tinymtl.nn.module import Module
from tinymtl.nn.normalization import BatchNorm2d
from tinymtl.nn.pooling import MaxPool2d


class ConvEncoder(Module):
    def __init__(self, in_channels, image_size, channels=(32, 64), kernel_size=3, padding=0,
                 out_features=128, dropout=0.0, batch_norm=False, generator=None):
        super().__init__()
        layers, width, size = [], in_channels, tuple(image_size)
        for k, out_channels in enumerate(channels):
            layers.append(Conv2d(width, out_channels, kernel_size, padding=padding,
                                 generator=generator))
            if batch_norm:
                layers.append(BatchNorm2d(out_channels))
            layers.append(ReLU())
            size = conv_output_size(size, (kernel_size,) * 2, (1, 1), (padding,) * 2, (1, 1))
            if out_features is not None or k < len(channels) - 1:
                layers.append(MaxPool2d(2))
                size = tuple(s // 2 for s in size)
            if min(size) < 1:
                raise ValueError(f"image size {tuple(image_size)} is too small for "
                                 f"{len(channels)} conv+pool blocks")
            width = out_channels
        self.out_features = out_features
        if out_features is None:
            self.layers = Sequential(*layers)
            self.out_shape = (width,) + size
            return
        layers.append(Flatten())
        if dropout:
            layers.append(Dropout(dropout, generator))
        layers += [Linear(width * size[0] * size[1], out_features, generator=generator), ReLU()]
        self.layers = Sequential(*layers)
        self.out_shape = (out_features,)

    def forward(self, images):
        x, layers, k = images, list(self.layers), 0
        while k < len(layers):
            layer = layers[k]
            if isinstance(layer, Conv2d) and _relu_then_pool(layers, k + 1):
                x = conv2d(x, layer.weight, None, layer.stride, layer.padding, layer.dilation,
                           layer.groups)
                x, k = relu_max_pool2d(x, layers[k + 2].kernel_size, layer.bias), k + 3
            elif _relu_then_pool(layers, k):  # after a BatchNorm2d: no bias to add
                x, k = relu_max_pool2d(x, layers[k + 1].kernel_size), k + 2
            else:
                x, k = layer(x), k + 1
        return x


def _relu_then_pool(layers, k):
    """Are layers[k], layers[k + 1] a ReLU and a max pooling whose windows tile the image?"""
    if k + 1 >= len(layers) or not isinstance(layers[k], ReLU):
        return False
    pool = layers[k + 1]
    return (isinstance(pool, MaxPool2d) and pool.stride in (None, pool.kernel_size)
            and pool.padding == 0 and pool.dilation == 1)
