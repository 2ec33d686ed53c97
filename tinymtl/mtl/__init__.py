"""Multi-task learning: a shared backbone with one head per task, and the schedules that decide
which tasks each training step sees."""

from tinymtl.mtl.model import MultiTaskModel, build_model
from tinymtl.mtl.sampling import TaskSampler
from tinymtl.mtl.schedules import Phase, Schedule, make_schedule

__all__ = ["MultiTaskModel", "build_model", "Schedule", "Phase", "make_schedule", "TaskSampler"]
