"""Task data: procedural generators and loaders, cached deterministically with a manifest.

``load_task(name, generator=..., ...)`` returns a ``TaskData`` for any registered generator;
new workloads add theirs to ``GENERATORS``.
"""

from tinymtl.datasets import arithmetic, kindergarten
from tinymtl.datasets.base import TaskData, array_digest, generate_text_task
from tinymtl.datasets.cache import cache_dir, load_or_generate
from tinymtl.datasets.text import VOCAB_SIZE, decode, encode

GENERATORS = {"kindergarten": kindergarten, "math": arithmetic}
GENERATOR_VERSION = 1  # bump when a generator's output changes, so old caches are not reused


def load_task(name, generator, train_size, test_size, max_length, seed=0, use_cache=True):
    """The named task's data, from the cache when it holds exactly this specification."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown task generator {generator!r}; expected one of "
                         f"{', '.join(sorted(GENERATORS))}")
    module = GENERATORS[generator]
    spec = {"name": name, "generator": generator, "version": GENERATOR_VERSION, "seed": seed,
            "train_size": train_size, "test_size": test_size, "max_length": max_length}
    return load_or_generate(spec, lambda: generate_text_task(
        name, module, module.CLASSES, train_size, test_size, max_length, seed), use_cache)


__all__ = ["TaskData", "load_task", "GENERATORS", "encode", "decode", "VOCAB_SIZE",
           "cache_dir", "array_digest"]
