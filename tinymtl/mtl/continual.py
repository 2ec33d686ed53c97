"""Continual learning: what keeps a model from forgetting earlier tasks as it learns new ones.

Tasks arrive in stages; after stage s the model has seen tasks 1..s and only task s's data is
at hand. Each method adds something to the loss of the current stage (or to its batches):

    ewc         (Kirkpatrick et al. 2017)  one anchor per past task t:
                    penalty = (λ/2) Σ_t Σ_k F_t,k (θ_k − θ*_t,k)²
                F_t: the diagonal Fisher information of task t at θ*_t, its weights at the end
                of its stage (``diagonal_fisher``).
    online_ewc  (Schwarz et al. 2018)  one running anchor: F ← γ F + F_new, θ* ← θ at the end
                of each stage; penalty = (λ/2) Σ_k F_k (θ_k − θ*_k)².
    si          (Zenke et al. 2017)  importance from the path the weights travelled:
                    per step      ω_k += −g_k Δθ_k        (g: the gradient the step used)
                    per stage     Ω_k += ω_k / ((θ_k(end) − θ_k(start))² + ξ),  ω ← 0
                    penalty = c Σ_k Ω_k (θ_k − θ*_k)²,   θ*: the weights at the last stage end.
    replay      a reservoir-sampled buffer of the examples seen so far (``ReservoirBuffer``);
                every batch mixes in stored examples of the *earlier* tasks (the current
                task's own slots are not replayed: that would only repeat a small sample of
                the data at hand, and overfit it).
    lwf         (Li & Hoiem 2016)  the previous stage's model, frozen, labels the new data for
                the old heads; the new model matches it: ``distillation_loss``.

All state (Fisher, anchors, importances, the buffer and its counter) is arrays plus a JSON
dict, so it lives in the checkpoint and a resumed sequence continues bitwise identically.
"""

import numpy as np

from tinymtl.autograd import Tensor, grad, no_grad
from tinymtl.nn import functional as F

METHODS = ("finetune", "ewc", "online_ewc", "si", "replay", "lwf")


# -- the diagonal Fisher information ---------------------------------------------------------------
def diagonal_fisher(model, task, x, y=None, parameters=None, generator=None):
    """F_k = (1/N) Σ_n (∂ log p(y_n | x_n; θ) / ∂θ_k)², one example at a time (the per-sample
    definition: squares of per-example gradients, not the square of the batch mean).

    ``y`` given: the **empirical** Fisher (labels from the data). ``y=None``: the **true**
    Fisher, each y_n drawn from the model's own p(· | x_n) with ``generator``.
    Returns {parameter name: array}, for ``parameters`` (default: every trainable one)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if parameters is not None:
        named = [(n, p) for n, p in named if n in parameters]
    fisher = {n: np.zeros(p.shape, dtype=np.float64) for n, p in named}
    for k in range(len(x)):
        logits = model(Tensor(x[k:k + 1]), task)
        if y is None:
            probabilities = np.exp(logits.log_softmax(dim=-1).numpy()[0].astype(np.float64))
            label = int(generator.choice(len(probabilities), p=probabilities / probabilities.sum()))
        else:
            label = int(y[k])
        negative_log_likelihood = F.cross_entropy(logits, np.array([label]))
        gradients = grad(negative_log_likelihood, [p for _, p in named], allow_unused=True)
        for (name, _), g in zip(named, gradients):
            if g is not None:
                fisher[name] += np.asarray(g, dtype=np.float64) ** 2
    return {n: (f / len(x)).astype(np.float32) for n, f in fisher.items()}


def quadratic_penalty(model, importance, anchor):
    """Σ_k importance_k (θ_k − anchor_k)² over the named parameters in ``importance``."""
    parameters = dict(model.named_parameters())
    total = None
    for name, weight in importance.items():
        p = parameters[name]
        term = (Tensor(weight) * (p - Tensor(anchor[name])) ** 2).sum()
        total = term if total is None else total + term
    return total


# -- EWC and online EWC ----------------------------------------------------------------------------
class EWC:
    """``penalty(model)`` = (λ/2) Σ_anchors Σ_k F_k (θ_k − θ*_k)²; ``online`` keeps one anchor
    with F ← γ F + F_new (Schwarz et al. 2018).

    One (F_t, θ*_t) is kept per past task, but a sum of quadratics is one quadratic:

        Σ_t F_t (θ − θ*_t)² = A (θ − μ)² + Σ_t F_t (θ*_t − μ)²,
        A = Σ_t F_t,   μ = Σ_t F_t θ*_t / A   (the Fisher-weighted mean of the anchors),

    so the penalty is evaluated as that single term plus a constant, and a step costs the
    same after ten tasks as after one (the gradient, λ A (θ − μ) = λ Σ_t F_t (θ − θ*_t), is
    unchanged)."""

    def __init__(self, lam, online=False, gamma=1.0):
        self.lam, self.online, self.gamma = lam, online, gamma
        self.anchors = []  # [(fisher {name: array}, theta* {name: array})]
        self._merged = None

    def merged(self):
        """(A, μ, constant) of the docstring, from the anchors (float64 sums, cached)."""
        if self._merged is None:
            total, centre, constant = {}, {}, 0.0
            for name in self.anchors[0][0]:
                fishers = [f[name].astype(np.float64) for f, _ in self.anchors]
                thetas = [t[name].astype(np.float64) for _, t in self.anchors]
                a = sum(fishers)
                mu = np.divide(sum(f * t for f, t in zip(fishers, thetas)), a,
                               out=thetas[-1].copy(), where=a > 0)
                constant += sum(float((f * (t - mu) ** 2).sum())
                                for f, t in zip(fishers, thetas))
                total[name], centre[name] = a.astype(np.float32), mu.astype(np.float32)
            self._merged = total, centre, constant
        return self._merged

    def penalty(self, model):
        if not self.anchors:
            return None
        total, centre, constant = self.merged()
        return (quadratic_penalty(model, total, centre) + constant) * (self.lam / 2)

    def end_stage(self, model, fisher):
        """Anchor at the current weights with this stage's Fisher."""
        theta = {n: p.data.copy() for n, p in model.named_parameters() if n in fisher}
        if self.online and self.anchors:
            previous, _ = self.anchors[0]
            fisher = {n: self.gamma * previous[n] + f for n, f in fisher.items()}
            self.anchors = [(fisher, theta)]
        else:
            self.anchors.append((fisher, theta))
        self._merged = None

    def state(self):
        arrays = {}
        for k, (fisher, theta) in enumerate(self.anchors):
            arrays.update({f"fisher.{k}.{n}": v for n, v in fisher.items()})
            arrays.update({f"theta.{k}.{n}": v for n, v in theta.items()})
        return {"anchors": len(self.anchors)}, arrays

    def load_state(self, state, arrays):
        self.anchors = []
        for k in range(state["anchors"]):
            fisher = {key[len(f"fisher.{k}."):]: v for key, v in arrays.items()
                      if key.startswith(f"fisher.{k}.")}
            theta = {key[len(f"theta.{k}."):]: v for key, v in arrays.items()
                     if key.startswith(f"theta.{k}.")}
            self.anchors.append((fisher, theta))
        self._merged = None


# -- synaptic intelligence -------------------------------------------------------------------------
class SynapticIntelligence:
    """Path-integral importance (module docstring). ``before_step`` is called after backward
    and before the optimizer step (it reads g and θ), ``after_step`` after it (it reads Δθ)."""

    def __init__(self, c, xi, model):
        self.c, self.xi = c, xi
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.omega = {n: np.zeros(p.shape, np.float32) for n, p in named}        # ω, this stage
        self.importance = {n: np.zeros(p.shape, np.float32) for n, p in named}   # Ω
        self.anchor = {n: p.data.copy() for n, p in named}                       # θ*, θ(start)
        self._before = None

    def penalty(self, model):
        if not any(v.any() for v in self.importance.values()):
            return None
        return quadratic_penalty(model, self.importance, self.anchor) * self.c

    def before_step(self, model):
        self._before = {n: (p.data.copy(), None if p.grad is None else np.array(p.grad))
                        for n, p in model.named_parameters() if n in self.omega}

    def after_step(self, model):
        for name, p in model.named_parameters():
            if name in self.omega and self._before[name][1] is not None:
                old, g = self._before[name]
                self.omega[name] -= g * (p.data - old)  # ω += −g Δθ
        self._before = None

    def end_stage(self, model):
        for name, p in model.named_parameters():
            if name in self.omega:
                travelled = p.data - self.anchor[name]
                self.importance[name] += self.omega[name] / (travelled ** 2 + self.xi)
                self.omega[name][...] = 0.0
                self.anchor[name] = p.data.copy()

    def state(self):
        arrays = {f"omega.{n}": v for n, v in self.omega.items()}
        arrays.update({f"importance.{n}": v for n, v in self.importance.items()})
        arrays.update({f"anchor.{n}": v for n, v in self.anchor.items()})
        return {}, arrays

    def load_state(self, state, arrays):
        for prefix, target in (("omega.", self.omega), ("importance.", self.importance),
                               ("anchor.", self.anchor)):
            for name in target:
                target[name] = np.array(arrays[prefix + name])


# -- rehearsal -------------------------------------------------------------------------------------
class ReservoirBuffer:
    """A fixed-size sample of everything seen so far (Vitter's Algorithm R): the n-th item
    offered is kept if n ≤ k; otherwise it replaces slot j, j uniform in [0, n), when j < k.
    After n items every one of them is in the buffer with probability k / n."""

    def __init__(self, capacity, generator):
        self.capacity, self.generator = capacity, generator
        self.seen = 0
        self.x = self.y = self.task = None

    def __len__(self):
        return 0 if self.x is None else min(self.seen, self.capacity)

    def add(self, x, y, task):
        if self.x is None:
            self.x = np.zeros((self.capacity,) + x.shape[1:], dtype=x.dtype)
            self.y = np.zeros((self.capacity,) + y.shape[1:], dtype=y.dtype)
            self.task = np.zeros(self.capacity, dtype=np.int64)
        for k in range(len(x)):
            self.seen += 1
            if self.seen <= self.capacity:
                slot = self.seen - 1
            else:
                slot = int(self.generator.integers(0, self.seen))
                if slot >= self.capacity:
                    continue
            self.x[slot], self.y[slot], self.task[slot] = x[k], y[k], task

    def sample(self, count, exclude_task=None):
        """``count`` stored items, uniformly with replacement, among those not of task index
        ``exclude_task``: (x, y, task index), or None when no item qualifies."""
        if not len(self):  # nothing stored yet (the arrays are made on the first add)
            return None
        eligible = np.arange(len(self))
        if exclude_task is not None:
            eligible = eligible[self.task[:len(self)] != exclude_task]
        if not len(eligible):
            return None
        index = eligible[self.generator.integers(0, len(eligible), count)]
        return self.x[index], self.y[index], self.task[index]

    def state(self):
        arrays = {} if self.x is None else {"x": self.x, "y": self.y, "task": self.task}
        return {"seen": self.seen, "generator": self.generator.state_dict()}, arrays

    def load_state(self, state, arrays):
        self.seen = state["seen"]
        self.generator.load_state_dict(state["generator"])
        if arrays:
            self.x, self.y, self.task = (np.array(arrays[k]) for k in ("x", "y", "task"))


# -- learning without forgetting -------------------------------------------------------------------
def distillation_loss(logits, teacher_logits, temperature):
    """T² · mean_n Σ_c −softmax(teacher/T)_c · log_softmax(logits/T)_c: cross-entropy with the
    old model's softened outputs (the T² keeps its gradient's scale independent of T)."""
    teacher = teacher_logits.numpy().astype(np.float64) / temperature
    teacher = np.exp(teacher - teacher.max(1, keepdims=True))
    teacher /= teacher.sum(1, keepdims=True)
    log_student = (logits * (1.0 / temperature)).log_softmax(dim=-1)
    targets = Tensor(teacher.astype(log_student.numpy().dtype))
    return -(targets * log_student).sum() * (temperature ** 2 / len(teacher))


# -- one object the trainer talks to ---------------------------------------------------------------
class ContinualStrategy:
    """A method (``METHODS``) as the trainer sees it: it rewrites each step's loss terms
    (adds a penalty, replayed examples or distillation), brackets the optimizer step (SI), and
    closes each stage (Fisher, anchors, the teacher). ``tasks`` names every task of the
    sequence in stage order (the replay buffer stores task indices into it).

    ``options``: ewc_lambda, online_gamma, si_c, si_xi, replay_size, replay_ratio,
    lwf_temperature, lwf_alpha (the ``continual:`` config section)."""

    def __init__(self, method, options, model, tasks, generator, make_teacher=None):
        if method not in METHODS:
            raise ValueError(f"unknown continual method {method!r}; expected one of "
                             f"{', '.join(METHODS)}")
        self.method, self.options, self.tasks = method, dict(options), list(tasks)
        self.ewc = self.si = self.buffer = self.teacher = None
        if method in ("ewc", "online_ewc"):
            self.ewc = EWC(options["ewc_lambda"], online=method == "online_ewc",
                           gamma=options["online_gamma"])
        elif method == "si":
            self.si = SynapticIntelligence(options["si_c"], options["si_xi"], model)
        elif method == "replay":
            self.buffer = ReservoirBuffer(options["replay_size"], generator)
        elif method == "lwf":
            self.make_teacher = make_teacher
        self.learned = []  # tasks of the finished stages

    def terms(self, model, task, x, y, terms, features=None):
        """The loss terms {name: Tensor} of one step on ``task``'s batch (x, y), given the
        plain ones and, optionally, the backbone's ``features`` of x that they were computed
        from (LwF reuses them instead of running the backbone again)."""
        terms = dict(terms)
        regulariser = self.ewc or self.si
        if regulariser is not None:
            penalty = regulariser.penalty(model)
            if penalty is not None:
                terms["penalty"] = penalty
        if self.buffer is not None:
            terms = self._replay(model, task, x, y, terms)
        if self.teacher is not None:
            terms.update(self._distill(model, x, features))
        return terms

    def _replay(self, model, task, x, y, terms):
        """The batch with m = round(ratio · B) stored examples of earlier tasks mixed in: the
        loss is the mean over all B + m examples, each through its own task's head; then the
        current batch is offered to the reservoir."""
        count = int(round(self.options["replay_ratio"] * len(y)))
        replayed = self.buffer.sample(count, exclude_task=self.tasks.index(task)) if count \
            else None
        if replayed is not None:
            rx, ry, rtask = replayed
            total = len(y) + count
            terms = {name: term * (len(y) / total) if name == task else term
                     for name, term in terms.items()}
            for index in np.unique(rtask):
                rows = rtask == index
                outputs = model(Tensor(rx[rows]), self.tasks[index])
                terms[f"replay:{self.tasks[index]}"] = F.cross_entropy(outputs, ry[rows]) * (
                    rows.sum() / total)
        self.buffer.add(x, y, self.tasks.index(task))
        return terms

    def _distill(self, model, x, features=None):
        """α · distillation of every earlier task's head on the new inputs (one term per
        distinct head: tasks that share a head are distilled once). The backbone runs at most
        once for the student (not at all when the trainer passes the features its task loss
        used) and once for the teacher; only the heads run per earlier task."""
        terms, heads = {}, set()
        if features is None:
            features = model.features(Tensor(x))
        with no_grad():
            teacher_features = self.teacher.features(Tensor(x))
        for task in self.learned:
            head = model.head_of[task]
            if head in heads:
                continue
            heads.add(head)
            with no_grad():
                teacher_logits = self.teacher.forward_heads(teacher_features, task)
            terms[f"distill:{task}"] = distillation_loss(
                model.forward_heads(features, task), teacher_logits,
                self.options["lwf_temperature"]) * self.options["lwf_alpha"]
        return terms

    def before_step(self, model):
        if self.si is not None:
            self.si.before_step(model)

    def after_step(self, model):
        if self.si is not None:
            self.si.after_step(model)

    def end_stage(self, model, stage_tasks, fisher=None):
        """Close a stage: anchor EWC at ``fisher`` (per task, summed for a stage of several),
        consolidate SI, snapshot the LwF teacher."""
        if self.ewc is not None and fisher is not None:
            self.ewc.end_stage(model, fisher)
        if self.si is not None:
            self.si.end_stage(model)
        self.learned += [t for t in stage_tasks if t not in self.learned]
        if self.method == "lwf":
            self.teacher = self.make_teacher(model.state_dict())

    def state(self):
        state, arrays = {"learned": self.learned}, {}
        for name, part in (("ewc", self.ewc), ("si", self.si), ("buffer", self.buffer)):
            if part is not None:
                part_state, part_arrays = part.state()
                state[name] = part_state
                arrays.update({f"{name}.{k}": v for k, v in part_arrays.items()})
        if self.teacher is not None:
            arrays.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})
        return state, arrays

    def load_state(self, state, arrays):
        self.learned = list(state["learned"])
        for name, part in (("ewc", self.ewc), ("si", self.si), ("buffer", self.buffer)):
            if part is not None:
                prefix = f"{name}."
                part.load_state(state[name], {k[len(prefix):]: v for k, v in arrays.items()
                                              if k.startswith(prefix)})
        teacher = {k[len("teacher."):]: v for k, v in arrays.items() if k.startswith("teacher.")}
        if self.method == "lwf" and teacher:
            self.teacher = self.make_teacher(teacher)
