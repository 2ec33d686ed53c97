"""The PNG plots a person looks at: what each one shows must be readable (issue #21)."""

import matplotlib.image
import numpy as np

from tinymtl.report import plots


def test_sample_grid_keeps_standardised_pixels_and_colour(tmp_path):
    """Pixels are scaled from the shown images' own range (standardised images, -0.4 to 2.8
    here, would be half white under a fixed 0..1 scale), and three channels stay in colour."""
    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 1, (20, 1, 12, 12)).astype(np.float32) * 3.2 - 0.4
    labels = np.repeat(np.arange(2), 10)
    path = plots.sample_grid(grey, labels, labels[::-1], ["a", "b"], tmp_path / "grey.png")
    pixels = matplotlib.image.imread(path)[..., :3]
    # white pixels: the figure's margins are 0.30 of it; a fixed 0..1 scale made it 0.53
    assert (pixels.min(axis=-1) > 0.99).mean() < 0.4
    colour = np.zeros((20, 3, 12, 12), np.float32)
    colour[:, 0] = 1.0  # pure red images
    path = plots.sample_grid(colour, labels, labels, ["a", "b"], tmp_path / "colour.png")
    pixels = matplotlib.image.imread(path)[..., :3]
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert red.mean() > 0.1
