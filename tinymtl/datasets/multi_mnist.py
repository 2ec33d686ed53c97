"""MultiMNIST (Sabour et al. 2017; the two-task form of Sener & Koltun 2018), from real MNIST.

Each example overlays two MNIST digits on one 36x36 canvas:

    left digit    digit i, its 28x28 image placed at offset (dy, dx), dy, dx ∈ {0, 1, 2}: up-left
    right digit   digit j (another random image of the same split), placed 4 to 6 pixels further
                  down and 4 to 6 further right (so at 4..8): down-right
    canvas        the pixelwise maximum of the two placed images

(Sener & Koltun fix the offsets at (0, 0) and (6, 6), then resize to 28x28; here the offsets
vary a little, always keeping the right digit at least 4 pixels down and right of the left one,
so "which digit is up-left" is always decidable, and the canvas keeps its 36x36 resolution.)

    target: left    task L, the up-left digit    (10 classes)
    target: right   task R, the down-right digit  (10 classes)

The digits overlap heavily (they share at least 22x22 pixels of the canvas), so each task must
learn to read its own corner through the other digit. Both tasks label the very same images, so
a ``joint`` schedule puts each batch through both heads.

Built deterministically from the seed and the cached MNIST (``tinymtl data fetch mnist``), and
cached as HDF5 with its sha256; the cache key includes MNIST's own sha256.
"""

import sys

import numpy as np

from tinymtl.datasets import mnist
from tinymtl.datasets.base import TaskData
from tinymtl.datasets.source import ImageSetSource
from tinymtl.datasets.cache import load_or_generate_arrays

TARGETS = ("left", "right")
CANVAS = 36
LEFT_OFFSETS = (0, 2)   # the left digit's offset, each axis, inclusive
RIGHT_SHIFTS = (4, 6)   # how much further down and right the right digit sits, inclusive
EXAMPLE_SHAPE = (1, CANVAS, CANVAS)
LABEL_BYTES = 8 + 8  # the left and the right digit
OUTPUTS = {"left": len(mnist.CLASSES), "right": len(mnist.CLASSES)}
VERSION = 2


def overlay(images, labels, rng):
    """(canvases, left labels, right labels) for images (N, 1, 28, 28): image k is the left
    digit of example k, paired with a random other image as its right digit."""
    n = len(images)
    partner = (np.arange(n) + rng.integers(1, n, n)) % n  # never the image itself
    left = rng.integers(LEFT_OFFSETS[0], LEFT_OFFSETS[1] + 1, (n, 2))
    right = left + rng.integers(RIGHT_SHIFTS[0], RIGHT_SHIFTS[1] + 1, (n, 2))
    canvases = np.zeros((n, 1, CANVAS, CANVAS), dtype=np.float32)
    placed = np.zeros_like(canvases)
    for k in range(n):
        (ly, lx), (ry, rx) = left[k], right[k]
        canvases[k, 0, ly:ly + 28, lx:lx + 28] = images[k, 0]
        placed[k, 0, ry:ry + 28, rx:rx + 28] = images[partner[k], 0]
    np.maximum(canvases, placed, out=canvases)
    return canvases, labels, labels[partner]


def sizes(train_size=None, test_size=None, where="multi_mnist"):
    """The (train, test) sizes of a canvas set: MNIST's (one canvas per image) unless fewer are
    asked for; DataError when more are."""
    return mnist.split_sizes(train_size, test_size, where)


def image_set(train_size=None, test_size=None, seed=0, use_cache=True):
    """(arrays, manifest): ``{split}_{images, left, right}`` for train and test."""
    train_size, test_size = sizes(train_size, test_size)
    source = mnist.load()  # DataError with the fetch command when MNIST is not cached
    spec = {"name": "multi_mnist", "generator": "multi_mnist", "version": VERSION, "seed": seed,
            "train_size": train_size, "test_size": test_size,
            "mnist_sha256": source.manifest["sha256"]}

    def generate():
        arrays = {}
        streams = np.random.SeedSequence([seed, sum(map(ord, "multi_mnist"))]).spawn(2)
        for split, count, stream in zip(("train", "test"), (train_size, test_size), streams):
            x, y = getattr(source, f"x_{split}")[:count], getattr(source, f"y_{split}")[:count]
            images, left, right = overlay(x, y, np.random.Generator(np.random.PCG64(stream)))
            arrays.update({f"{split}_images": images, f"{split}_left": left,
                           f"{split}_right": right})
        return arrays

    return load_or_generate_arrays(spec, generate, use_cache)


def task(name, target, arrays, manifest, well_posed=False):
    """One task's TaskData over the shared canvases (not copied)."""
    if target not in TARGETS:
        raise ValueError(f"unknown multi_mnist target {target!r}; expected one of "
                         f"{', '.join(TARGETS)}")
    return TaskData(name=name, classes=list(mnist.CLASSES),
                    x_train=arrays["train_images"], y_train=arrays[f"train_{target}"],
                    x_test=arrays["test_images"], y_test=arrays[f"test_{target}"],
                    manifest=dict(manifest, target=target))


SOURCE = ImageSetSource("multi_mnist", sys.modules[__name__])
