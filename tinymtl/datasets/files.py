"""A user's own data as tasks: arrays in NPZ or HDF5, text pairs in TSV, images in class folders.

Each is a ``DataSource``, named in a config like the built-in generators::

    tasks:
      sentiment: {generator: tsv, train: data/train.tsv, test: data/test.tsv}
      digits:    {generator: image_folder, root: data/digits}        # root/train/<class>/*.png
      tags:      {generator: arrays, path: data/tags.npz, kind: multilabel}

The files (paths relative to the working directory) are read when the run starts, checked
whole, and every fault is one ``DataError`` line naming the file, the key or line, what it
holds and what was expected — nothing is trained on data that is only half right. A file
never runs code: NPZ is read with ``allow_pickle=False``, HDF5 through h5py, images through
Pillow (which matplotlib already needs).

Splits: ``train`` and ``test`` are required; a ``valid`` split given in the files is the
task's official validation set and used as it is (otherwise one is carved from train like
every task's, ``data.valid_fraction``). ``train_size``/``test_size`` take a seeded random
subset of a split (in file order), never more than the file has. The manifest carries the
SHA-256 of the arrays, so a checkpoint knows which data it was trained on.
"""

import os
import zipfile

import numpy as np

from tinymtl.datasets.base import TaskData, array_digest
from tinymtl.datasets.source import DataPlan, DataSource
from tinymtl.datasets.text import encode
from tinymtl.errors import DataError, InputError, one_line
from tinymtl.options import Choice, ConfigError, Int, ListOf, Str

SPLITS = ("train", "valid", "test")
KINDS = ("classification", "multilabel", "regression", "embedding")
SUBSET_STREAM = 0x5B5E7  # the train/test_size subsets' key beside the data seed


def _subset(where, x, y, size, seed, split):
    """``size`` examples of a split, a seeded random choice kept in file order."""
    if size is None or size == len(y):
        return x, y
    if size > len(y):
        raise DataError(f"{where}: {split}_size = {size}, but the {split} split has only "
                        f"{len(y)} examples")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, len(y), SUBSET_STREAM, SPLITS.index(split)])))
    chosen = np.sort(rng.permutation(len(y))[:size])
    return x[chosen], y[chosen]


def _missing(path, what):
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or directory ({what})")


# -- labels, one check per kind --------------------------------------------------------------------
def check_labels(y, kind, where, classes=None):
    """The labels of one split as the kind trains on them (module ``task_kinds``), or a
    DataError naming ``where``: class ids in [0, C) (classification, embedding), {0, 1} per
    label (multilabel), finite numbers (regression)."""
    y = np.asarray(y)
    if kind in ("classification", "embedding"):
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(f"{where}: labels of dtype {y.dtype} and shape {y.shape}; expected "
                            f"integer class ids, one per example")
        bad = (y < 0) | ((y >= len(classes)) if classes is not None else False)
        if bad.any():
            raise DataError(f"{where}: label {int(y[bad][0])} at example "
                            f"{int(np.flatnonzero(bad)[0])}; expected class ids 0.."
                            f"{len(classes) - 1 if classes is not None else 'C-1'}")
        return y.astype(np.int64)
    if kind == "multilabel":
        if y.ndim != 2 or not np.isin(y, (0, 1)).all():
            raise DataError(f"{where}: labels of shape {y.shape}; expected 0/1 per example "
                            f"and label, shape (examples, labels)")
        return y.astype(np.float32)
    if y.ndim not in (1, 2) or y.dtype.kind not in "iuf" or not np.isfinite(y).all():
        raise DataError(f"{where}: targets of dtype {y.dtype} and shape {y.shape}; expected "
                        f"finite numbers, shape (examples,) or (examples, outputs)")
    return y.astype(np.float32)


def check_inputs(x, where):
    """Float32 inputs (an image (C, H, W), (H, W) given one channel, or a vector), or a
    DataError naming ``where``."""
    x = np.asarray(x)
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3, 4):
        raise DataError(f"{where}: inputs of dtype {x.dtype} and shape {x.shape}; expected "
                        f"numbers, one vector (N, F) or image (N, H, W) / (N, C, H, W) each")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{where}: inputs hold NaN or infinity (first at example "
                        f"{int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(1))[0])})")
    x = x.astype(np.float32)
    return x[:, None] if x.ndim == 3 else x


def make_task(name, where, kind, classes, splits, manifest, embedding_dim=None):
    """A TaskData of checked splits {split: (x, y)}, with one input shape throughout
    (``where``: the file or folder, named in errors)."""
    shapes = {split: x.shape[1:] for split, (x, _) in splits.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{where}: the splits' examples differ in shape ({shapes}); expected one")
    for split, (x, y) in splits.items():
        if len(x) != len(y):
            raise DataError(f"{where}: the {split} split has {len(x)} inputs but {len(y)} "
                            f"labels")
        if len(y) == 0:
            raise DataError(f"{where}: the {split} split is empty")
    if kind == "multilabel":
        widths = {y.shape[1] for _, y in splits.values()}
        if len(widths) != 1:
            raise DataError(f"{where}: the splits have {sorted(widths)} labels; expected one "
                            f"number")
        classes = classes or [str(k) for k in range(widths.pop())]
    arrays = [a for x_y in splits.values() for a in x_y]
    data = TaskData(name=name, classes=list(classes or []), kind=kind,
                    x_train=splits["train"][0], y_train=splits["train"][1],
                    x_test=splits["test"][0], y_test=splits["test"][1],
                    manifest=dict(manifest, sha256=array_digest(*arrays)))
    if "valid" in splits:
        data.x_valid, data.y_valid = splits["valid"]
    if embedding_dim:
        data.embedding_dim = embedding_dim
    return data


def class_names(given, labels, kind):
    """The class names: those given, or '0'..'C-1' for the labels seen (C = largest + 1)."""
    if given:
        return list(given)
    if kind in ("classification", "embedding"):
        return [str(k) for k in range(int(max(y.max() for y in labels)) + 1)]
    return []


KIND_OPTION = Choice(KINDS, default="classification", help="what the labels are "
                                                            "(train.task_kinds)")
EMBEDDING_OPTION = Int(low=1, high=2 ** 16, help="embedding tasks: the embedding's width "
                                                 "(default 32)")
CLASSES_OPTION = ListOf(Str(), help="names of the classes (labels 0..C-1), or of the labels")


# -- NPZ and HDF5 arrays ---------------------------------------------------------------------------
def _npz_header(path, key):
    """(shape, dtype) of array ``key`` in an .npz, from its header, without reading it."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(member)
    return shape, dtype


class ArraysSource(DataSource):
    """Arrays in one ``.npz`` (NumPy) or ``.h5``/``.hdf5`` file: ``x_train``, ``y_train``,
    ``x_test``, ``y_test`` and, optionally, ``x_valid``, ``y_valid`` (an official validation
    split) and ``classes`` (names). Inputs are vectors or images; labels follow ``kind``."""

    name = "arrays"
    OPTIONS = {"path": Str(required=True, help="the .npz or .h5 file"),
               "kind": KIND_OPTION, "classes": CLASSES_OPTION,
               "embedding_dim": EMBEDDING_OPTION}

    def check(self, spec, where):
        if not spec["path"].endswith((".npz", ".h5", ".hdf5")):
            raise ConfigError(f"{where}.path = {spec['path']!r}: expected a .npz, .h5 or "
                              f".hdf5 file")
        if spec.get("embedding_dim") and spec.get("kind") != "embedding":
            raise ConfigError(f"{where}.embedding_dim: only an embedding task takes it")

    def _read(self, path, keys=None):
        """{key: array} of the file (``keys``: only those; headers only: ``shapes``)."""
        _missing(path, "tasks.*.path")
        try:
            if path.endswith(".npz"):
                with np.load(path, allow_pickle=False) as f:
                    return {k: f[k] for k in f.files if keys is None or k in keys}
            import h5py

            with h5py.File(path, "r") as f:
                return {k: f[k][()] for k in f.keys()
                        if isinstance(f[k], h5py.Dataset) and (keys is None or k in keys)}
        except ValueError as error:  # an object array: it would need pickle
            raise DataError(f"{path}: {one_line(str(error))}; expected plain numeric "
                            f"arrays") from None
        except (OSError, zipfile.BadZipFile, KeyError) as error:
            kind = "NPZ" if path.endswith(".npz") else "HDF5"
            raise DataError(f"{path}: cannot be read as {kind} ({one_line(str(error))})") \
                from None

    def _shapes(self, path):
        """{key: (shape, dtype)} without reading the arrays (a memory plan)."""
        _missing(path, "tasks.*.path")
        try:
            if path.endswith(".npz"):
                with zipfile.ZipFile(path) as archive:
                    keys = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
                return {k: _npz_header(path, k) for k in keys}
            import h5py

            with h5py.File(path, "r") as f:
                return {k: (f[k].shape, f[k].dtype) for k in f.keys()
                        if isinstance(f[k], h5py.Dataset)}
        except (OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
            raise DataError(f"{path}: cannot be read ({one_line(str(error))})") from None

    @staticmethod
    def _require(path, keys):
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if key not in keys:
                raise DataError(f"{path}: no array {key!r}; expected x_train, y_train, x_test, "
                                f"y_test (x_valid, y_valid and classes optional), found "
                                f"{', '.join(sorted(keys)) or 'none'}")
        if ("x_valid" in keys) != ("y_valid" in keys):
            raise DataError(f"{path}: x_valid and y_valid come together; found only one")

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        path, kind = spec["path"], spec.get("kind") or "classification"
        arrays = self._read(path)
        self._require(path, arrays)
        names = spec.get("classes")
        if names is None and "classes" in arrays:
            names = [str(c) for c in np.asarray(arrays["classes"]).tolist()]
        splits = {}
        for split in SPLITS:
            if f"x_{split}" not in arrays:
                continue
            x = check_inputs(arrays[f"x_{split}"], f"{path}: x_{split}")
            y = check_labels(arrays[f"y_{split}"], kind, f"{path}: y_{split}",
                             names if kind == "classification" and names else None)
            splits[split] = _subset(path, x, y, spec.get(f"{split}_size"), seed, split)
        classes = class_names(names, [y for _, y in splits.values()], kind)
        manifest = {"name": task, "generator": self.name, "path": os.path.abspath(path),
                    "kind": kind, **{f"{s}_size": len(y) for s, (_, y) in splits.items()}}
        return make_task(task, path, kind, classes, splits, manifest, spec.get("embedding_dim"))

    def plan(self, spec, max_length=20, where="tasks"):
        path = spec["path"]
        shapes = self._shapes(path)
        self._require(path, shapes)
        (x_shape, _), (y_shape, _) = shapes["x_train"], shapes["y_train"]
        example = x_shape[1:] if len(x_shape) != 3 else (1,) + tuple(x_shape[1:])
        sizes = [spec.get("train_size") or x_shape[0],
                 spec.get("test_size") or shapes["x_test"][0][0]]
        kind = spec.get("kind") or "classification"
        outputs = {"embedding": spec.get("embedding_dim") or 32,
                   "multilabel": y_shape[-1], "regression": 1 if len(y_shape) == 1
                   else y_shape[-1]}.get(kind, len(spec.get("classes") or ()) or 1)
        label_bytes = 4 * int(np.prod(y_shape[1:])) if len(y_shape) > 1 else 8
        return DataPlan(tuple(example), 4 * int(np.prod(example)) + label_bytes, *sizes,
                        outputs)


# -- TSV text pairs --------------------------------------------------------------------------------
class TsvSource(DataSource):
    """Text pairs: files of ``text<TAB>label`` lines (``train``, ``test``, optional ``valid``);
    labels are class names (classification; the classes are those of the training file,
    sorted, unless ``classes`` lists them) or numbers (regression). Texts use the shared
    character vocabulary and are at most ``data.max_length`` long."""

    name = "tsv"
    inputs = "text"
    OPTIONS = {"train": Str(required=True, help="the training file"),
               "test": Str(required=True, help="the test file"),
               "valid": Str(help="an official validation file (else carved from train)"),
               "kind": Choice(("classification", "regression"), default="classification",
                              help="labels are class names, or numbers"),
               "classes": CLASSES_OPTION}

    @staticmethod
    def read(path):
        """[(text, label, line number)] of a TSV file (blank lines skipped)."""
        _missing(path, "a TSV file of text<TAB>label lines")
        pairs = []
        try:
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    line = line.rstrip("\n").rstrip("\r")
                    if not line.strip():
                        continue
                    if line.count("\t") != 1:
                        raise DataError(f"{path}:{number}: {one_line(repr(line))} has "
                                        f"{line.count(chr(9))} tabs; expected text<TAB>label")
                    text, label = line.split("\t")
                    pairs.append((text, label.strip(), number))
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({one_line(str(error))})") from None
        if not pairs:
            raise DataError(f"{path}: no text<TAB>label lines")
        return pairs

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        kind = spec.get("kind") or "classification"
        files = {split: spec[split] for split in SPLITS if spec.get(split)}
        read = {split: self.read(path) for split, path in files.items()}
        classes = list(spec.get("classes") or sorted({label for _, label, _ in read["train"]}))
        index = {name: k for k, name in enumerate(classes)}
        splits, texts = {}, {}
        for split, pairs in read.items():
            labels = []
            for text, label, number in pairs:
                where = f"{files[split]}:{number}"
                if kind == "regression":
                    try:
                        value = float(label)
                    except ValueError:
                        value = float("nan")
                    if not np.isfinite(value):
                        raise DataError(f"{where}: label {label!r}; expected a finite number")
                    labels.append(value)
                elif label not in index:
                    raise DataError(f"{where}: label {label!r} is not a class of the training "
                                    f"file; expected one of {', '.join(classes)}")
                else:
                    labels.append(index[label])
            try:
                x = encode([text for text, _, _ in pairs], max_length)
            except InputError as error:
                bad = next(n for t, _, n in pairs if _encodes_badly(t, max_length))
                raise DataError(f"{files[split]}:{bad}: {error}") from None
            y = np.array(labels, np.float32 if kind == "regression" else np.int64)
            splits[split] = _subset(files[split], x, y, spec.get(f"{split}_size"), seed, split)
            texts[split] = [t for t, _, _ in pairs]
        manifest = {"name": task, "generator": self.name, "kind": kind,
                    "files": {s: os.path.abspath(p) for s, p in files.items()}}
        data = make_task(task, files["train"], kind, classes if kind == "classification" else [],
                         splits, manifest)
        if spec.get("train_size") is None and spec.get("test_size") is None:
            data.text_train, data.text_test = texts["train"], texts["test"]
            data.text_valid = texts.get("valid", [])
        return data

    def plan(self, spec, max_length=20, where="tasks"):
        sizes = []
        for split in ("train", "test"):
            _missing(spec[split], f"{where}.{split}")
            with open(spec[split], "rb") as f:
                lines = sum(1 for line in f if line.strip())
            sizes.append(spec.get(f"{split}_size") or lines)
        outputs = len(spec.get("classes") or ()) or 1
        return DataPlan((max_length,), 8 * max_length + 8, *sizes, outputs)


def _encodes_badly(text, max_length):
    try:
        encode([text], max_length)
    except InputError:
        return True
    return False


# -- images in class folders -----------------------------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageFolderSource(DataSource):
    """Images sorted into one folder per class, torchvision's ``ImageFolder`` layout:
    ``root/train/<class>/*.png``, ``root/test/<class>/...`` and optionally ``root/valid/``.
    The classes are the training folder's subfolders, sorted. Pixels become float32 in
    [0, 1], (C, H, W), ``channels`` 1 (grey) or 3 (RGB); every image must have the size of the
    first unless ``size: [H, W]`` resizes them all."""

    name = "image_folder"
    OPTIONS = {"root": Str(required=True, help="the folder holding train/, test/ (valid/)"),
               "channels": Choice((1, 3), default=3, help="1: grey, 3: RGB"),
               "size": ListOf(Int(low=1, high=2 ** 14), help="[H, W]: resize every image")}

    def check(self, spec, where):
        if spec.get("size") is not None and len(spec["size"]) != 2:
            raise ConfigError(f"{where}.size = {spec['size']!r}: expected [height, width]")

    @staticmethod
    def listing(root, split, classes=None):
        """[(path, class index)] of a split's images, and the class names (its subfolders,
        sorted, unless ``classes`` are given: the training split's)."""
        folder = os.path.join(root, split)
        _missing(folder, f"a folder of one subfolder per class, for the {split} split")
        found = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        if not found:
            raise DataError(f"{folder}: no class subfolders; expected {folder}/<class>/<image>")
        classes = classes or found
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{os.path.join(folder, unknown[0])}: a class the training split "
                            f"does not have; expected one of {', '.join(classes)}")
        items = [(os.path.join(folder, name, file), k) for k, name in enumerate(classes)
                 if name in found
                 for file in sorted(os.listdir(os.path.join(folder, name)))
                 if file.lower().endswith(IMAGE_SUFFIXES)]
        if not items:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class "
                            f"folders")
        return items, classes

    @staticmethod
    def read_image(path, channels, size):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                if size is not None:
                    image = image.resize((size[1], size[0]), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{path}: not a readable image ({one_line(str(error))})") from None
        return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)

    def load(self, task, spec, max_length=20, seed=0, use_cache=True, shared=None):
        root, channels = spec["root"], spec.get("channels") or 3
        size = spec.get("size")
        items, classes = self.listing(root, "train")
        listings = {"train": items}
        for split in ("valid", "test"):
            if split == "test" or os.path.isdir(os.path.join(root, split)):
                listings[split] = self.listing(root, split, classes)[0]
        splits = {}
        for split, items in listings.items():
            images = []
            for path, _ in items:
                image = self.read_image(path, channels, size)
                if images and image.shape != images[0].shape:
                    raise DataError(f"{path}: {image.shape[1]}x{image.shape[2]} pixels, but "
                                    f"{items[0][0]} has {images[0].shape[1]}x"
                                    f"{images[0].shape[2]}; expected one size (or set "
                                    f"size: [H, W])")
                images.append(image)
            x, y = np.stack(images), np.array([k for _, k in items], np.int64)
            splits[split] = _subset(os.path.join(root, split), x, y,
                                    spec.get(f"{split}_size"), seed, split)
        manifest = {"name": task, "generator": self.name, "root": os.path.abspath(root),
                    "channels": channels, "size": size}
        return make_task(task, root, "classification", classes, splits, manifest)

    def plan(self, spec, max_length=20, where="tasks"):
        channels = spec.get("channels") or 3
        items, classes = self.listing(spec["root"], "train")
        test_items = self.listing(spec["root"], "test", classes)[0]
        size = spec.get("size") or self.read_image(items[0][0], channels, None).shape[1:]
        shape = (channels, *size)
        return DataPlan(shape, 4 * int(np.prod(shape)) + 8,
                        spec.get("train_size") or len(items),
                        spec.get("test_size") or len(test_items), len(classes))


ARRAYS, TSV, IMAGE_FOLDER = ArraysSource(), TsvSource(), ImageFolderSource()
