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
from tinymtl.graph.salience import (
    attention_salience, edge_attention, gradient_input_salience, random_salience,
)
from tinymtl.report import tables
from tinymtl.train.scores import binary_auroc, salience_scores

BATCH = 256


def check(config, tasks):
    """Refuse, before training, a ``salience.task`` whose data has no truth to score salience
    against (per-atom contributions of molecules, or a food graph's compounds)."""
    task = config["salience"]["task"]
    if task is None:
        return
    data = tasks[task]
    if "compounds" in data.facts and data.kind != "classification":
        raise ConfigError(f"salience.task = {task!r}: salient compounds are found per class; "
                          f"expected the food classification task")
    if "atom_tpsa" not in data.test_attributes and "compounds" not in data.facts:
        raise ConfigError(f"salience.task = {task!r}: its data has no per-atom truth to score "
                          f"salience against; expected a molecules or food graph task")


def analyse(model, task, data, out, seed=0, draw=6):
    """Salience of ``task``'s answers, scored: of atoms on its test molecules (module
    docstring), or of compounds per class on a food graph (``compounds``); writes
    salience.json (and the drawing when RDKit is there); returns the scores."""
    if "compounds" in data.facts:
        return compounds(model, task, data, out, seed, draw)
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


TOP = 10  # compounds listed per class and method


def compounds(model, task, data, out, seed=0, draw=6):
    """Salient-compound discovery on a food graph. For each class c, the candidates are the
    compounds its training foods contain, and each candidate j is scored by

        attention         mean over the class-c foods i holding j of α_ij · indeg(i): the
                          attention i gives j (mean over layers and heads) against what a
                          uniform share would give it (1: no preference)
        gradient × input  of those foods' class-c logits, per food holding j
        random            U(0, 1)

    Per food, not summed over the class: a sum would rank the compounds the class's foods
    hold most often first, whatever the model does (markers are frequent within their class),
    and an untrained model would "find" them — the control that must fail. Ranked, and scored
    against the class's planted markers among the candidates (when the generator planted
    them): AUROC and precision@k (k = the class's markers among them), then the mean over
    classes. Writes salience.json (every class's top compounds, each marked planted or not),
    salient_compounds.md (the same as tables, the methods side by side) and
    salient_compounds.png (the top ``draw`` compounds of each class by attention)."""
    facts = data.facts
    graph, foods = data.x_train.graph, facts["num_foods"]
    smiles, markers, classes = facts["compounds"], facts["markers"], facts["classes"]
    model.eval()
    edge_index, alpha = edge_attention(model.backbone, graph)
    indegree = np.bincount(edge_index[1], minlength=graph.num_nodes)
    contains = (edge_index[0] >= foods) & (edge_index[1] < foods)
    rng = stream(seed, "salience").numpy
    planted = {k: name for name, ks in markers.items() for k in ks}
    result = {"task": task, "foods_used": int(len(data.y_train)), "compounds": len(smiles),
              "planted_markers": bool(markers), "methods": {}, "classes": {}}
    found = {"attention": {}, "gradient_x_input": {}, "random": {}}
    candidates = {}
    for c, name in enumerate(classes):
        own = data.x_train.nodes[data.y_train == c]
        if not len(own):
            continue
        edges = contains & np.isin(edge_index[1], own)
        held = edge_index[0][edges] - foods
        count = np.bincount(held, minlength=len(smiles))
        candidates[name] = np.flatnonzero(count)
        per_food = np.maximum(count, 1)
        attention = np.zeros(len(smiles))
        np.add.at(attention, held, alpha[edges] * indegree[edge_index[1][edges]])
        # (rounded: float32's last bits are no preference; uniform attention ties exactly)
        found["attention"][name] = np.round(attention / per_food, 5)
        found["gradient_x_input"][name] = gradient_input_salience(
            model, task, data.x_train[data.y_train == c], np.full(len(own), c))[foods:] / per_food
        model.zero_grad()
        found["random"][name] = rng.random(len(smiles))
    for method, per_class in found.items():
        scores = {}
        for name, values in per_class.items():
            among = candidates[name]
            order = among[np.argsort(-values[among], kind="stable")]
            result["classes"].setdefault(name, {})[method] = [
                {"compound": smiles[k], "score": float(values[k]), "planted": planted.get(k)}
                for k in order[:TOP]]
            positive = np.isin(among, markers.get(name, []))
            if positive.any():
                ranked = np.isin(order, markers[name])
                scores[name] = {"auroc": binary_auroc(positive, values[among]),
                                "precision_at_k": float(ranked[:positive.sum()].mean())}
        if scores:
            result["methods"][method] = {
                key: float(np.mean([v[key] for v in scores.values() if v[key] is not None]))
                for key in ("auroc", "precision_at_k")}
            result["methods"][method]["per_class"] = scores
    if draw:
        try:
            from tinymtl.report.molecules import ranked_grid
        except ImportError:
            pass
        else:
            rows = {name: [(item["compound"], f"{item['score']:.3f}"
                            + (f" · {item['planted']} marker" if item["planted"] else ""),
                            item["planted"] == name)
                           for item in listed["attention"][:draw]]
                    for name, listed in result["classes"].items()}
            ranked_grid(rows, out / "salient_compounds.png",
                        "each class's most attended compounds (red: its planted marker)")
            result["drawing"] = str(out / "salient_compounds.png")
    write_text(out / "salience.json", json.dumps(result, indent=2))
    write_text(out / "salient_compounds.md", tables.salient_compounds(result))
    return result
