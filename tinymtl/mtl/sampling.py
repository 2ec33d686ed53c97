"""Task sampling: which task an alternating step trains.

With tasks i = 1..T holding n_i training examples:

    round_robin    the k-th step of a phase trains tasks[k mod T]       (deterministic; default)
    uniform        p_i = 1 / T
    proportional   p_i = n_i / Σ_j n_j
    temperature    p_i = n_i^(1/τ) / Σ_j n_j^(1/τ)       (τ = 1: proportional; τ → ∞: uniform)

Random methods draw from their own seeded generator, saved in checkpoints, so a resumed run
draws the same tasks. (Mixed batches always hold every task of their phase, in equal shares.)
"""

import numpy as np

from tinymtl.backend.random import Generator

METHODS = ("round_robin", "uniform", "proportional", "temperature")


class TaskSampler:
    def __init__(self, method, sizes, temperature=1.0, seed=0):
        if method not in METHODS:
            raise ValueError(f"unknown task sampling {method!r}; expected one of "
                             f"{', '.join(METHODS)}")
        if temperature <= 0:
            raise ValueError(f"sampling temperature must be > 0, got {temperature}")
        self.method, self.sizes, self.temperature = method, dict(sizes), temperature
        self.generator = Generator(seed)

    def probabilities(self, tasks):
        """p_i over ``tasks`` (None for round-robin, which does not draw)."""
        if self.method == "round_robin":
            return None
        if self.method == "uniform":
            weights = np.ones(len(tasks))
        else:
            sizes = np.array([self.sizes[t] for t in tasks], dtype=np.float64)
            power = 1.0 if self.method == "proportional" else 1.0 / self.temperature
            weights = sizes ** power
        return weights / weights.sum()

    def choose(self, tasks, step_in_phase):
        """The task the ``step_in_phase``-th step of a phase over ``tasks`` trains."""
        if self.method == "round_robin":
            return tasks[step_in_phase % len(tasks)]
        return tasks[int(self.generator.choice(len(tasks), p=self.probabilities(tasks)))]

    def state_dict(self):
        return self.generator.state_dict()

    def load_state_dict(self, state):
        self.generator.load_state_dict(state)
