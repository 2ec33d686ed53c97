"""The procedural shapes: deterministic, and every label is what the pixels show."""

import math

import numpy as np
import pytest

from tinymtl.datasets import shapes

BIN = 2 * math.pi / shapes.ORIENTATION_BINS


def test_same_seed_same_images():
    a = shapes.generate(20, np.random.default_rng(5))
    b = shapes.generate(20, np.random.default_rng(5))
    c = shapes.generate(20, np.random.default_rng(6))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["images"], c["images"])
    assert a["images"].shape == (20, 1, 32, 32) and a["images"].dtype == np.float32


def test_intensity_label_is_the_shape_grey_level():
    data = shapes.generate(30, np.random.default_rng(1), noise=0.0)
    for image, intensity in zip(data["images"][:, 0], data["intensity"]):
        assert image.max() == pytest.approx(intensity, abs=1e-6)  # fully covered pixels


@pytest.mark.parametrize("name", ["arrow", "semicircle"])
def test_rendered_orientation_matches_the_label(name):
    """An asymmetric shape matches the template drawn at its own bin's centre better than the
    template of any other bin (angles kept 1.5 degrees away from bin edges)."""
    rng = np.random.default_rng(2)
    shape = shapes.SHAPES.index(name)
    center, radius, intensity = (16.0, 15.5), 11.0, 1.0
    templates = [shapes.render(name, (b + 0.5) * BIN, radius, center, intensity)
                 for b in range(shapes.ORIENTATION_BINS)]
    margin = math.radians(1.5)
    for _ in range(12):
        b = int(rng.integers(shapes.ORIENTATION_BINS))
        angle = b * BIN + rng.uniform(margin, BIN - margin)
        label = shapes.orientation_bin(shape, angle)
        image = shapes.render(name, angle, radius, center, intensity)
        distances = [np.abs(image - t).sum() for t in templates]
        assert label == b == int(np.argmin(distances))


@pytest.mark.parametrize("name", [n for n in shapes.SHAPES if shapes.SYMMETRY[n] > 1])
def test_symmetry_orders_are_right(name):
    """Rotating by 360/k gives the same image; by half of that, a different one."""
    k = shapes.SYMMETRY[name]
    args = (11.0, (16.0, 16.0), 1.0)
    base = shapes.render(name, 0.3, *args)
    same = shapes.render(name, 0.3 + 2 * math.pi / k, *args)
    other = shapes.render(name, 0.3 + math.pi / k, *args)
    assert np.abs(base - same).max() < 1e-6
    assert np.abs(base - other).sum() > 5.0


def test_well_posed_labels_fold_symmetric_angles():
    square = shapes.SHAPES.index("square")
    angle = 0.2
    assert shapes.orientation_bin(square, angle, well_posed=True) == shapes.orientation_bin(
        square, angle + math.pi / 2, well_posed=True)
    assert shapes.orientation_bin(square, angle) != shapes.orientation_bin(square, angle + math.pi / 2)
    assert shapes.orientation_bin(shapes.SHAPES.index("circle"), 1.0, well_posed=True) == 0
    assert shapes.orientation_ceiling(square) == 0.25
    assert shapes.orientation_ceiling(shapes.SHAPES.index("arrow")) == 1.0
    assert shapes.orientation_ceiling(shapes.SHAPES.index("circle")) == 1 / 32
