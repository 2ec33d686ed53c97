"""Atom salience after a run on molecules (config ``salience: {task: log_s}``): which atoms the
model's answer rests on, by attention, gradient × input and at random (``graph.salience``),
scored on every test molecule against two per-atom truths RDKit computes:

    polar atoms        TPSA contribution > 0 (Ertl 2000): AUROC and precision@k
    log P contribution Crippen's per-atom values (Wildman & Crippen 1999): Spearman's ρ

(``train.scores.salience_scores``: per molecule, then the mean). A faithful salience of a
solubility prediction should single out the polar atoms (AUROC > 0.5) and, being signed,
gradient × input should fall where log P contributions rise (ρ < 0: lipophilic atoms lower
solubility); attention is unsigned and task-blind. Random salience is the chance level.
Writes ``salience.json`` and ``salience_molecules.png`` (the first ``draw`` test molecules
with polar and non-polar atoms, atoms coloured by each salience and by the truths).
"""

import json

import numpy as np

from tinymtl.backend.random import stream
from tinymtl.errors import ConfigError
from tinymtl.files import write_text
from tinymtl.graph.salience import attention_salience, gradient_input_salience, random_salience
from tinymtl.train.scores import salience_scores

BATCH = 256


def check(config, tasks):
    """Refuse, before training, a ``salience.task`` whose data has no per-atom truth."""
    task = config["salience"]["task"]
    if task is not None and "atom_tpsa" not in tasks[task].test_attributes:
        raise ConfigError(f"salience.task = {task!r}: its data has no per-atom truth to score "
                          f"salience against; expected a molecules task")


def analyse(model, task, data, out, seed=0, draw=6):
    """Salience of ``task``'s answers on its test molecules, scored (module docstring); writes
    salience.json (and the drawing when RDKit is there); returns the scores."""
    attributes = data.test_attributes
    model.eval()
    found = {"attention": [], "gradient_x_input": [], "random": []}
    rng = stream(seed, "salience").numpy
    for start in range(0, len(data.y_test), BATCH):
        graph = data.x_test[start:start + BATCH].collate()
        found["attention"].append(attention_salience(model.backbone, graph))
        found["gradient_x_input"].append(gradient_input_salience(model, task, graph))
        found["random"].append(random_salience(graph, rng))
        model.zero_grad()
    salience = {method: np.concatenate(parts) for method, parts in found.items()}
    sizes = np.diff(data.x_test.node_ptr)
    polar = np.concatenate(attributes["atom_tpsa"]) > 0
    logp = np.concatenate(attributes["atom_logp"])
    result = {"task": task, "molecules": int(len(sizes)), "atoms": int(sizes.sum()),
              "polar_atoms": int(polar.sum()),
              "methods": {method: {f"polar_{k}" if k != "spearman" else "logp_spearman": v
                                   for k, v in salience_scores(values, sizes, polar, logp)
                                   .items()}
                          for method, values in salience.items()}}
    if draw and "smiles_position" in attributes:
        draw_some(salience, sizes, attributes, draw, out, result)
    write_text(out / "salience.json", json.dumps(result, indent=2))
    return result


def draw_some(salience, sizes, attributes, draw, out, result):
    """salience_molecules.png (module docstring), its path added to ``result``; nothing
    without RDKit (the scores do not need it)."""
    try:
        from tinymtl.report.molecules import salience_grid
    except ImportError:
        return
    ends = np.cumsum(sizes)
    # the first test molecules with polar and non-polar atoms: something to tell apart
    shown = [k for k, tpsa in enumerate(attributes["atom_tpsa"])
             if 0 < (tpsa > 0).sum() < len(tpsa)][:draw]
    names = {"attention": "attention", "gradient_x_input": "gradient × input"}
    per_molecule = {names[m]: [np.split(v, ends[:-1])[k] for k in shown]
                    for m, v in salience.items() if m in names}
    per_molecule["TPSA (polar atoms)"] = [attributes["atom_tpsa"][k] for k in shown]
    per_molecule["Crippen log P"] = [attributes["atom_logp"][k] for k in shown]
    salience_grid([attributes["smiles"][k] for k in shown], per_molecule,
                  [attributes["smiles_position"][k] for k in shown],
                  out / "salience_molecules.png")
    result["drawing"] = str(out / "salience_molecules.png")
