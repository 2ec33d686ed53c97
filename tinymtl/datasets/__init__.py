"""Task data: procedural generators and loaders, cached deterministically with a manifest.

``load_task(name, generator=..., ...)`` returns a ``TaskData`` for any registered source:
procedural generators (``GENERATORS``, generated and cached here), image sets that several tasks
label differently (``IMAGE_SETS``: shapes3, multi_mnist) and loaders of real data (``LOADERS``,
each with its own fetch step). ``load_tasks`` loads a config's whole ``tasks`` section, so that tasks over one
image set share its arrays.
"""

from tinymtl.datasets import arithmetic, kindergarten, mnist, multi_mnist, shapes3
from tinymtl.datasets.base import TaskData, array_digest, generate_text_task
from tinymtl.datasets.cache import cache_dir, load_or_generate
from tinymtl.datasets.text import VOCAB_SIZE, decode, encode

GENERATORS = {"kindergarten": kindergarten, "math": arithmetic}  # procedural text tasks
LOADERS = {"mnist": mnist}                                         # real data, fetched once
IMAGE_SETS = {"shapes3": shapes3, "multi_mnist": multi_mnist}  # one image set, many targets
SOURCES = sorted(GENERATORS) + sorted(LOADERS) + sorted(IMAGE_SETS)
GENERATOR_VERSION = 1  # bump when a generator's output changes, so old caches are not reused
TEXT_SIZES = (20000, 2000)  # default train/test sizes of a generated text task


def load_task(name, generator, train_size=None, test_size=None, max_length=20, seed=0,
              use_cache=True, **variant):
    """The named task's data: a loader's real data (sizes limit it; ``variant``: e.g. MNIST's
    digits and permutation), or a generated text task, from the cache when it holds exactly
    this specification."""
    if generator in LOADERS:
        return LOADERS[generator].load(train_size, test_size, **variant)
    if generator not in GENERATORS:
        raise ValueError(f"unknown task source {generator!r}; expected one of "
                         f"{', '.join(SOURCES)}")
    train_size = train_size or TEXT_SIZES[0]
    test_size = test_size or TEXT_SIZES[1]
    module = GENERATORS[generator]
    spec = {"name": name, "generator": generator, "version": GENERATOR_VERSION, "seed": seed,
            "train_size": train_size, "test_size": test_size, "max_length": max_length}
    return load_or_generate(spec, lambda: generate_text_task(
        name, module, module.CLASSES, train_size, test_size, max_length, seed), use_cache)


def load_tasks(specs, max_length=20, seed=0, use_cache=True):
    """``{name: TaskData}`` for a config's ``tasks`` section (name -> {generator, train_size,
    test_size, target, well_posed}); tasks over the same image set share one array."""
    image_sets, tasks = {}, {}
    for name, spec in specs.items():
        source = spec["generator"]
        if source in IMAGE_SETS:
            key = (source, spec.get("train_size"), spec.get("test_size"))
            if key not in image_sets:
                image_sets[key] = IMAGE_SETS[source].image_set(*key[1:], seed, use_cache)
            tasks[name] = IMAGE_SETS[source].task(name, spec.get("target"), *image_sets[key],
                                                  well_posed=spec.get("well_posed") or False)
        else:
            variant = {key: spec[key] for key in ("digits", "permutation", "global_labels")
                       if spec.get(key) is not None}
            tasks[name] = load_task(name, source, spec.get("train_size"), spec.get("test_size"),
                                    max_length, seed, use_cache, **variant)
    return tasks


__all__ = ["TaskData", "load_task", "load_tasks", "GENERATORS", "LOADERS", "IMAGE_SETS", "SOURCES",
           "encode", "decode", "VOCAB_SIZE", "cache_dir", "array_digest"]
