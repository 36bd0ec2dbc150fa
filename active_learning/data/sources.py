"""Import sources, read and validated before anything is written: the plan of an import (pure reading).

``plan_source`` turns the ``data`` setting into an ``ImportPlan`` (class names, labels, split tags, the images as
arrays or existing files, a fingerprint of the source) for the bundled digits, a folder of IDX files or a tree of
class folders; a FiftyOne export is recognised here and read by FiftyOne itself (``active_learning.data.importers``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from active_learning.data.idx import idx_class_names, read_idx_pair
from active_learning.errors import InputError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "test", "pool")


@dataclass
class ImportPlan:
    """What an import will write, fully validated: array images to encode or existing files to reference."""

    source_kind: str
    classes: list[str]
    labels: np.ndarray  # class index per sample
    splits: list[str]
    source_index: np.ndarray  # index of the sample within its source split/file
    arrays: np.ndarray | None = None  # (N, H, W) or (N, H, W, 3) uint8, written as PNG
    filepaths: list[str] | None = None  # existing files, referenced in place
    fingerprint: str = ""
    details: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def plan_digits(test_fraction: float = 0.2, pool_fraction: float = 0.0, seed: int = 0) -> ImportPlan:
    """scikit-learn's bundled 8x8 digits (1,797 real scans, no download), scaled to 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    arrays = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    splits = _random_splits(labels, test_fraction, pool_fraction, seed)
    return ImportPlan(
        source_kind="sklearn-digits",
        classes=[str(c) for c in range(10)],
        labels=labels,
        splits=splits,
        source_index=np.arange(len(labels)),
        arrays=arrays,
        fingerprint=_hash({"kind": "sklearn-digits", "test": test_fraction, "pool": pool_fraction, "seed": seed}),
    )


def find_idx_pairs(directory: Path) -> dict[str, tuple[Path, Path]]:
    """``{split: (images, labels)}`` for the IDX files in ``directory`` (train-*/t10k-* names, gz or not)."""
    pairs: dict[str, tuple[Path, Path]] = {}
    for images in sorted(directory.iterdir()):
        name = images.name
        if "images-idx3-ubyte" not in name:
            continue
        labels = directory / name.replace("images-idx3-ubyte", "labels-idx1-ubyte")
        if not labels.exists():  # the labels may be gzipped when the images are not, or the other way round
            other = labels.with_name(labels.name[:-3] if labels.name.endswith(".gz") else labels.name + ".gz")
            labels = other if other.exists() else labels
        if not labels.exists():
            raise InputError(f"IDX images file {images} has no matching labels file {labels.name} beside it.")
        split = "test" if name.startswith(("t10k", "test")) else "train"
        if split in pairs:
            raise InputError(f"{directory} holds more than one {split} IDX pair; keep one per split.")
        pairs[split] = (images, labels)
    return pairs


def plan_idx(
    directory: Path, classes: Sequence[str] | None = None, max_per_split: int | None = None,
    pool_fraction: float = 0.0, seed: int = 0,
) -> ImportPlan:
    """MNIST-style IDX files: the ``train`` pair becomes train (and pool), the ``t10k`` pair becomes test."""
    if max_per_split is not None and max_per_split < 1:
        raise InputError(f"max_per_split must be at least 1; got {max_per_split}.")
    pairs = find_idx_pairs(directory)
    if not pairs:
        raise InputError(
            f"{directory} holds no IDX files (expected names like train-images-idx3-ubyte.gz and "
            "train-labels-idx1-ubyte.gz)."
        )
    all_arrays, all_labels, all_splits, all_index, full_labels = [], [], [], [], {}
    rng = np.random.default_rng(seed)
    for split, (images_path, labels_path) in sorted(pairs.items()):
        images, labels = read_idx_pair(images_path, labels_path)
        full_labels[labels_path] = labels
        index = np.arange(len(labels))
        if max_per_split is not None and max_per_split < len(index):
            index = np.sort(rng.choice(len(index), size=max_per_split, replace=False))
        all_arrays.append(images[index])
        all_labels.append(labels[index].astype(np.int64))
        split_names = [split] * len(index)
        if split == "train" and pool_fraction > 0:
            split_names = _random_splits(labels[index], 0.0, pool_fraction, seed)
        all_splits.extend(split_names)
        all_index.append(index)
    labels = np.concatenate(all_labels)
    names = idx_class_names(directory, classes, full_labels)
    stats = {str(p): _file_stamp(p) for pair in pairs.values() for p in pair}
    return ImportPlan(
        source_kind="idx",
        classes=names,
        labels=labels,
        splits=all_splits,
        source_index=np.concatenate(all_index),
        arrays=np.concatenate(all_arrays),
        fingerprint=_hash({"kind": "idx", "files": stats, "max": max_per_split, "pool": pool_fraction, "seed": seed,
                           "classes": names}),
        details={"files": sorted(stats)},
    )


def plan_image_folder(root: Path, test_fraction: float = 0.0, pool_fraction: float = 0.0, seed: int = 0) -> ImportPlan:
    """A folder tree with one subfolder per class, or ``train/``, ``test/``, ``pool/`` folders each holding one.

    Every image is opened and verified first; any unreadable file stops the import before anything is written.
    """
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name in SPLITS]
    if split_dirs and len(split_dirs) == len(subdirs):
        layout = [(p.name, p) for p in split_dirs]
    else:
        layout = [("", root)]
    class_names = sorted({c.name for _, base in layout for c in base.iterdir() if c.is_dir()
                          and not c.name.startswith(".")})
    if not class_names:
        raise InputError(f"{root} has no class subfolders: put each class's images in a folder named after it.")
    files: list[str] = []
    labels: list[int] = []
    given_splits: list[str] = []
    for split, base in layout:
        for class_index, class_name in enumerate(class_names):
            folder = base / class_name
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                    files.append(str(path.resolve()))
                    labels.append(class_index)
                    given_splits.append(split)
    if not files:
        raise InputError(
            f"{root} has class folders ({', '.join(class_names[:5])}) but no images in them "
            f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})."
        )
    empty = [name for index, name in enumerate(class_names) if index not in set(labels)]
    if empty:  # refused, not dropped: a class folder without images is a mistake to fix, not a class to make
        raise InputError(
            f"Class folder(s) {', '.join(repr(n) for n in empty[:5])} in {root} hold no images (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}): add images, or remove the folder(s) if they are not classes. "
            "Nothing was written."
        )
    _verify_images(files)
    label_array = np.asarray(labels, dtype=np.int64)
    if layout[0][0]:
        splits = given_splits
    else:
        splits = _random_splits(label_array, test_fraction, pool_fraction, seed)
    stats = {f: _file_stamp(Path(f)) for f in files}
    return ImportPlan(
        source_kind="image-folder",
        classes=class_names,
        labels=label_array,
        splits=splits,
        source_index=np.arange(len(files)),
        filepaths=files,
        fingerprint=_hash({"kind": "folder", "files": stats, "test": test_fraction, "pool": pool_fraction,
                           "seed": seed}),
        details={"root": str(root.resolve())},
    )


def _verify_images(files: Sequence[str]) -> None:
    from PIL import Image

    bad = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as exc:  # PIL raises many types for a bad file
            bad.append(f"{path} ({type(exc).__name__})")
    if bad:
        raise InputError(
            f"{len(bad)} image(s) cannot be read, e.g. {'; '.join(bad[:3])}. Fix or remove them and import again; "
            "nothing was written."
        )


def _random_splits(labels: np.ndarray, test_fraction: float, pool_fraction: float, seed: int) -> list[str]:
    """Stratified random split tags: ``test`` and ``pool`` fractions, the rest ``train``."""
    for name, value in (("test_fraction", test_fraction), ("pool_fraction", pool_fraction)):
        if not 0.0 <= value < 1.0:
            raise InputError(f"{name} must be in [0, 1); got {value}.")
    if test_fraction + pool_fraction >= 1.0:
        raise InputError("test_fraction + pool_fraction must leave some samples for train.")
    rng = np.random.default_rng(seed)
    splits = np.array(["train"] * len(labels), dtype=object)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(test_fraction * len(members)))
        n_pool = int(round(pool_fraction * len(members)))
        splits[members[:n_test]] = "test"
        splits[members[n_test : n_test + n_pool]] = "pool"
    return splits.tolist()


def _file_stamp(path: Path) -> list:
    stat = path.stat()
    return [stat.st_size, int(stat.st_mtime)]


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_source(
    data: str | None, test_fraction: float = 0.2, pool_fraction: float = 0.0, max_per_split: int | None = None,
    classes: Sequence[str] | None = None, seed: int = 0,
) -> ImportPlan | str:
    """Plan an import from ``data``: None for the bundled digits, a folder of IDX files or of class folders.

    Returns the path as a string when ``data`` is a FiftyOne-format directory (imported by FiftyOne itself).
    """
    if data is None or data == "digits":
        return plan_digits(test_fraction, pool_fraction, seed)
    if not str(data).strip():
        raise InputError("`data` is empty: give a folder of class subfolders, of IDX files, or a FiftyOne export "
                         "(or leave it out for the bundled digits).")
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"`data` {data}: no such file or directory.")
    if path.is_file():
        if "idx" in path.name:
            path = path.parent
        else:
            raise InputError(f"`data` {data} is a file; pass a folder of class subfolders, of IDX files, or a "
                             "FiftyOne export.")
    if fiftyone_format(path):
        return str(path)
    if any("idx3-ubyte" in p.name for p in path.iterdir()):
        return plan_idx(path, classes, max_per_split, pool_fraction, seed)
    return plan_image_folder(path, test_fraction, pool_fraction, seed)


def fiftyone_format(path: Path):
    import fiftyone as fo

    if (path / "samples.json").is_file() and (path / "metadata.json").is_file():
        return fo.types.FiftyOneDataset
    if (path / "labels.json").is_file() and (path / "data").is_dir():
        return fo.types.FiftyOneImageClassificationDataset
    return None


def fiftyone_fingerprint(path: Path) -> str:
    """The export's location and the sizes and mtimes of its top-level files: a re-export is another source."""
    stats = {f.name: _file_stamp(f) for f in sorted(path.iterdir()) if f.is_file()}
    return _hash({"kind": "fiftyone", "path": str(path.resolve()), "files": stats})
