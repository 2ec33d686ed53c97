"""Task data: procedural generators and loaders, cached deterministically with a manifest.

``load_task(name, generator=..., ...)`` returns a ``TaskData`` for any registered source:
procedural generators (``GENERATORS``, generated and cached here) and loaders of real data
(``LOADERS``, each with its own fetch step). New workloads register theirs in one of the two.
"""

from tinymtl.datasets import arithmetic, kindergarten, mnist
from tinymtl.datasets.base import TaskData, array_digest, generate_text_task
from tinymtl.datasets.cache import cache_dir, load_or_generate
from tinymtl.datasets.text import VOCAB_SIZE, decode, encode

GENERATORS = {"kindergarten": kindergarten, "math": arithmetic}  # procedural text tasks
LOADERS = {"mnist": mnist}                                         # real data, fetched once
SOURCES = sorted(GENERATORS) + sorted(LOADERS)
GENERATOR_VERSION = 1  # bump when a generator's output changes, so old caches are not reused
TEXT_SIZES = (20000, 2000)  # default train/test sizes of a generated text task


def load_task(name, generator, train_size=None, test_size=None, max_length=20, seed=0,
              use_cache=True):
    """The named task's data: a loader's real data (sizes limit it), or a generated text task,
    from the cache when it holds exactly this specification."""
    if generator in LOADERS:
        return LOADERS[generator].load(train_size, test_size)
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


__all__ = ["TaskData", "load_task", "GENERATORS", "LOADERS", "SOURCES", "encode", "decode",
           "VOCAB_SIZE", "cache_dir", "array_digest"]
