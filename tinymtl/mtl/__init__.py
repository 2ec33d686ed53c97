"""Multi-task learning: a shared backbone with one head per task, the schedules that decide
which tasks each training step sees, and the methods — each a ``Plugin`` (``mtl.plugin``) —
that weigh the task losses, combine their gradients, or keep a sequence from forgetting."""

from tinymtl.mtl.continual import (EWC, SI, ContinualMethod, Finetune, LwF, Offline, OnlineEWC,
                                   Replay)
from tinymtl.mtl.model import MultiTaskModel, build_model
from tinymtl.mtl.plugin import Batch, Plugin, register
from tinymtl.mtl.sampling import TaskSampler
from tinymtl.mtl.schedules import Phase, Schedule, make_schedule
from tinymtl.mtl.surgery import MGDA, MGDAUB, PCGrad, CAGrad, GradientSurgery, Sum
from tinymtl.mtl.weighting import DWA, RLW, Equal, GradNorm, LossWeighting, Static, Uncertainty

__all__ = ["MultiTaskModel", "build_model", "Schedule", "Phase", "make_schedule", "TaskSampler",
           "Plugin", "Batch", "register",
           "LossWeighting", "Static", "Equal", "Uncertainty", "GradNorm", "DWA", "RLW",
           "GradientSurgery", "Sum", "PCGrad", "CAGrad", "MGDA", "MGDAUB",
           "ContinualMethod", "Finetune", "Offline", "EWC", "OnlineEWC", "SI", "Replay", "LwF"]
