"""Neural-network building blocks on top of autograd, with PyTorch's names."""

from tinymtl.nn import functional, init, utils  # noqa: F401
from tinymtl.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from tinymtl.nn.containers import ModuleDict, ModuleList, Sequential
from tinymtl.nn.conv import Conv1d, Conv2d
from tinymtl.nn.dropout import Dropout
from tinymtl.nn.embedding import Embedding
from tinymtl.nn.linear import Flatten, Identity, Linear
from tinymtl.nn.loss import (
    BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss,
    TripletMarginLoss,
)
from tinymtl.nn.mlp import MLPEncoder
from tinymtl.nn.module import Module, Parameter
from tinymtl.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from tinymtl.nn.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from tinymtl.nn.sequence import CharConvEncoder, SelfAttention, SelfAttentionEncoder
from tinymtl.nn.vision import ConvEncoder

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear", "Identity",
    "Flatten", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Embedding",
    "LayerNorm", "BatchNorm1d", "BatchNorm2d", "Dropout", "ReLU", "LeakyReLU", "GELU", "Tanh",
    "Sigmoid", "Softmax", "LogSoftmax", "CharConvEncoder", "SelfAttention",
    "SelfAttentionEncoder", "ConvEncoder", "MLPEncoder", "CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss",
    "HuberLoss", "TripletMarginLoss", "CosineEmbeddingLoss", "functional", "init", "utils",
]
