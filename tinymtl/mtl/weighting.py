"""Loss weighting: how the task losses of one step become the one loss that is backpropagated.

Every method gives weights w_t and the step's loss is L = Σ_t w_t · L_t (+ a regulariser for
``uncertainty``), over the tasks the step trains:

static        w_t = the task's ``loss_weight`` (default 1): L = Σ_t w_t L_t  (the default)
equal         w_t = 1 / T: L = Σ_t L_t / T
uncertainty   Kendall, Gal & Cipolla (2018). A learned s_t = log σ_t² per task:
                  classification  e^(−s) · L + s / 2        (optimum s* = log 2L)
                  regression      ½ · e^(−s) · L + s / 2    (optimum s* = log L)
              s is trained with the network (no weight decay); the reported weight is the
              factor in front of L (e^(−s), or ½ e^(−s)).
gradnorm      Chen et al. (2018). Learned w_t, updated so that the gradient norms
              G_t = ‖∇_W (w_t L_t)‖₂ on W, the last shared layer, track the tasks' training rates:
                  L̃_t = L_t / L_t(0),   r_t = L̃_t / mean_j L̃_j
                  L_grad = Σ_t | G_t − sg(mean_j G_j · r_t^α) |        (sg: a constant)
              w is moved by ∇_w L_grad only (the network by Σ w_t L_t) — w is a parameter of
              the network's optimizer, as in the paper — then renormalised to Σ_t w_t = T.
              Since G_t = w_t ‖∇_W L_t‖, ∂L_grad/∂w_t = sign(G_t − target_t) · ‖∇_W L_t‖
              exactly. It needs every task in every step (joint or mixed batches).
rlw           Random loss weighting, Lin et al. (2022). Every step draws fresh weights:
                  λ̃ ~ N(0, I_T),   w = softmax(λ̃)
              (Σ_t w_t = 1, like ``equal``'s 1/T on average); the paper finds this random
              baseline as good as most learned weightings. It needs every task in every step.
dwa           Dynamic weight average, Liu, Johns & Davison (2019). Over windows of K steps:
                  r_t = L̄_t(k − 1) / L̄_t(k − 2),   w_t = T · exp(r_t / τ) / Σ_j exp(r_j / τ)
              where L̄_t(k) is task t's mean loss in window k; w = 1 for the first two windows.
              A task whose loss falls slowly gets more weight.

Each method is a ``Plugin`` (``mtl.plugin``): ``loss_terms`` turns the task losses into the
weighted terms, and a config names it ``training.weighting: gradnorm`` or
``training.weighting: {method: gradnorm, alpha: 1.5}`` (``training.gradnorm_alpha`` still
works). Each method's state (s, w, initial losses, window averages) is in its ``state_dict()`` and
saved in checkpoints (learned s and w also with their optimizer moments), so a resumed run
continues exactly.
"""

import math

import numpy as np

from tinymtl import nn
from tinymtl.autograd import grad
from tinymtl.autograd.ops.elementwise import exp
from tinymtl.backend import array_module, to_device, to_numpy
from tinymtl.backend.random import Generator
from tinymtl.mtl.plugin import Plugin, register
from tinymtl.options import Float, Int


class LossWeighting(Plugin):
    """Base: fixed weights w_t (1 unless given). Subclasses change ``weights`` as training
    goes. ``bind(tasks, kinds)`` sets the tasks up (the trainer does it in ``setup``)."""

    kind = "weighting"

    def __init__(self, **options):
        super().__init__(**options)
        self.tasks, self.kinds, self.w = [], {}, {}

    def setup(self, trainer):
        self.bind(sorted(trainer.tasks), {t: d.kind for t, d in trainer.tasks.items()})

    def bind(self, tasks, kinds=None):
        """Weigh the losses of ``tasks`` (``kinds``: {task: classification | regression})."""
        self.tasks, self.kinds = list(tasks), dict(kinds or {})
        self.w = {t: self.initial_weight(t) for t in self.tasks}
        return self

    def initial_weight(self, task):
        return 1.0

    def weights(self):
        """Each task's current weight (what multiplies its loss), for logs."""
        return dict(self.w)

    def terms(self, losses, model=None):
        """{task: its weighted loss term} from {task: loss Tensor} (means over examples)."""
        return {task: loss * self.w[task] for task, loss in losses.items()}

    def combine(self, losses, model=None):
        """The step's loss: the sum of the terms."""
        return sum(self.terms(losses, model).values())

    def loss_terms(self, trainer, terms, batch):
        return self.terms(terms, trainer.model)

    def on_train_log(self, trainer, row):
        weights = self.weights()
        for task, entry in row["tasks"].items():
            entry["weight"] = weights[task]

    def state_dict(self):
        return {"w": self.w}

    def load_state_dict(self, state):
        self.w = {t: float(v) for t, v in state["w"].items()}


@register
class Static(LossWeighting):
    """w_t = the task's ``loss_weight`` (1 unless set): L = Σ_t w_t L_t."""

    name = "static"

    def __init__(self, weights=None):
        super().__init__()
        self.static_weights = dict(weights or {})

    def initial_weight(self, task):
        return float(self.static_weights.get(task, 1.0))


@register
class Equal(LossWeighting):
    """w_t = 1 / T: the mean of the task losses."""

    name = "equal"

    def initial_weight(self, task):
        return 1.0 / len(self.tasks)


@register
class Uncertainty(LossWeighting):
    """Kendall et al. (2018): learned log-variances s_t weigh each task's loss."""

    name = "uncertainty"

    def bind(self, tasks, kinds=None):
        super().bind(tasks, kinds)
        xp = array_module()  # (the current device: where the model and its losses are)
        self.log_vars = {t: nn.Parameter(xp.zeros(1, dtype=np.float32)) for t in self.tasks}
        return self

    def _factor(self, task):
        return 0.5 if self.kinds[task] == "regression" else 1.0

    def weights(self):
        return {t: self._factor(t) * math.exp(-float(s.data[0])) for t, s in self.log_vars.items()}

    def parameters(self):
        return [self.log_vars[t] for t in self.tasks]

    def task_parameters(self, task):
        return [self.log_vars[task]]

    def terms(self, losses, model=None):
        return {task: (exp(-self.log_vars[task]) * loss * self._factor(task)
                       + self.log_vars[task] * 0.5).sum() for task, loss in losses.items()}

    def state_dict(self):
        return {"log_vars": {t: float(s.data[0]) for t, s in self.log_vars.items()}}

    def load_state_dict(self, state):
        for task, value in state["log_vars"].items():
            self.log_vars[task].data[...] = value


@register
class GradNorm(LossWeighting):
    """Chen et al. (2018): learned w_t that balance the tasks' gradient norms."""

    name = "gradnorm"
    OPTIONS = {"alpha": Float(default=1.5, low=0.0,
                              help="α: how strongly slow tasks are pushed (0: equal norms)")}
    ALIASES = {"gradnorm_alpha": "alpha"}
    needs_all_tasks = True
    accumulates = False  # its weight gradient is one step's: no micro-batches

    def bind(self, tasks, kinds=None):
        super().bind(tasks, kinds)
        self.w_param = nn.Parameter(array_module().ones(len(self.tasks), dtype=np.float32))
        self.initial_losses = None
        self.last = {}
        return self

    def weights(self):
        return {t: float(v) for t, v in zip(self.tasks, self.w_param.data)}

    def parameters(self):
        return [self.w_param]

    def terms(self, losses, model=None):
        """w_t L_t for the network; also computes ∇_w L_grad for the optimizer step."""
        if set(losses) != set(self.tasks):
            raise ValueError("gradnorm needs every task's loss in every step; use a joint or "
                             "mixed schedule")
        shared = model.last_shared_layer()
        w = to_numpy(self.w_param.data)
        norms = np.array([_norm(grad(losses[t], shared, retain_graph=True, allow_unused=True))
                          for t in self.tasks])
        current = np.array([losses[t].item() for t in self.tasks])
        if self.initial_losses is None:
            self.initial_losses = current.copy()
        self.last = gradnorm_grad(w, norms, current / self.initial_losses, self.alpha)
        return {task: losses[task] * float(w[k]) for k, task in enumerate(self.tasks)}

    def on_before_optimizer_step(self, trainer):
        if self.last:
            self.w_param.grad = to_device(self.last["grad_w"].astype(self.w_param.data.dtype),
                                          self.w_param.device)

    def on_after_optimizer_step(self, trainer, losses):
        w = np.maximum(self.w_param.data, 1e-6)  # keep weights positive, then Σ w = T
        self.w_param.data[...] = w * (len(self.tasks) / w.sum())

    def state_dict(self):  # w itself is a parameter: the optimizer's checkpoint holds it
        return {"w": self.w_param.data.tolist(), "initial_losses": None
                if self.initial_losses is None else self.initial_losses.tolist()}

    def load_state_dict(self, state):
        self.w_param.data[...] = to_device(np.array(state["w"], dtype=self.w_param.data.dtype),
                                           self.w_param.device)
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else np.array(initial)


def _norm(gradients):
    """‖(g_1, …, g_k)‖₂ over a list of gradients (None: unused, zero)."""
    return float(np.sqrt(sum(float((to_numpy(g).astype(np.float64) ** 2).sum())
                             for g in gradients if g is not None)))


def gradnorm_grad(w, grad_norms, loss_ratios, alpha):
    """GradNorm's ∇_w L_grad from w, ‖∇_W L_t‖ and L_t / L_t(0) (see the module docstring)."""
    G = w * grad_norms
    r = loss_ratios / loss_ratios.mean()
    target = G.mean() * r ** alpha
    return {"G": G, "target": target, "grad_w": np.sign(G - target) * grad_norms,
            "L_grad": float(np.abs(G - target).sum())}


@register
class DWA(LossWeighting):
    """Liu, Johns & Davison (2019): weights from the ratios of recent mean losses."""

    name = "dwa"
    OPTIONS = {"temperature": Float(default=2.0, positive=True,
                                    help="τ: higher spreads the weights less"),
               "window": Int(default=100, low=1, help="steps per averaging window")}
    ALIASES = {"dwa_temperature": "temperature", "dwa_window": "window"}

    def bind(self, tasks, kinds=None):
        super().bind(tasks, kinds)
        self.sums = {t: 0.0 for t in self.tasks}
        self.counts = {t: 0 for t in self.tasks}
        self.steps = 0
        self.history = []  # mean loss per task of each finished window
        return self

    def on_after_optimizer_step(self, trainer, losses):
        for task, value in losses.items():
            self.sums[task] += value
            self.counts[task] += 1
        self.steps += 1
        if self.steps % self.window:
            return
        self.history.append({t: self.sums[t] / max(self.counts[t], 1) for t in self.tasks})
        self.history = self.history[-2:]
        self.sums = {t: 0.0 for t in self.tasks}
        self.counts = {t: 0 for t in self.tasks}
        if len(self.history) == 2:
            self.w = dwa_weights(self.history[0], self.history[1], self.temperature)

    def state_dict(self):
        return {"w": self.w, "sums": self.sums, "counts": self.counts, "steps": self.steps,
                "history": self.history}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])
        self.steps, self.history = state["steps"], list(state["history"])


def dwa_weights(before_last, last, temperature):
    """w_t = T · softmax_t(r_t / τ) with r_t = L̄_t(k−1) / L̄_t(k−2)."""
    tasks = list(last)
    r = np.array([last[t] / before_last[t] if before_last[t] > 0 else 1.0 for t in tasks])
    e = np.exp(r / temperature - (r / temperature).max())
    return {t: float(len(tasks) * v) for t, v in zip(tasks, e / e.sum())}


@register
class RLW(LossWeighting):
    """Lin et al. (2022): w = softmax(λ̃), λ̃ ~ N(0, I), drawn afresh every step."""

    name = "rlw"
    needs_all_tasks = True

    def setup(self, trainer):
        super().setup(trainer)
        self.generator = trainer.generator("rlw")

    def bind(self, tasks, kinds=None):
        super().bind(tasks, kinds)
        self.generator = Generator(0)  # standalone; a trainer gives its own stream (setup)
        return self

    def on_step_start(self, trainer, tasks):
        self.w = rlw_weights(self.tasks, self.generator)

    def state_dict(self):
        return {"w": self.w, "generator": self.generator.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.generator.load_state_dict(state["generator"])


def rlw_weights(tasks, generator):
    """{task: w_t}, w = softmax(λ̃) for one draw λ̃ ~ N(0, I_T) from ``generator``."""
    draw = generator.numpy.standard_normal(len(tasks))
    e = np.exp(draw - draw.max())
    return {t: float(v) for t, v in zip(tasks, e / e.sum())}


__all__ = ["LossWeighting", "Static", "Equal", "Uncertainty", "GradNorm", "DWA", "RLW",
           "gradnorm_grad", "dwa_weights", "rlw_weights"]
