"""The three-task shapes workload: one cached image set, labelled three ways.

    target: shape         task A, 10-class shape          (classification)
    target: orientation   task B, 32 orientation bins     (classification; ``well_posed`` folds
                          each shape's symmetry out of the label, see ``shapes.orientation_bin``)
    target: intensity     task C, grey level in [0.2, 1]  (regression)

Every task of a run that names ``generator: shapes3`` with the same sizes and seed sees the very
same images (one array, shared), so a ``joint`` schedule can put each batch through all heads.
The image set is generated once per (seed, sizes) and cached as HDF5 with its sha256.
"""

import sys

import numpy as np

from tinymtl.datasets import shapes
from tinymtl.datasets.base import TaskData
from tinymtl.datasets.source import ImageSetSource
from tinymtl.datasets.cache import load_or_generate_arrays

TARGETS = ("shape", "orientation", "intensity")
SIZES = (20000, 2000)  # default train/test sizes
VERSION = 1            # bump when the generator's output changes
EXAMPLE_SHAPE = (1, shapes.SIZE, shapes.SIZE)
LABEL_BYTES = 8 + 8 + 8  # an example's shape, angle and intensity
OUTPUTS = {"shape": len(shapes.SHAPES), "orientation": shapes.ORIENTATION_BINS, "intensity": 1}


def sizes(train_size=None, test_size=None, where="shapes3"):
    """The (train, test) sizes an image set of these requested sizes has."""
    return train_size or SIZES[0], test_size or SIZES[1]


def image_set(train_size=None, test_size=None, seed=0, use_cache=True):
    """(arrays, manifest): ``{split}_{images, shape, angle, intensity}`` for train and test,
    drawn from independent streams of ``seed``."""
    train_size, test_size = sizes(train_size, test_size)
    spec = {"name": "shapes3", "generator": "shapes3", "version": VERSION, "seed": seed,
            "train_size": train_size, "test_size": test_size}

    def generate():
        arrays = {}
        streams = np.random.SeedSequence([seed, sum(map(ord, "shapes3"))]).spawn(2)
        for split, count, stream in zip(("train", "test"), (train_size, test_size), streams):
            drawn = shapes.generate(count, np.random.Generator(np.random.PCG64(stream)))
            for key in ("images", "shape", "angle", "intensity"):
                arrays[f"{split}_{key}"] = drawn[key]
        return arrays

    return load_or_generate_arrays(spec, generate, use_cache)


def labels(arrays, split, target, well_posed=False):
    if target == "shape":
        return arrays[f"{split}_shape"]
    if target == "intensity":
        return arrays[f"{split}_intensity"].astype(np.float32)
    return np.array([shapes.orientation_bin(s, a, well_posed)
                     for s, a in zip(arrays[f"{split}_shape"], arrays[f"{split}_angle"])],
                    dtype=np.int64)


def task(name, target, arrays, manifest, well_posed=False):
    """One task's TaskData over the shared image arrays (not copied)."""
    if target not in TARGETS:
        raise ValueError(f"unknown shapes3 target {target!r}; expected one of "
                         f"{', '.join(TARGETS)}")
    if target == "shape":
        classes = list(shapes.SHAPES)
    elif target == "orientation":
        classes = [f"{b * 360 / shapes.ORIENTATION_BINS:g}deg"
                   for b in range(shapes.ORIENTATION_BINS)]
    else:
        classes = []
    attributes = {split: {key: arrays[f"{split}_{key}"] for key in ("shape", "angle",
                                                                     "intensity")}
                  for split in ("train", "test")}
    return TaskData(
        name=name, classes=classes, kind="regression" if target == "intensity" else
        "classification",
        x_train=arrays["train_images"], y_train=labels(arrays, "train", target, well_posed),
        x_test=arrays["test_images"], y_test=labels(arrays, "test", target, well_posed),
        manifest=dict(manifest, target=target, well_posed=well_posed),
        train_attributes=attributes["train"], test_attributes=attributes["test"])


SOURCE = ImageSetSource("shapes3", sys.modules[__name__], well_posed=True)
