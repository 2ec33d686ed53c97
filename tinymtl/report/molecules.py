"""Drawings of molecules with their atoms coloured by a per-atom value (salience, or a known
contribution), with RDKit's drawing code (the ``chem`` extra) laid out by matplotlib.

Each value set is scaled per molecule to [−1, 1] by its largest magnitude and mapped to a
diverging colour map (blue negative, white zero, red positive), so a column compares where a
method puts weight within each molecule, not magnitudes across methods.
"""

import io

import matplotlib
import numpy as np
from rdkit import Chem
from rdkit.Chem.Draw import rdMolDraw2D

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SIZE = 300  # pixels per drawing


def draw(smiles, values=None, positions=None):
    """A PNG image (an array) of the molecule ``smiles``; with ``values``, atom k of the graph
    (at place ``positions[k]`` in the SMILES) coloured by ``values[k]``."""
    mol = Chem.MolFromSmiles(smiles)
    colours = {}
    if values is not None:
        scale = float(np.abs(values).max()) or 1.0
        colour_map = plt.get_cmap("coolwarm")
        colours = {int(place): tuple(float(c) for c in colour_map(0.5 + 0.5 * value / scale)[:3])
                   for place, value in zip(positions, values)}
    drawer = rdMolDraw2D.MolDraw2DCairo(SIZE, SIZE)
    drawer.drawOptions().clearBackground = True
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol, highlightAtoms=list(colours),
                                       highlightAtomColors=colours, highlightBonds=[])
    drawer.FinishDrawing()
    return plt.imread(io.BytesIO(drawer.GetDrawingText()), format="png")


def salience_grid(smiles, per_molecule, positions, path):
    """One row per molecule, one column per value set (``per_molecule``: {name: [values of
    each molecule]}), saved as a PNG at ``path``."""
    names = list(per_molecule)
    figure, axes = plt.subplots(len(smiles), len(names), squeeze=False,
                                figsize=(2.6 * len(names), 2.6 * len(smiles)))
    for row, (text, place) in enumerate(zip(smiles, positions)):
        for column, name in enumerate(names):
            axis = axes[row, column]
            axis.imshow(draw(text, np.asarray(per_molecule[name][row], float), place))
            axis.set_axis_off()
            if row == 0:
                axis.set_title(name, fontsize=10)
    figure.suptitle("atoms coloured by each column's values, scaled per molecule "
                    "(blue < 0 < red)", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def ranked_grid(rows, path, title):
    """One row per group (``rows``: {group: [(SMILES, caption, highlighted)]}), its molecules
    drawn left to right, each captioned (a highlighted caption in red: e.g. a planted marker
    found); saved as a PNG at ``path``."""
    width = max(len(items) for items in rows.values())
    figure, axes = plt.subplots(len(rows), width, squeeze=False,
                                figsize=(2.4 * width, 2.6 * len(rows)))
    for row, (group, items) in enumerate(rows.items()):
        for column in range(width):
            axis = axes[row, column]
            axis.set_axis_off()
            if column >= len(items):
                continue
            smiles, caption, highlighted = items[column]
            axis.imshow(draw(smiles))
            axis.set_title(caption, fontsize=8, color="tab:red" if highlighted else "black")
            if column == 0:
                axis.text(-0.08, 0.5, group, transform=axis.transAxes, rotation=90,
                          va="center", ha="right", fontsize=10)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0.02, 0, 1, 0.97))
    figure.savefig(path, dpi=100)
    plt.close(figure)
