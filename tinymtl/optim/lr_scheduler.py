"""Learning-rate schedules (PyTorch's names). Each is a closed-form function of the step count
t, so its whole state is t: ``state_dict() == {"last_epoch": t}`` and resuming is exact.

    StepLR             lr = lr0 · γ^floor(t / step_size)
    CosineAnnealingLR  lr = η_min + (lr0 - η_min) (1 + cos(π t / T_max)) / 2
    LinearLR           lr = lr0 · (s + (e - s) · min(t, T) / T)     (warm-up: s small, e = 1)
    LambdaLR           lr = lr0 · f(t)
    SequentialLR       the i-th schedule from milestone i on, counting t from that milestone
"""

import math


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def factor(self, t, base_lr):
        """The learning rate at step ``t`` for a group whose initial rate is ``base_lr``."""
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.factor(self.last_epoch, base)

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"]) - 1
        self.step()


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, t, base_lr):
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """η_t = η_min + (η_0 − η_min)(1 + cos(π t / T_max)) / 2: down to η_min at T_max and, as in
    PyTorch, on along the cosine (back up) after it (the trainer's schedules end at T_max)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def factor(self, t, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearLR(LRScheduler):
    def __init__(self, optimizer, start_factor=1 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def factor(self, t, base_lr):
        progress = min(t, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class LambdaLR(LRScheduler):
    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def factor(self, t, base_lr):
        return base_lr * self.lr_lambda(t)


class SequentialLR(LRScheduler):
    """E.g. warm-up then cosine: ``SequentialLR(opt, [LinearLR(...), CosineAnnealingLR(...)],
    milestones=[warmup_steps])``."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("SequentialLR needs one milestone fewer than schedulers")
        self.schedulers, self.milestones = list(schedulers), list(milestones)
        super().__init__(optimizer, last_epoch)

    def factor(self, t, base_lr):
        start, chosen = 0, self.schedulers[0]
        for milestone, scheduler in zip(self.milestones, self.schedulers[1:]):
            if t >= milestone:
                start, chosen = milestone, scheduler
        return chosen.factor(t - start, base_lr)
