"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019).

Per parameter, with t the step count and g the gradient:
    m <- β1 m + (1 - β1) g           v <- β2 v + (1 - β2) g²
    p <- p - lr/(1 - β1^t) · m / (sqrt(v)/sqrt(1 - β2^t) + ε)
Adam's weight decay is L2 (added to g); AdamW's is decoupled (p <- p - lr·wd·p first).
The whole update is one fused kernel pass (``backend.kernels.adam_update``).
"""

from tinymtl.autograd import no_grad
from tinymtl.backend.kernels import kernels_for
from tinymtl.optim.optimizer import Optimizer


class Adam(Optimizer):
    decoupled_weight_decay = False
    state_arrays = 2  # exp_avg and exp_avg_sq
    state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid {type(self).__name__} hyper-parameters lr={lr} "
                             f"betas={betas} eps={eps} weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    @no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(id(p))
                if state is None:
                    xp = p.xp
                    state = self.state[id(p)] = {
                        "step": 0, "exp_avg": xp.zeros_like(p.data),
                        "exp_avg_sq": xp.zeros_like(p.data)}
                state["step"] += 1
                t = state["step"]
                kernels_for(p.data).adam_update(
                    p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1,
                    beta2, group["eps"], 1 - beta1 ** t, 1 - beta2 ** t, group["weight_decay"],
                    self.decoupled_weight_decay)


class AdamW(Adam):
    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
