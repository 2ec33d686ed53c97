"""Training: the trainer, metrics, checkpoints (HDF5), run directories, reports and plots."""

from tinymtl.train.config import ConfigError
from tinymtl.train.checkpoint import CheckpointError

__all__ = ["ConfigError", "CheckpointError"]
