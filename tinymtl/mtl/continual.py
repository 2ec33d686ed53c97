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
    finetune    nothing: plain training on each stage's task (the lower bound)
    offline     every stage trains every task so far, together (the upper bound)

Each method is a ``Plugin`` (``mtl.plugin``) of kind ``continual``: ``loss_terms`` adds its
penalty, replayed examples or distillation to a step; ``on_stage_end`` does its own work at
the end of a stage (EWC computes the Fisher, SI consolidates, LwF snapshots its teacher). The
sequence protocol (``train.continual``) calls ``begin`` once before the first stage. All state
(Fisher, anchors, importances, the buffer and its counter, the teacher) is in its
``state_dict``, so it lives in the checkpoint and a resumed sequence continues bitwise
identically.
"""

import numpy as np

from tinymtl.autograd import Tensor, grad, no_grad
from tinymtl.backend import to_numpy
from tinymtl.backend.random import stream
from tinymtl.mtl.model import model_input
from tinymtl.mtl.plugin import Plugin, register
from tinymtl.nn import functional as F
from tinymtl.options import Choice, Float, Int


# -- the diagonal Fisher information ---------------------------------------------------------------
FISHER_KINDS = ("empirical", "true", "predicted", "exact")


def diagonal_fisher(model, task, x, y=None, parameters=None, generator=None, kind=None):
    """F_k = (1/N) Σ_n E_y[(∂ log p(y | x_n; θ) / ∂θ_k)²], one example at a time (the per-sample
    definition: squares of per-example gradients, not the square of the batch mean).

    ``kind`` says which y the expectation takes (van de Ven 2025 compares them for EWC):

        empirical   y = y_n, the label in the data (needs ``y``; the default when ``y`` is given)
        true        one y drawn from the model's own p(· | x_n) with ``generator``: a one-sample
                    estimate of ``exact`` (the default when ``y`` is None)
        predicted   y = argmax p(· | x_n), the model's own prediction (van de Ven & Tolias' code)
        exact       Σ_c p(c | x_n) (∂ log p(c | x_n) / ∂θ_k)²: the Fisher's definition, one
                    backward pass per class

    Returns {parameter name: array}, for ``parameters`` (default: every trainable one)."""
    kind = kind or ("empirical" if y is not None else "true")
    if kind not in FISHER_KINDS:
        raise ValueError(f"diagonal_fisher: kind {kind!r} is not one of {', '.join(FISHER_KINDS)}")
    if kind == "empirical" and y is None:
        raise ValueError("diagonal_fisher: the empirical Fisher needs the labels y")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if parameters is not None:
        named = [(n, p) for n, p in named if n in parameters]
    fisher = {n: np.zeros(p.shape, dtype=np.float64) for n, p in named}
    for k in range(len(x)):
        logits = model(model_input(x[k:k + 1]), task)
        if kind == "empirical":
            weighted_labels = [(1.0, int(y[k]))]
        else:
            probabilities = np.exp(logits.log_softmax(dim=-1).numpy()[0].astype(np.float64))
            probabilities /= probabilities.sum()  # renormalised in float64: choice() checks the sum
            if kind == "true":
                weighted_labels = [(1.0, int(generator.choice(len(probabilities), p=probabilities)))]
            elif kind == "predicted":
                weighted_labels = [(1.0, int(np.argmax(probabilities)))]
            else:
                weighted_labels = list(zip(probabilities, range(len(probabilities))))
        for i, (weight, label) in enumerate(weighted_labels):
            negative_log_likelihood = F.cross_entropy(
                logits, Tensor(np.array([label]), device=logits.device))
            gradients = grad(negative_log_likelihood, [p for _, p in named], allow_unused=True,
                             retain_graph=i < len(weighted_labels) - 1)
            for (name, _), g in zip(named, gradients):
                if g is not None:  # (a weight of 1.0 changes no bit)
                    fisher[name] += weight * to_numpy(g).astype(np.float64) ** 2
    return {n: (f / len(x)).astype(np.float32) for n, f in fisher.items()}


def quadratic_penalty(model, importance, anchor):
    """Σ_k importance_k (θ_k − anchor_k)² over the named parameters in ``importance``
    (kept in host memory by the methods, and moved to each parameter's device here)."""
    parameters = dict(model.named_parameters())
    total = None
    for name, weight in importance.items():
        p = parameters[name]
        term = (Tensor(weight, device=p.device)
                * (p - Tensor(anchor[name], device=p.device)) ** 2).sum()
        total = term if total is None else total + term
    return total


# -- the base --------------------------------------------------------------------------------------
class ContinualMethod(Plugin):
    """A continual-learning method: the trainer of each stage runs it as a plugin. ``begin``
    is called once per sequence, with the ``model``, every task of the sequence in stage order
    (``tasks``: the replay buffer stores indices into it), the run's ``seed`` and
    ``make_model(state)``, which builds a copy of the model with those weights (LwF)."""

    kind = "continual"
    trains_every_seen_task = False  # offline: stage s trains tasks 0..s together

    def __init__(self, **options):
        super().__init__(**options)
        self.learned = []  # tasks of the finished stages

    def begin(self, model, tasks, seed, make_model=None):
        self.sequence, self.seed, self.make_model = list(tasks), seed, make_model

    def penalty(self, model):
        """A regulariser's term (EWC, SI), or None."""
        return None

    def loss_terms(self, trainer, terms, batch):
        penalty = self.penalty(trainer.model)
        if penalty is not None:
            terms = dict(terms, penalty=penalty)
        return terms

    def on_stage_end(self, trainer, stage, tasks):
        self.learned += [t for t in tasks if t not in self.learned]

    def state_dict(self):
        return {"learned": list(self.learned)}

    def load_state_dict(self, state):
        self.learned = list(state["learned"])


@register
class Finetune(ContinualMethod):
    """Nothing against forgetting: each stage trains its task alone (the lower bound)."""

    name = "finetune"


@register
class Offline(ContinualMethod):
    """Stage s trains every task so far together, mixed batches (the upper bound)."""

    name = "offline"
    trains_every_seen_task = True


# -- EWC and online EWC ----------------------------------------------------------------------------
FISHER_OPTIONS = {
    "fisher": Choice(FISHER_KINDS, default="empirical",
                     help="labels of the Fisher: the data's, one drawn from the model, the model's"
                          " prediction, or every class weighted by its probability"),
    "fisher_samples": Int(default=1000, low=1, high=10 ** 8,
                          help="training examples the Fisher averages (more than the task has: all)"),
}


@register
class EWC(ContinualMethod):
    """Kirkpatrick et al. (2017): a Fisher-weighted pull back to each past task's weights.

    ``penalty(model)`` = (λ/2) Σ_anchors Σ_k F_k (θ_k − θ*_k)², one anchor per past task
    (``lambd``: λ, PyTorch's spelling of a λ argument). A sum of quadratics is one quadratic:

        Σ_t F_t (θ − θ*_t)² = A (θ − μ)² + Σ_t F_t (θ*_t − μ)²,
        A = Σ_t F_t,   μ = Σ_t F_t θ*_t / A   (the Fisher-weighted mean of the anchors),

    so the penalty is evaluated as that single term plus a constant, and a step costs the
    same after ten tasks as after one (the gradient, λ A (θ − μ) = λ Σ_t F_t (θ − θ*_t), is
    unchanged)."""

    name = "ewc"
    OPTIONS = {"lambd": Float(default=100.0, low=0.0, help="λ, the penalty's strength"),
               **FISHER_OPTIONS}
    ALIASES = {"ewc_lambda": "lambd", "fisher": "fisher", "fisher_samples": "fisher_samples"}
    online = False

    def __init__(self, **options):
        super().__init__(**options)
        self.anchors = []  # [(fisher {name: array}, theta* {name: array})]
        self._merged = None

    def memory_copies(self, tasks):
        # a Fisher and an anchor per past task (one of each, online), and A and μ in float64
        return 2 * (1 if self.online else len(tasks)) + 4

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
        return (quadratic_penalty(model, total, centre) + constant) * (self.lambd / 2)

    def on_stage_end(self, trainer, stage, tasks):
        """The Fisher of the stage's task at the current weights, on ``fisher_samples`` of its
        training examples (seeded: a resumed run draws the same), then the new anchor."""
        task = self.sequence[stage]
        data = trainer.tasks[task]
        generator = stream(self.seed, "continual_fisher", stage)
        index = generator.permutation(len(data.y_train))[:self.fisher_samples]
        trainer.model.eval()
        fisher = diagonal_fisher(trainer.model, task, data.x_train[index], data.y_train[index],
                                 generator=generator, kind=self.fisher)
        trainer.model.train()
        self.add_anchor(trainer.model, fisher)
        super().on_stage_end(trainer, stage, tasks)

    def add_anchor(self, model, fisher):
        """Anchor at the current weights with this Fisher."""
        theta = {n: to_numpy(p.data).copy() for n, p in model.named_parameters() if n in fisher}
        self.anchors.append((fisher, theta))
        self._merged = None

    def state_dict(self):
        return dict(super().state_dict(), anchors=[{"fisher": f, "theta": t}
                                                   for f, t in self.anchors])

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.anchors = [(dict(a["fisher"]), dict(a["theta"])) for a in state["anchors"]]
        self._merged = None


@register
class OnlineEWC(EWC):
    """Schwarz et al. (2018): one running anchor, F* ← γ F* + F_new, θ* ← θ at each stage end,
    and the penalty of the next stages (λ/2) Σ_k γ F*_k (θ_k − θ*_k)², with the decay γ in front
    as in the paper (eq. 7) and van de Ven & Tolias' implementation (at γ = 1, plain F*)."""

    name = "online_ewc"
    OPTIONS = dict(EWC.OPTIONS, gamma=Float(default=1.0, low=0.0, high=1.0,
                                            help="γ, how much of the old Fisher is kept"))
    ALIASES = dict(EWC.ALIASES, online_gamma="gamma")

    def penalty(self, model):
        penalty = super().penalty(model)
        return penalty if penalty is None or self.gamma == 1.0 else penalty * self.gamma

    def add_anchor(self, model, fisher):
        if self.anchors:
            previous, _ = self.anchors[0]
            fisher = {n: self.gamma * previous[n] + f for n, f in fisher.items()}
            self.anchors = []
        super().add_anchor(model, fisher)


# -- synaptic intelligence -------------------------------------------------------------------------
@register
class SI(ContinualMethod):
    """Zenke et al. (2017): importance from the path the weights travelled.

    (Module docstring.) ``on_before_optimizer_step`` reads g and θ, ``on_after_optimizer_step``
    Δθ."""

    name = "si"
    OPTIONS = {"c": Float(default=1.0, low=0.0, help="c, the penalty's strength"),
               "xi": Float(default=0.1, positive=True, help="ξ, damping of the importance")}
    ALIASES = {"si_c": "c", "si_xi": "xi"}

    def memory_copies(self, tasks):
        return 5  # ω, Ω, θ*, and the weights and gradients read before each step

    def begin(self, model, tasks, seed, make_model=None):
        super().begin(model, tasks, seed, make_model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.omega = {n: np.zeros(p.shape, np.float32) for n, p in named}        # ω, this stage
        self.importance = {n: np.zeros(p.shape, np.float32) for n, p in named}   # Ω
        self.anchor = {n: to_numpy(p.data).copy() for n, p in named}             # θ*, θ(start)
        self._before = None

    def penalty(self, model):
        if not any(v.any() for v in self.importance.values()):
            return None
        return quadratic_penalty(model, self.importance, self.anchor) * self.c

    def on_before_optimizer_step(self, trainer):
        self._before = {n: (to_numpy(p.data).copy(),
                            None if p.grad is None else to_numpy(p.grad).copy())
                        for n, p in trainer.model.named_parameters() if n in self.omega}

    def on_after_optimizer_step(self, trainer, losses):
        for name, p in trainer.model.named_parameters():
            if name in self.omega and self._before[name][1] is not None:
                old, g = self._before[name]
                self.omega[name] -= g * (to_numpy(p.data) - old)  # ω += −g Δθ
        self._before = None

    def on_stage_end(self, trainer, stage, tasks):
        for name, p in trainer.model.named_parameters():
            if name in self.omega:
                travelled = to_numpy(p.data) - self.anchor[name]
                self.importance[name] += self.omega[name] / (travelled ** 2 + self.xi)
                self.omega[name][...] = 0.0
                self.anchor[name] = to_numpy(p.data).copy()
        super().on_stage_end(trainer, stage, tasks)

    def state_dict(self):
        return dict(super().state_dict(), omega=self.omega, importance=self.importance,
                    anchor=self.anchor)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for key in ("omega", "importance", "anchor"):
            setattr(self, key, {n: np.array(v) for n, v in state[key].items()})


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

    def state_dict(self):
        state = {"seen": self.seen, "generator": self.generator.state_dict()}
        if self.x is not None:
            state.update(x=self.x, y=self.y, task=self.task)
        return state

    def load_state_dict(self, state):
        self.seen = state["seen"]
        self.generator.load_state_dict(state["generator"])
        if "x" in state:
            self.x, self.y, self.task = (np.array(state[k]) for k in ("x", "y", "task"))


@register
class Replay(ContinualMethod):
    """Rehearsal: every batch mixes in stored examples of the earlier tasks (a reservoir)."""

    name = "replay"
    OPTIONS = {"size": Int(default=1000, low=1, high=10 ** 8, help="examples the reservoir holds"),
               "ratio": Float(default=1.0, positive=True,
                              help="stored examples mixed in per current example")}
    ALIASES = {"replay_size": "size", "replay_ratio": "ratio"}

    def begin(self, model, tasks, seed, make_model=None):
        super().begin(model, tasks, seed, make_model)
        self.buffer = ReservoirBuffer(self.size, stream(seed, "continual_replay"))

    def loss_terms(self, trainer, terms, batch):
        """The batch with m = round(ratio · B) stored examples of earlier tasks mixed in: the
        loss is the mean over all B + m examples, each through its own task's head; then the
        current batch is offered to the reservoir."""
        task, x, y = batch.task, batch.x, batch.y
        count = int(round(self.ratio * len(y)))
        replayed = self.buffer.sample(count, exclude_task=self.sequence.index(task)) if count \
            else None
        if replayed is not None:
            rx, ry, rtask = replayed
            total = len(y) + count
            terms = {name: term * (len(y) / total) if name == task else term
                     for name, term in terms.items()}
            for index in np.unique(rtask):
                rows = rtask == index
                outputs = trainer.model(Tensor(rx[rows]), self.sequence[index])
                target = Tensor(ry[rows], device=outputs.device)
                terms[f"replay:{self.sequence[index]}"] = F.cross_entropy(outputs, target) * (
                    rows.sum() / total)
        self.buffer.add(x, y, self.sequence.index(task))
        return terms

    def state_dict(self):
        return dict(super().state_dict(), buffer=self.buffer.state_dict())

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])


# -- learning without forgetting -------------------------------------------------------------------
def distillation_loss(logits, teacher_logits, temperature):
    """T² · mean_n Σ_c −softmax(teacher/T)_c · log_softmax(logits/T)_c: cross-entropy with the
    old model's softened outputs (the T² keeps its gradient's scale independent of T)."""
    teacher = teacher_logits.numpy().astype(np.float64) / temperature
    teacher = np.exp(teacher - teacher.max(1, keepdims=True))
    teacher /= teacher.sum(1, keepdims=True)
    log_student = (logits * (1.0 / temperature)).log_softmax(dim=-1)
    targets = Tensor(teacher.astype(log_student.dtype), device=logits.device)
    return -(targets * log_student).sum() * (temperature ** 2 / len(teacher))


@register
class LwF(ContinualMethod):
    """Li & Hoiem (2016): the previous stage's model labels the new inputs for the old heads."""

    name = "lwf"
    OPTIONS = {"temperature": Float(default=2.0, positive=True, help="T of the softmax"),
               "alpha": Float(default=1.0, low=0.0, help="α, weight of each distillation")}
    ALIASES = {"lwf_temperature": "temperature", "lwf_alpha": "alpha"}

    def __init__(self, **options):
        super().__init__(**options)
        self.teacher = None

    def memory_copies(self, tasks):
        return 1  # the teacher: the model as the previous stage left it

    def loss_terms(self, trainer, terms, batch):
        if self.teacher is None:
            return terms
        return dict(terms, **self.distill(trainer.model, batch.x, batch.features))

    def distill(self, model, x, features=None):
        """α · distillation of every earlier task's head on the new inputs (one term per
        distinct head: tasks that share a head are distilled once). The backbone runs at most
        once for the student (not at all when the trainer passes the features its task loss
        used) and once for the teacher; only the heads run per earlier task."""
        terms, heads = {}, set()
        if features is None:
            features = model.features(model_input(x))
        with no_grad():
            teacher_features = self.teacher.features(model_input(x))
        for task in self.learned:
            head = model.head_of[task]
            if head in heads:
                continue
            heads.add(head)
            with no_grad():
                teacher_logits = self.teacher.forward_heads(teacher_features, task)
            terms[f"distill:{task}"] = distillation_loss(
                model.forward_heads(features, task), teacher_logits,
                self.temperature) * self.alpha
        return terms

    def on_stage_end(self, trainer, stage, tasks):
        super().on_stage_end(trainer, stage, tasks)
        self.teacher = self.make_model(trainer.model.state_dict())

    def state_dict(self):
        return dict(super().state_dict(), teacher=None if self.teacher is None
                    else self.teacher.state_dict())

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if state["teacher"] is not None:
            self.teacher = self.make_model(state["teacher"])


def upgrade_format1(method, state, arrays):
    """A format-1 checkpoint's continual strategy state ({learned, ewc, si, buffer}, and flat
    arrays 'ewc.fisher.<k>.<name>', 'si.omega.<name>', 'buffer.x', 'teacher.<name>', ...) as
    the ``state_dict`` of the method's plugin today."""
    def part(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    upgraded = {"learned": list(state["learned"])}
    if method in ("ewc", "online_ewc"):
        upgraded["anchors"] = [{"fisher": part(f"ewc.fisher.{k}."),
                                "theta": part(f"ewc.theta.{k}.")}
                               for k in range(state["ewc"]["anchors"])]
    elif method == "si":
        upgraded.update({key: part(f"si.{key}.") for key in ("omega", "importance", "anchor")})
    elif method == "replay":
        upgraded["buffer"] = dict(state["buffer"], **part("buffer."))
    elif method == "lwf":
        upgraded["teacher"] = part("teacher.") or None
    return upgraded


__all__ = ["ContinualMethod", "Finetune", "Offline", "EWC", "OnlineEWC", "SI", "Replay", "LwF",
           "ReservoirBuffer", "diagonal_fisher", "quadratic_penalty", "distillation_loss",
           "upgrade_format1"]
