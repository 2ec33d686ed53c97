"""Stochastic gradient descent with momentum and Nesterov momentum (PyTorch's formulas)."""

from tinymtl.autograd import no_grad
from tinymtl.optim.optimizer import Optimizer


class SGD(Optimizer):
    """g <- g + wd·p                              (L2 weight decay)
    b <- g (first step),  else b <- μ b + (1 - dampening) g
    g <- g + μ b (Nesterov)  or  g <- b
    p <- p - lr · g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid SGD hyper-parameters lr={lr} momentum={momentum} "
                             f"weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    state_keys = ("momentum_buffer",)

    @property
    def state_arrays(self):  # the momentum buffer, when there is momentum
        return int(any(group["momentum"] for group in self.param_groups))

    @no_grad()
    def step(self):
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd:
                    g = g + wd * p.data
                if momentum:
                    state = self.state.setdefault(id(p), {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.copy()
                    else:
                        buf = state["momentum_buffer"]
                        buf *= momentum
                        buf += (1 - group["dampening"]) * g
                    buf = state["momentum_buffer"]
                    g = g + momentum * buf if group["nesterov"] else buf
                p.data -= lr * g
