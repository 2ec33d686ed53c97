"""Which task(s) each training step trains on.

Every schedule is a list of phases; a phase trains some tasks for some steps, either
``alternating`` (one task per step, in turn), ``mixed`` (every step's batch holds examples of
all the phase's tasks, each routed to its own head) or ``joint`` (tasks that label the same
inputs: every example of the batch goes through every head, L = Σ_t w_t L_t):

    alternating   [all tasks, alternating, S steps]                        (the default)
    mixed         [all tasks, mixed, S steps]
    joint         [all tasks, joint, S steps]
    sequential    [task 1 alone, S/T steps], [task 2 alone, S/T steps], ...  (forgetting test)
    curriculum    the phases the config lists, e.g. A alone, then B alone, then both mixed

``phase_at(step)`` is a pure function of the step number, so resuming needs nothing but the
step; within an alternating phase, ``mtl.sampling.TaskSampler`` picks the task.
"""

import dataclasses

MODES = ("alternating", "mixed", "joint")
SCHEDULES = ("alternating", "mixed", "joint", "sequential", "curriculum")


@dataclasses.dataclass(frozen=True)
class Phase:
    tasks: tuple
    mode: str
    steps: int


class Schedule:
    def __init__(self, phases):
        self.phases = list(phases)
        self.total_steps = sum(p.steps for p in self.phases)

    def phase_at(self, step):
        """(phase index, the phase, how many steps of it came before ``step``)."""
        start = 0
        for index, phase in enumerate(self.phases):
            if step < start + phase.steps:
                return index, phase, step - start
            start += phase.steps
        raise IndexError(f"step {step} is past the schedule's {self.total_steps} steps")


def make_schedule(name, tasks, steps, phases=None):
    tasks = tuple(tasks)
    if name in MODES:
        return Schedule([Phase(tasks, name, steps)])
    if name == "sequential":
        share, extra = divmod(steps, len(tasks))
        return Schedule([Phase((task,), "alternating", share + (k < extra))
                         for k, task in enumerate(tasks)])
    if name == "curriculum":
        return Schedule([Phase(tuple(p["tasks"]), p["mode"], p["steps"]) for p in phases])
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
