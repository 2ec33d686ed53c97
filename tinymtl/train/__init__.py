"""Training: the Trainer and its plugin protocol, metrics, HDF5 checkpoints and config checks."""

from tinymtl.mtl.plugin import Plugin, register
from tinymtl.train.checkpoint import CheckpointError
from tinymtl.train.config import ConfigError
from tinymtl.train.trainer import Trainer

__all__ = ["Trainer", "Plugin", "register", "ConfigError", "CheckpointError"]
