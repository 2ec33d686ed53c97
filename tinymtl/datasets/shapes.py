"""Procedural 32x32 grayscale shapes with three labels each (the three-task workload).

    task A  shape class          10 classes (SHAPES below)
    task B  orientation bin      32 bins of 360/32 = 11.25 degrees
    task C  intensity            the shape's grey level, a number in [0.2, 1]

Each image: one shape, rotated by a uniform random angle (measured from +x towards +y, and
image rows grow downward, so angles turn clockwise on screen), scaled (radius 8-12 px), shifted
(±3 px), drawn with anti-aliased edges (4x4 supersampling of the exact coverage), plus Gaussian
pixel noise. Everything is drawn from a seeded NumPy generator, so a seed fixes the data.

Orientation is ill-posed for symmetric shapes: a square rotated by 90 degrees is the same
image, so from the pixels alone only 1 in 4 of its bins can be told apart. ``symmetry`` gives
each shape's rotational order k (0 for the circle: every angle looks alike), and
``well_posed=True`` labels the angle modulo 360/k instead, in bins of the same 11.25 degrees
(a square then uses bins 0-7, a triangle 0-10, the circle bin 0): every label is then
determined by the pixels.
"""

import math

import numpy as np

SIZE = 32
ORIENTATION_BINS = 32
SHAPES = ("circle", "square", "triangle", "rectangle", "pentagon", "hexagon", "star", "cross",
          "arrow", "semicircle")
SYMMETRY = {"circle": 0, "square": 4, "triangle": 3, "rectangle": 2, "pentagon": 5,
            "hexagon": 6, "star": 5, "cross": 4, "arrow": 1, "semicircle": 1}


def _regular(k, radius=1.0, phase=0.0):
    angles = phase + 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def outline(name):
    """The shape's polygon (unit size, pointing at angle 0), or None for the disc shapes."""
    if name in ("circle", "semicircle"):
        return None
    if name == "square":
        return _regular(4, 1.0, np.pi / 4)
    if name == "triangle":
        return _regular(3, 1.1)
    if name == "rectangle":
        return np.array([[1.0, 0.5], [-1.0, 0.5], [-1.0, -0.5], [1.0, -0.5]])
    if name == "pentagon":
        return _regular(5)
    if name == "hexagon":
        return _regular(6)
    if name == "star":
        outer, inner = _regular(5, 1.1), _regular(5, 0.45, np.pi / 5)
        return np.stack([outer, inner], axis=1).reshape(-1, 2)
    if name == "cross":
        a, b = 1.0, 0.33
        return np.array([[a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b],
                         [-b, -a], [b, -a], [b, -b], [a, -b]])
    if name == "arrow":
        return np.array([[1.1, 0.0], [0.2, 0.75], [0.2, 0.3], [-0.9, 0.3], [-0.9, -0.3],
                         [0.2, -0.3], [0.2, -0.75]])
    raise KeyError(name)


def _inside_polygon(px, py, polygon):
    """Even-odd rule, vectorised over the sample points (px, py)."""
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = polygon[-1]
    for x1, y1 in polygon:
        crosses = (y1 > py) != (y0 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (x0 - x1) * (py - y1) / (y0 - y1) + x1
        inside ^= crosses & (px < at)
        x0, y0 = x1, y1
    return inside


def render(name, angle, radius, center, intensity, size=SIZE, supersample=4):
    """One noiseless image: the shape's coverage of each pixel times its intensity."""
    offsets = (np.arange(supersample) + 0.5) / supersample
    grid = np.arange(size)[:, None] + offsets[None, :]
    ys, xs = np.meshgrid(grid.ravel(), grid.ravel(), indexing="ij")
    # rotate the sample points by -angle into the shape's own frame
    dx, dy = (xs - center[0]) / radius, (ys - center[1]) / radius
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if name == "circle":
        inside = u * u + v * v <= 1.0
    elif name == "semicircle":
        inside = (u * u + v * v <= 1.0) & (u >= -0.2)
    else:
        inside = _inside_polygon(u, v, outline(name))
    coverage = inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return (intensity * coverage).astype(np.float32)


def orientation_bin(shape, angle, well_posed=False):
    """The orientation label of ``angle`` (radians): bin = floor((angle mod P) / (2π/32)), with
    P = 2π, or P = 2π/k (the shape's symmetry period) when ``well_posed``."""
    period = 2 * np.pi
    if well_posed:
        k = SYMMETRY[SHAPES[shape]]
        if k == 0:
            return 0
        period = 2 * np.pi / k
    return int((angle % period) / (2 * np.pi) * ORIENTATION_BINS) % ORIENTATION_BINS


def generate(count, rng, well_posed=False, noise=0.05):
    """``count`` images with their labels: dict of images (N, 1, 32, 32) float32, shape,
    orientation (int64), intensity (float32) and angle (float64, radians)."""
    images = np.empty((count, 1, SIZE, SIZE), dtype=np.float32)
    shape = rng.integers(0, len(SHAPES), count)
    angle = rng.uniform(0, 2 * np.pi, count)
    radius = rng.uniform(8, 12, count)
    center = SIZE / 2 + rng.uniform(-3, 3, (count, 2))
    intensity = rng.uniform(0.2, 1.0, count).astype(np.float32)
    for n in range(count):
        images[n, 0] = render(SHAPES[shape[n]], angle[n], radius[n], center[n], intensity[n])
    images += rng.normal(0, noise, images.shape).astype(np.float32)
    orientation = np.array([orientation_bin(s, a, well_posed) for s, a in zip(shape, angle)],
                           dtype=np.int64)
    return {"images": images, "shape": shape.astype(np.int64), "orientation": orientation,
            "intensity": intensity, "angle": angle}


def orientation_bins_used(shape):
    """How many of the 32 bins can be told apart for this shape: 32/k with k-fold symmetry
    (fractional for k = 3, 5, 6, whose period is not a whole number of bins), 1 for the circle."""
    k = SYMMETRY[SHAPES[shape]]
    return 1.0 if k == 0 else ORIENTATION_BINS / k


def orientation_ceiling(shape):
    """The best accuracy any model can reach on absolute orientation bins for this shape,
    from pixels alone: with k-fold symmetry k bins look alike, so at most 1/k (circle: 1/32)."""
    k = SYMMETRY[SHAPES[shape]]
    return 1 / ORIENTATION_BINS if k == 0 else 1 / k
