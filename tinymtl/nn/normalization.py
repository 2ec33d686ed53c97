"""Normalisation layers: LayerNorm (per example) and BatchNorm (per channel, over the batch)."""

from tinymtl.autograd.ops.nn_ops import batch_norm, layer_norm
from tinymtl.backend import array_module, get_default_dtype
from tinymtl.nn import init
from tinymtl.nn.linear import _empty
from tinymtl.nn.module import Module, Parameter


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(normalized_shape), eps
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = Parameter(init.empty(*self.normalized_shape, fill=1.0))
            self.bias = Parameter(_empty(*self.normalized_shape))

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class _BatchNorm(Module):
    expected_ndim = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(init.empty(num_features, fill=1.0)) if affine else None
        self.bias = Parameter(_empty(num_features)) if affine else None
        self.track_running_stats = track_running_stats
        if track_running_stats:
            xp = array_module()
            self.register_buffer("running_mean", xp.zeros(num_features, get_default_dtype()))
            self.register_buffer("running_var", xp.ones(num_features, get_default_dtype()))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def forward(self, x):
        if x.ndim not in self.expected_ndim:
            raise ValueError(f"{type(self).__name__} expects input with "
                             f"{' or '.join(map(str, self.expected_ndim))} dimensions, got {x.shape}")
        use_batch_stats = self.training or not self.track_running_stats
        return batch_norm(x, self.running_mean,
                          self.running_var, self.weight, self.bias, use_batch_stats,
                          self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs."""

    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, one mean/variance per channel."""

    expected_ndim = (4,)
