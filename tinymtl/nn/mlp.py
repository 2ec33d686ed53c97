"""A multilayer perceptron encoder: Flatten → [Linear → ReLU] per hidden width.

``MLPEncoder(784, (400, 400))`` is the network of the split-MNIST benchmarks (Hsu et al. 2018):
a 28x28 image is flattened to 784 values and passed through two fully connected ReLU layers.
"""

from tinymtl.nn.activation import ReLU
from tinymtl.nn.containers import Sequential
from tinymtl.nn.linear import Flatten, Linear
from tinymtl.nn.module import Module


class MLPEncoder(Module):
    def __init__(self, in_features, hidden=(400, 400), generator=None):
        super().__init__()
        layers, width = [Flatten()], in_features
        for size in hidden:
            layers += [Linear(width, size, generator=generator), ReLU()]
            width = size
        self.layers = Sequential(*layers)
        self.out_features = width
        self.out_shape = (width,)

    def forward(self, x):
        return self.layers(x)
