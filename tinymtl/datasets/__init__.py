"""Task data: procedural generators, image sets that several tasks label, real data fetched
once, and a user's own files (``files``: NPZ/HDF5 arrays, TSV text, image folders), all through
one protocol (``source.DataSource``) and cached deterministically with a
manifest.

``SOURCES`` lists every source by the name a config gives it (``tasks.<task>.generator``); the
config schema (each source's task options) and ``tinymtl data fetch`` (the sources that have a
``fetch``) are read from it. ``load_tasks`` loads a config's whole ``tasks`` section, so that
tasks over one image set share its arrays; ``load_task`` loads one.
"""

from tinymtl.datasets import (
    arithmetic, files, food_graph, kindergarten, mnist, molecules, motifs, multi_mnist, shapes3,
)
from tinymtl.datasets.base import TaskData, array_digest, carve_validation, generate_text_task
from tinymtl.datasets.source import GENERATOR_VERSION, TEXT_SIZES, DataSource
from tinymtl.datasets.cache import cache_dir, load_or_generate
from tinymtl.datasets.text import VOCAB_SIZE, decode, encode

SOURCES = {source.name: source for source in (
    kindergarten.SOURCE, arithmetic.SOURCE, mnist.SOURCE, multi_mnist.SOURCE, shapes3.SOURCE,
    motifs.SOURCE, molecules.SOURCE, food_graph.SOURCE, files.ARRAYS, files.TSV, files.IMAGE_FOLDER)}


def source(name):
    """The source a config names ``name``; ValueError naming the known ones otherwise."""
    if name not in SOURCES:
        raise ValueError(f"unknown task source {name!r}; expected one of {', '.join(SOURCES)}")
    return SOURCES[name]


def load_task(name, generator, train_size=None, test_size=None, max_length=20, seed=0,
              use_cache=True, **options):
    """One task's data from the source ``generator`` (``options``: its task options, e.g.
    MNIST's digits and permutation, an image set's target)."""
    spec = dict(options, train_size=train_size, test_size=test_size)
    return source(generator).load(name, spec, max_length, seed, use_cache)


def load_tasks(specs, max_length=20, seed=0, use_cache=True, valid_fraction=0.0,
               molecule_encoder=None):
    """``{name: TaskData}`` for a config's ``tasks`` section (name -> {generator, sizes, the
    source's options, ``valid_size``}); tasks over the same image set share one array. Each
    task's validation split is ``valid_size`` of its training examples, or ``valid_fraction``
    of them (``carve_validation``, seeded by ``seed``). ``molecule_encoder``: what the food
    graph's ``compound_features`` checkpoint becomes (``food_graph.MOLECULE_ENCODER``)."""
    carved, tasks = {}, {}
    shared = {food_graph.MOLECULE_ENCODER: molecule_encoder}
    for name, spec in specs.items():
        data = source(spec["generator"]).load(name, spec, max_length, seed, use_cache, shared)
        size = spec.get("valid_size")
        if size is None:
            size = int(round(valid_fraction * len(data.y_train)))
        tasks[name] = carve_validation(data, size, seed, carved)
    return tasks


__all__ = ["TaskData", "carve_validation", "DataSource", "SOURCES", "source", "load_task",
           "load_tasks", "encode",
           "decode", "VOCAB_SIZE", "cache_dir", "array_digest", "GENERATOR_VERSION",
           "TEXT_SIZES", "generate_text_task", "load_or_generate"]
