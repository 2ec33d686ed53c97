"""The plugin protocol: one base class for everything that acts on a training step.

A loss weighting, a gradient surgery, a continual-learning method and a trainer feature (early
stopping, a monitor) are all a ``Plugin``: a class with no-op hooks named after the moments of
the training loop, overriding only those it needs. The trainer calls them in this order:

    setup(trainer)                           once, before the optimizer is built (make
                                             learned parameters here: ``parameters()``)
    on_fit_start(trainer)
    every step:
        on_step_start(trainer, tasks)
        loss_terms(trainer, terms, batch)    → terms: {name: Tensor}; the loss is their sum
                                             (weighting first: it turns the task losses
                                             {task: L_t} into terms; others add to them)
        backward(trainer, terms, batch)      → True if this plugin set the gradients itself
                                             (at most one plugin may: ``owns_backward``)
        on_before_optimizer_step(trainer)    gradients final (clipped), weights not yet moved
        on_after_optimizer_step(trainer, losses)   losses: {task: float} of the step
        on_train_log(trainer, row)           add fields to a ``metrics.jsonl`` train row
        on_evaluate(trainer, row)            after each evaluation (the eval row)
        on_checkpoint(trainer)               just before a checkpoint is written
    on_fit_end(trainer)
    on_log(trainer, row)                     any row written to ``metrics.jsonl`` (train, eval,
                                             test, a plugin's own): to send it elsewhere
    on_stage_end(trainer, stage, tasks)      a continual sequence closed stage ``stage``

Each plugin's state is one ``state_dict()``: a nested dict of JSON values and NumPy arrays
(the one state convention of the project), saved under the plugin's ``name`` in the
checkpoint's ``/plugins`` group, and given back to ``load_state_dict`` on resume.

The registry: ``@register`` adds a class under its ``kind`` and ``name``; its ``OPTIONS`` (a
schema of ``tinymtl.options`` fields) check the options given in a config or a constructor
call, and give the listings of ``tinymtl methods`` and the docs. ``ALIASES`` maps the flat
config keys of earlier versions (``training.gradnorm_alpha``) to options (``alpha``).
"""

from tinymtl.options import ConfigError, check_section

KINDS = ("weighting", "gradients", "continual", "callback")
REGISTRY = {kind: {} for kind in KINDS}


class Plugin:
    """Base class: every hook does nothing. Subclasses set ``name``, ``kind`` and ``OPTIONS``
    and override the hooks they need (module docstring)."""

    name = None        # its registry name, and its key in checkpoints
    kind = "callback"  # weighting | gradients | continual | callback
    OPTIONS = {}       # {option: tinymtl.options field}
    ALIASES = {}       # {flat config key of earlier versions: option}
    owns_backward = False
    needs_all_tasks = False  # it compares every task in a step: a joint or mixed schedule
    accumulates = True       # it works with micro-batches (training.accumulate > 1)

    def __init__(self, **options):
        """Options are checked against ``OPTIONS`` (defaults filled in) and become
        attributes: ``GradNorm(alpha=1.5).alpha``."""
        values = check_section(self.OPTIONS, options, self.name or type(self).__name__)
        for key, value in values.items():
            setattr(self, key, value)

    @classmethod
    def missing(cls):
        """What the plugin needs that is not installed (an optional extra), in words, or
        None: a config naming it is refused when it is checked, not in the middle of a run."""
        return None

    def options(self):
        """{option: value}: what ``__init__`` was given, defaults filled in."""
        return {key: getattr(self, key) for key in self.OPTIONS}

    # -- set-up ---------------------------------------------------------------------------
    def setup(self, trainer):
        """Called by each Trainer built with this plugin, before it builds its optimizer."""

    def parameters(self):
        """Learned parameters of the plugin that the trainer's optimizer trains (no weight
        decay), e.g. uncertainty weighting's log-variances."""
        return []

    def task_parameters(self, task):
        """Those of ``parameters()`` that only ``task``'s loss term depends on."""
        return []

    def report(self):
        """What the run's summary says of this plugin (``summary.json["callbacks"]``), e.g.
        where early stopping stopped; None: nothing."""
        return None

    def memory_copies(self, tasks):
        """About how many arrays the size of the model's weights this plugin keeps while
        training ``tasks`` (per-task gradients, Fisher matrices, a teacher): what a memory
        estimate adds for it before anything is allocated."""
        return 0

    # -- the loop ---------------------------------------------------------------------------
    def on_fit_start(self, trainer):
        pass

    def on_step_start(self, trainer, tasks):
        pass

    def loss_terms(self, trainer, terms, batch):
        """The step's loss terms {name: Tensor}, given those so far and the ``Batch``."""
        return terms

    def backward(self, trainer, terms, batch):
        """Set the gradients from the loss terms; True if done (``owns_backward`` plugins)."""
        return False

    def on_before_optimizer_step(self, trainer):
        pass

    def on_after_optimizer_step(self, trainer, losses):
        pass

    def on_train_log(self, trainer, row):
        pass

    def on_evaluate(self, trainer, row):
        pass

    def on_checkpoint(self, trainer):
        pass

    def on_fit_end(self, trainer):
        pass

    def on_log(self, trainer, row):
        pass

    def on_stage_end(self, trainer, stage, tasks):
        pass

    # -- state ------------------------------------------------------------------------------
    def state_dict(self):
        """Everything a resumed run needs: JSON values and NumPy arrays, nested in dicts."""
        return {}

    def load_state_dict(self, state):
        pass


class Batch:
    """What one micro-batch of a step trained on, for ``loss_terms``: the schedule's ``mode``,
    its ``tasks``, the inputs ``x`` (every task's, concatenated, in a mixed batch), the labels
    ``y`` (one task's; None for several), and the backbone's ``features`` of x."""

    def __init__(self, mode, tasks, x, y, features):
        self.mode, self.tasks, self.x, self.y, self.features = mode, tasks, x, y, features

    @property
    def task(self):
        (task,) = self.tasks
        return task


# -- the registry ----------------------------------------------------------------------------------
def register(cls):
    """Class decorator: make ``cls`` available by its ``kind`` and ``name`` in configs."""
    if cls.kind not in REGISTRY:
        raise ValueError(f"{cls.__name__}.kind = {cls.kind!r}: expected one of "
                         f"{', '.join(KINDS)}")
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a registered plugin needs a name")
    REGISTRY[cls.kind][cls.name] = cls
    return cls


def methods(kind):
    """{name: class} of the registered plugins of ``kind``."""
    return dict(REGISTRY[kind])


def create(kind, spec):
    """The plugin a canonical spec ``{'method': name, **options}`` describes."""
    spec = dict(spec)
    return methods(kind)[spec.pop("method")](**spec)


def resolve(kind, value, where, flat=None, flat_where=""):
    """The canonical ``{'method': name, **options}`` of a method given as a name or as a
    mapping with ``method`` (and options), at config key ``where``. ``flat``: the legacy flat
    keys given beside it ({key: value}, at ``flat_where``); those of the chosen method fill its
    options, those of other methods of the kind are accepted and ignored, as they always were."""
    available = methods(kind)
    shown = where if isinstance(value, str) else f"{where}.method"
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, dict) or "method" not in value:
        raise ConfigError(f"{where} = {value!r}: expected a method name or a mapping with "
                          f"'method' and its options; methods: {', '.join(available)}")
    name = value["method"]
    if not isinstance(name, str) or name not in available:
        raise ConfigError(f"{shown} = {name!r}: expected one of {', '.join(available)}")
    cls = available[name]
    missing = cls.missing()
    if missing:
        raise ConfigError(f"{shown} = {name!r}: {missing}")
    options = {k: v for k, v in value.items() if k != "method"}
    unknown = sorted(set(options) - set(cls.OPTIONS))
    if unknown:
        raise ConfigError(f"unknown key {where + '.' + unknown[0]!r}; {name} takes "
                          f"{', '.join(cls.OPTIONS) or 'no options'}")
    checked = check_section(cls.OPTIONS, options, where)
    for key, given in (flat or {}).items():
        option = cls.ALIASES.get(key)
        if option is not None and given is not None and option not in options:
            place = f"{flat_where}.{key}" if flat_where else key
            checked[option] = cls.OPTIONS[option].check(given, place)
    return {"method": name, **checked}


def aliases(kind):
    """{flat key: its option's field} over every registered method of ``kind``."""
    return {key: cls.OPTIONS[option] for cls in methods(kind).values()
            for key, option in cls.ALIASES.items()}
