"""The food–compound graph (issue "Graphs II"): foods, the chemical compounds they contain and
their nutrients, as one heterogeneous graph — from a user's CSV files (``csv: DIR``; the
schema is in datasets/README.md) or, by default, from a generator whose answers are planted.

Nodes are the foods (node type 0), then the compounds (type 1). Edges, each pair both ways:

    type 0  contains       compound → food       edge_attr [log concentration, 0]
    type 1  contained in   food → compound       edge_attr [log concentration, 0]
    type 2  similar        compound ↔ compound   edge_attr [0, Tanimoto similarity]
                           (Morgan fingerprints, radius 2; similarity ≥ SIMILAR)

Node features: a compound's Morgan fingerprint (FINGERPRINT_BITS bits, radius 2) — or, with
``compound_features: <checkpoint>``, its embedding by a molecule encoder pretrained on the
molecules ("Graphs I"), standardised — a food's none, then the node type one-hot; so a food is
what its compounds tell the encoder.

The generator (deterministic in the data seed; its compounds are real molecules of
``tinymtl data fetch molecules``, from the pool no test split touches):

    classes     six origins, each with MARKERS marker compounds chosen by a chemical rule —
                its functional group (``MARKER_RULES``), which no other class's markers have
    a food      MARKERS_PER_FOOD of its class's markers, BACKGROUND_PER_FOOD of BACKGROUND
                background compounds (none of the six groups), and with probability
                ``cross_marker`` one marker of another class (the difficulty knob);
                concentrations log-normal, exp(N(0, 1)) (mg per 100 g)
    nutrients   NUTRIENTS amounts per 100 g: log amount = a class profile + W · (the
                concentration-weighted mean of its compounds' standardised descriptors:
                log P, TPSA, weight, rings) + N(0, 0.3²) noise

Its foods are split into train and test (TEST_FRACTION, seeded); validation is carved from
train as for every task. The tasks (``target``): ``food_class`` (classification) and
``nutrients`` (alignment: an embedding ordered like the foods' nutrient profiles, the
standardised log(1 + amount), which its head also predicts). Each class's planted markers are
kept (``FoodGraph.markers``): what salient-compound discovery is scored against.
"""

import csv
import dataclasses
import pathlib

import numpy as np

from tinymtl.datasets.base import TaskData, array_digest
from tinymtl.datasets.source import DataPlan, DataSource
from tinymtl.errors import DataError
from tinymtl.graph.batch import Graph, GraphSet
from tinymtl.graph.nodes import NodeSet
from tinymtl.options import Bool, Choice, Float, Int, Str

MARKER_RULES = {  # class: the functional group (SMARTS) its markers have, and no other's do
    "fruit": ("carboxylic acid", "[CX3](=O)[OX2H1]"),
    "spice": ("phenol", "c[OX2H1]"),
    "meat": ("primary amine", "[NX3;H2;!$(NC=O)]"),
    "seafood": ("halide", "[Cl,Br,I]"),
    "dairy": ("ester", "[CX3](=O)[OX2][#6]"),
    "vegetable": ("sulfur", "[#16]"),
}
MARKERS, MARKERS_PER_FOOD = 8, 3
BACKGROUND, BACKGROUND_PER_FOOD = 300, 12
NUTRIENTS = 12
FINGERPRINT_BITS, SIMILAR = 128, 0.6
TEST_FRACTION = 0.2
RELATIONS = ("contains", "contained_in", "similar")
FOOD, COMPOUND = 0, 1


@dataclasses.dataclass
class FoodGraph:
    """One food–compound graph and what is known of its foods (module docstring)."""

    graph: Graph
    foods: list            # names
    food_class: np.ndarray  # (foods,)
    classes: list
    nutrients: np.ndarray  # (foods, nutrients) amounts per 100 g
    nutrient_names: list
    compounds: list        # SMILES, compound k is node len(foods) + k
    markers: dict          # class -> the compounds (0-based) planted as its markers ({} for CSV)
    test: np.ndarray       # the test foods
    train: np.ndarray      # the other foods

    @property
    def num_foods(self):
        return len(self.foods)


def _rdkit():
    try:
        from rdkit import Chem, DataStructs
        from rdkit.Chem import Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors
    except ImportError:
        raise DataError("the food graph needs RDKit; install the chem extra: "
                        "pip install -e \".[chem]\"") from None
    return Chem, DataStructs, Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors


def build_graph(num_foods, contents, smiles, embed=None):
    """The heterogeneous graph of foods and compounds (module docstring) from ``contents``:
    (food, compound, concentration) triples, compounds numbered 0.. in ``smiles``. A
    compound's features are its fingerprint bits, or with ``embed`` (a function of the SMILES
    list, giving (compounds, D) vectors: a pretrained molecule encoder) those vectors, each
    column standardised over the compounds."""
    Chem, DataStructs, _, _, fingerprints, _ = _rdkit()
    generator = fingerprints.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    bits = [generator.GetFingerprint(m) for m in mols]
    if embed is None:
        features = np.array([list(fingerprint) for fingerprint in bits], np.float32)
    else:
        features = np.asarray(embed(list(smiles)), np.float64)
        spread = features.std(0)
        features = ((features - features.mean(0)) / np.where(spread > 0, spread, 1.0))
    width = features.shape[1]
    n = num_foods + len(smiles)
    x = np.zeros((n, width + 2), np.float32)
    x[:num_foods, width + FOOD] = 1
    x[num_foods:, width + COMPOUND] = 1
    x[num_foods:, :width] = features
    food, compound, concentration = (np.array(c) for c in zip(*contents))
    compound_node = num_foods + compound.astype(np.int64)
    log_c = np.log(concentration.astype(np.float64)).astype(np.float32)
    similar = [(a, b, s) for a in range(len(bits)) for b, s in enumerate(
        DataStructs.BulkTanimotoSimilarity(bits[a], bits[a + 1:]), start=a + 1) if s >= SIMILAR]
    pairs_a = np.array([num_foods + a for a, _, _ in similar], np.int64)
    pairs_b = np.array([num_foods + b for _, b, _ in similar], np.int64)
    tanimoto = np.array([s for _, _, s in similar], np.float32)
    sources = np.concatenate([compound_node, food, pairs_a, pairs_b])
    targets = np.concatenate([food, compound_node, pairs_b, pairs_a])
    edge_type = np.concatenate([np.full(len(food), 0), np.full(len(food), 1),
                                np.full(2 * len(similar), 2)]).astype(np.int64)
    edge_attr = np.zeros((len(sources), 2), np.float32)
    edge_attr[:2 * len(food), 0] = np.concatenate([log_c, log_c])
    edge_attr[2 * len(food):, 1] = np.concatenate([tanimoto, tanimoto])
    node_type = np.concatenate([np.full(num_foods, FOOD), np.full(len(smiles), COMPOUND)])
    return Graph(x=x, edge_index=np.stack([sources, targets]), edge_attr=edge_attr,
                 edge_type=edge_type, node_type=node_type.astype(np.int64))


def descriptors(smiles):
    """(compounds, 4) standardised log P, TPSA, weight and ring count."""
    Chem, _, Crippen, Descriptors, _, rdMolDescriptors = _rdkit()
    values = []
    for text in smiles:
        mol = Chem.MolFromSmiles(text)
        values.append([Crippen.MolLogP(mol), rdMolDescriptors.CalcTPSA(mol),
                       Descriptors.MolWt(mol), rdMolDescriptors.CalcNumRings(mol)])
    values = np.array(values, np.float64)
    spread = values.std(0)
    return (values - values.mean(0)) / np.where(spread > 0, spread, 1.0)


def split_foods(num_foods, seed):
    """(train foods, test foods): a seeded TEST_FRACTION of the foods held out."""
    order = np.random.Generator(np.random.PCG64([seed, num_foods, 4242])).permutation(num_foods)
    held = int(round(TEST_FRACTION * num_foods))
    return np.sort(order[held:]), np.sort(order[:held])


def generate(num_foods=600, cross_marker=0.1, seed=0, embed=None):
    """A food graph with planted markers (module docstring), from the molecules cache
    (``embed``: compound features from a molecule encoder, ``build_graph``)."""
    from tinymtl.datasets import molecules

    Chem = _rdkit()[0]
    pool = molecules.pool_molecules(keys=("smiles",))["smiles"]
    patterns = {name: Chem.MolFromSmarts(rule) for name, (_, rule) in MARKER_RULES.items()}
    matching = {name: [] for name in MARKER_RULES}
    background = []
    for index, text in enumerate(pool):
        mol = Chem.MolFromSmiles(text)
        if mol is None or mol.GetNumAtoms() < 3:
            continue
        hits = [name for name, pattern in patterns.items() if mol.HasSubstructMatch(pattern)]
        if len(hits) == 1:
            matching[hits[0]].append(index)
        elif not hits:
            background.append(index)
    rng = np.random.Generator(np.random.PCG64([seed, num_foods, 2718]))
    classes = list(MARKER_RULES)
    # (a small molecules set — the tests' stand-ins — gives fewer of each, never fewer than 2)
    per_class = min(MARKERS, *(len(matching[name]) for name in classes))
    backgrounds = min(BACKGROUND, len(background))
    if per_class < 2 or backgrounds < 2:
        raise DataError(f"the molecules cache has too few molecules for the food graph "
                        f"({per_class} markers of some class, {backgrounds} background; "
                        f"expected 2 at least); run `tinymtl data fetch molecules`")
    own_per_food = min(MARKERS_PER_FOOD, per_class)
    background_per_food = min(BACKGROUND_PER_FOOD, backgrounds)
    chosen = {name: list(rng.choice(matching[name], per_class, replace=False))
              for name in classes}
    chosen_background = list(rng.choice(background, backgrounds, replace=False))
    compounds = [pool[k] for name in classes for k in chosen[name]] + \
        [pool[k] for k in chosen_background]
    markers = {name: list(range(c * per_class, (c + 1) * per_class))
               for c, name in enumerate(classes)}
    first_background = len(classes) * per_class
    food_class = rng.integers(0, len(classes), num_foods)
    contents = []
    for food, label in enumerate(food_class):
        own = rng.choice(markers[classes[label]], own_per_food, replace=False)
        held = list(own) + list(first_background + rng.choice(backgrounds, background_per_food,
                                                               replace=False))
        if rng.random() < cross_marker:
            other = (label + 1 + rng.integers(0, len(classes) - 1)) % len(classes)
            held.append(int(rng.choice(markers[classes[other]])))
        for compound in held:
            contents.append((food, int(compound), float(np.exp(rng.normal()))))
    graph = build_graph(num_foods, contents, compounds, embed)
    described = descriptors(compounds)
    profile = rng.normal(size=(len(classes), NUTRIENTS))
    weights = rng.normal(scale=0.5, size=(described.shape[1], NUTRIENTS))
    mixed = np.zeros((num_foods, described.shape[1]))
    total = np.zeros(num_foods)
    for food, compound, concentration in contents:
        mixed[food] += concentration * described[compound]
        total[food] += concentration
    log_amount = profile[food_class] + (mixed / total[:, None]) @ weights + \
        rng.normal(scale=0.3, size=(num_foods, NUTRIENTS))
    train, test = split_foods(num_foods, seed)
    return FoodGraph(graph=graph, foods=[f"food {k}" for k in range(num_foods)],
                     food_class=food_class.astype(np.int64), classes=classes,
                     nutrients=np.exp(log_amount).astype(np.float32),
                     nutrient_names=[f"nutrient {k}" for k in range(NUTRIENTS)],
                     compounds=compounds, markers=markers, test=test, train=train)


def _rows(path, columns):
    """The rows of a CSV file with (at least) ``columns``, as dicts; DataError naming the file
    otherwise."""
    if not path.exists():
        raise DataError(f"{path}: missing; a food graph folder holds foods.csv, contents.csv "
                        f"and nutrients.csv (datasets/README.md)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r}; expected the columns "
                            f"{', '.join(columns)}")
        return list(reader)


def _number(value, path, line, column):
    try:
        number = float(value)
    except (TypeError, ValueError):  # (TypeError: a row cut short, the value missing)
        number = float("nan")
    if not np.isfinite(number) or number < 0:
        raise DataError(f"{path}: line {line}: {column} = {value!r}; expected a number ≥ 0")
    return number


def read_csv(directory, seed=0, embed=None):
    """A food graph from a user's CSV files (schema: datasets/README.md; ``embed``:
    ``build_graph``'s)."""
    Chem = _rdkit()[0]
    directory = pathlib.Path(directory)
    foods = _rows(directory / "foods.csv", ("id", "name", "class"))
    index = {row["id"]: k for k, row in enumerate(foods)}
    if len(index) != len(foods):
        raise DataError(f"{directory / 'foods.csv'}: a food id appears twice; expected each once")
    classes = sorted({row["class"] for row in foods})
    compounds, compound_index, contents = [], {}, []
    path = directory / "contents.csv"
    for line, row in enumerate(_rows(path, ("food_id", "compound", "concentration")), start=2):
        if row["food_id"] not in index:
            raise DataError(f"{path}: line {line}: food_id {row['food_id']!r} is not in "
                            f"foods.csv")
        key = row["compound"]
        if key not in compound_index:
            mol = Chem.MolFromSmiles(key)
            if mol is None:
                raise DataError(f"{path}: line {line}: compound {key!r} is not a SMILES RDKit "
                                f"can read")
            compound_index[key] = len(compounds)
            compounds.append(Chem.MolToSmiles(mol))
        amount = _number(row["concentration"], path, line, "concentration")
        contents.append((index[row["food_id"]], compound_index[key], max(amount, 1e-6)))
    path = directory / "nutrients.csv"
    rows = _rows(path, ("food_id", "nutrient", "amount"))
    names = sorted({row["nutrient"] for row in rows})
    nutrients = np.zeros((len(foods), len(names)), np.float32)
    for line, row in enumerate(rows, start=2):
        if row["food_id"] not in index:
            raise DataError(f"{path}: line {line}: food_id {row['food_id']!r} is not in "
                            f"foods.csv")
        nutrients[index[row["food_id"]], names.index(row["nutrient"])] = _number(
            row["amount"], path, line, "amount")
    train, test = split_foods(len(foods), seed)
    return FoodGraph(graph=build_graph(len(foods), contents, compounds, embed),
                     foods=[row["name"] for row in foods],
                     food_class=np.array([classes.index(row["class"]) for row in foods]),
                     classes=classes, nutrients=nutrients, nutrient_names=names,
                     compounds=compounds, markers={}, test=test, train=train)


def ego_graphs(food_graph):
    """Each food's own small graph — the food, the compounds it contains, the edges between
    them (both directions of *contains*, and *similar* between its compounds) — as a
    GraphSet: what pretraining contrasts (``runs.pretrain`` with ``data.source: food_graph``),
    with the labels nowhere."""
    graph, foods = food_graph.graph, food_graph.num_foods
    source, target = graph.edge_index
    members = [[food] for food in range(foods)]
    for compound, food in graph.edge_index[:, graph.edge_type == 0].T:
        members[int(food)].append(int(compound))
    made = []
    for nodes in members:
        nodes = np.array(nodes, np.int64)
        inside = np.isin(source, nodes) & np.isin(target, nodes)
        number = {int(n): k for k, n in enumerate(nodes)}
        local = np.array([[number[int(a)] for a in source[inside]],
                          [number[int(b)] for b in target[inside]]], np.int64).reshape(2, -1)
        made.append(Graph(x=graph.x[nodes], edge_index=local, edge_attr=graph.edge_attr[inside],
                          edge_type=graph.edge_type[inside], node_type=graph.node_type[nodes]))
    return GraphSet.from_graphs(made)


def nutrient_profiles(food_graph):
    """(foods, nutrients) standardised log(1 + amount), mean and spread of the training foods."""
    logs = np.log1p(food_graph.nutrients.astype(np.float64))
    mean, spread = logs[food_graph.train].mean(0), logs[food_graph.train].std(0)
    return ((logs - mean) / np.where(spread > 0, spread, 1.0)).astype(np.float32)


TARGETS = {"food_class": "classification", "nutrients": "alignment"}
EMBEDDING_DIM = 32
# the key of ``load``'s shared dict under which a run hands the sources a molecule encoder
# factory: path -> (SMILES list -> (n, D) vectors) (runs.setup.molecule_encoder; it loads a
# checkpoint, which this layer cannot)
MOLECULE_ENCODER = "molecule_encoder"


def compound_encoder(path, factory):
    """The function embedding compounds for ``compound_features: path``; DataError (one line)
    when no encoder can be made here or the file is missing."""
    if factory is None:
        raise DataError(f"compound_features = {path!r}: embedding compounds needs a run's "
                        f"molecule encoder (tinymtl run); expected 'fingerprint' here")
    if not pathlib.Path(path).exists():
        raise DataError(f"compound_features = {path!r}: no such checkpoint; expected "
                        f"'fingerprint' or a molecule pretraining's checkpoint.h5 (tinymtl "
                        f"pretrain examples/molecules_pretrain.yaml)")
    return factory(path)


class FoodGraphSource(DataSource):
    """The food graph's tasks (module docstring): ``target`` is ``food_class`` or
    ``nutrients``; tasks of one config with the same options share one graph and its foods."""

    name = "food_graph"
    inputs = "graphs"
    shared_inputs = True
    OPTIONS = {
        "target": Choice(tuple(TARGETS), required=True,
                         help="the food's class, or its nutrient profile (alignment)"),
        "foods": Int(default=600, low=10, high=10 ** 6,
                     help="how many foods the generator makes"),
        "cross_marker": Float(default=0.1, low=0.0, high=1.0,
                              help="the chance a generated food holds another class's marker"),
        "csv": Str(help="a folder of foods.csv, contents.csv, nutrients.csv (instead of the "
                        "generator)"),
        "compound_features": Str(
            default="fingerprint",
            help="fingerprint (Morgan bits), or the checkpoint of a molecule pretraining "
                 "(tinymtl pretrain examples/molecules_pretrain.yaml) whose encoder embeds "
                 "each compound"),
        "shuffle_labels": Bool(default=False,
                               help="a control: the training foods' targets permuted (seeded), "
                                    "so nothing can be learned; test targets stay true"),
    }

    def food_graph(self, spec, seed, shared):
        foods = spec.get("foods") or self.OPTIONS["foods"].default
        cross = spec.get("cross_marker")
        cross = self.OPTIONS["cross_marker"].default if cross is None else cross
        features = spec.get("compound_features") or "fingerprint"
        key = (self.name, spec.get("csv"), foods, cross, features, seed)
        if key not in shared:
            embed = None if features == "fingerprint" else \
                compound_encoder(features, shared.get(MOLECULE_ENCODER))
            made = read_csv(spec["csv"], seed, embed) if spec.get("csv") else \
                generate(foods, cross, seed, embed)
            shared[key] = (made, NodeSet(made.graph, made.train), NodeSet(made.graph, made.test))
        return shared[key]

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        shared = {} if shared is None else shared
        made, x_train, x_test = self.food_graph(spec, seed, shared)
        target = spec["target"]
        if target == "food_class":
            y = made.food_class.copy()
        else:
            y = nutrient_profiles(made)
        if spec.get("shuffle_labels"):  # the control: train targets no longer fit the foods
            rng = np.random.Generator(np.random.PCG64([seed, len(made.train), 31415]))
            y[made.train] = y[made.train][rng.permutation(len(made.train))]
        manifest = {"name": task, "generator": self.name, "target": target,
                    "source": spec.get("csv") or "generated", "seed": seed,
                    "shuffled_labels": bool(spec.get("shuffle_labels")),
                    "foods": made.num_foods, "compounds": len(made.compounds),
                    "train_size": len(x_train), "test_size": len(x_test),
                    "sha256": array_digest(*x_train.arrays(), x_test.nodes, y)}
        if target == "nutrients":
            manifest["profile"] = list(made.nutrient_names)
        return TaskData(
            name=task, kind=TARGETS[target], classes=list(made.classes)
            if target == "food_class" else [], x_train=x_train, y_train=y[made.train],
            x_test=x_test, y_test=y[made.test], manifest=manifest,
            embedding_dim=EMBEDDING_DIM,
            train_attributes={"food": made.train, "class": made.food_class[made.train]},
            test_attributes={"food": made.test, "class": made.food_class[made.test]},
            facts={"num_foods": made.num_foods, "compounds": made.compounds,
                   "markers": made.markers, "classes": made.classes})

    def plan(self, spec, max_length=20, where="tasks"):
        foods = spec.get("foods") or self.OPTIONS["foods"].default
        compounds = len(MARKER_RULES) * MARKERS + BACKGROUND
        features = FINGERPRINT_BITS + 2
        graph_bytes = 4 * (foods + compounds) * features + 24 * foods * 16 * 2
        test = int(round(TEST_FRACTION * foods))
        outputs = len(MARKER_RULES) if spec["target"] == "food_class" else \
            EMBEDDING_DIM + NUTRIENTS
        return DataPlan((features,), graph_bytes // foods + 8, foods - test, test, outputs,
                        shared=(self.name, foods), edge_features=2, relations=len(RELATIONS))


SOURCE = FoodGraphSource()
