"""Import image classification data into FiftyOne: image folder trees, IDX files, FiftyOne formats, sklearn digits.

Everything is read and validated before anything is written, so bad input leaves no half-written dataset
or stray files. Images end up as files on disk (in place for folders, PNGs for arrays), the ground truth is
a ``Classification`` field, and each sample carries one split tag (``train``, ``test`` or ``pool``).
Importing the same source under the same name twice is a no-op; another source under an existing name is
refused unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from active_learning.errors import DatasetExistsError, InputError
from active_learning.idx import read_idx_pair

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "test", "pool")
LABEL_FIELD = "ground_truth"
IMPORT_RUN_KEY = "curation_import"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


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


# -- planning (pure reading and validation) ---------------------------------------------------------------
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
    all_arrays, all_labels, all_splits, all_index = [], [], [], []
    rng = np.random.default_rng(seed)
    for split, (images_path, labels_path) in sorted(pairs.items()):
        images, labels = read_idx_pair(images_path, labels_path)
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
    names = list(classes) if classes else _default_idx_classes(directory, int(labels.max()) + 1)
    if labels.max() >= len(names):
        raise InputError(f"IDX labels go up to {labels.max()} but only {len(names)} class names were given.")
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


def _default_idx_classes(directory: Path, count: int) -> list[str]:
    classes_file = directory / "classes.txt"
    if classes_file.is_file():
        names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
        if len(names) >= count:
            return names
    if "fashion" in directory.resolve().name.lower() and count <= len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    return [str(i) for i in range(count)]


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
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"--data {data}: no such file or directory.")
    if path.is_file():
        if "idx" in path.name:
            path = path.parent
        else:
            raise InputError(f"--data {data} is a file; pass a folder of class subfolders, of IDX files, or a "
                             "FiftyOne export.")
    if _fiftyone_format(path):
        return str(path)
    if any("idx3-ubyte" in p.name for p in path.iterdir()):
        return plan_idx(path, classes, max_per_split, pool_fraction, seed)
    return plan_image_folder(path, test_fraction, pool_fraction, seed)


def _fiftyone_format(path: Path):
    import fiftyone as fo

    if (path / "samples.json").is_file() and (path / "metadata.json").is_file():
        return fo.types.FiftyOneDataset
    if (path / "labels.json").is_file() and (path / "data").is_dir():
        return fo.types.FiftyOneImageClassificationDataset
    return None


def _fiftyone_fingerprint(path: Path) -> str:
    """The export's location and the sizes and mtimes of its top-level files: a re-export is another source."""
    stats = {f.name: _file_stamp(f) for f in sorted(path.iterdir()) if f.is_file()}
    return _hash({"kind": "fiftyone", "path": str(path.resolve()), "files": stats})


# -- writing ---------------------------------------------------------------------------------------------
def import_dataset(
    name: str,
    data: str | None = None,
    *,
    test_fraction: float = 0.2,
    pool_fraction: float = 0.0,
    max_per_split: int | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    media_dir: str | None = None,
    progress: bool = True,
):
    """Import ``data`` as the persistent FiftyOne dataset ``name`` and return it.

    Args:
        name: dataset name.
        data: None (or ``"digits"``) for scikit-learn's bundled digits; a folder of class subfolders (or of
            ``train/``, ``test/``, ``pool/`` each holding class subfolders); a folder of IDX files; or a
            FiftyOne export (FiftyOneDataset or FiftyOneImageClassificationDataset).
        test_fraction: share of each class tagged ``test`` when the source has no test split.
        pool_fraction: share of each class's training samples tagged ``pool`` (the active-learning pool).
        max_per_split: a seeded random subset of at most this many samples per IDX file pair.
        classes: class names for IDX files (default: ``classes.txt`` beside them, Fashion-MNIST's names for a
            folder named like it, else the digits).
        seed: seed of the random splits and subsets.
        overwrite: replace an existing dataset of the same name.
        media_dir: where array images are written as PNG (default: FiftyOne's default dataset dir / name).
        progress: show progress bars.

    Raises:
        InputError: the source is missing, empty or malformed (nothing is written).
        DatasetExistsError: ``name`` exists and holds another source, and ``overwrite`` is False.
    """
    import fiftyone as fo

    plan = plan_source(data, test_fraction, pool_fraction, max_per_split, classes, seed)
    fingerprint = plan.fingerprint if isinstance(plan, ImportPlan) else _fiftyone_fingerprint(Path(plan))
    if fo.dataset_exists(name):
        existing = fo.load_dataset(name)
        if existing.info.get("curation_import_fingerprint") == fingerprint and not overwrite:
            return existing  # the same data again: nothing to do
        if not overwrite:
            raise DatasetExistsError(
                f"Dataset {name!r} already exists ({len(existing)} samples) and holds other data. "
                "Pick another --name, or pass --overwrite to replace it."
            )
    if isinstance(plan, str):
        return _import_fiftyone_format(name, Path(plan), fingerprint, overwrite)

    media_root = Path(media_dir).expanduser().resolve() if media_dir else Path(fo.config.default_dataset_dir) / name
    if plan.arrays is not None and not _replaceable_media(media_root):
        raise InputError(
            f"{media_root} already holds files that this import did not write, and it would replace the folder: "
            "pass another --media-dir (or another --name). Nothing was written."
        )
    staging_name = f"{name}.importing-{uuid.uuid4().hex[:8]}"
    staging_media = media_root.parent / f".{media_root.name}.importing-{uuid.uuid4().hex[:8]}"
    dataset = None
    try:
        if plan.arrays is not None:
            filepaths = _write_pngs(plan, staging_media, media_root, progress)
        else:
            filepaths = list(plan.filepaths or [])
        dataset = fo.Dataset(staging_name)
        dataset.default_classes = list(plan.classes)
        dataset.classes = {LABEL_FIELD: list(plan.classes)}
        samples = [
            fo.Sample(
                filepath=path,
                tags=[split],
                ground_truth=fo.Classification(label=plan.classes[label]),
                source_index=int(index),
            )
            for path, split, label, index in zip(filepaths, plan.splits, plan.labels.tolist(),
                                                  plan.source_index.tolist())
        ]
        dataset.add_samples(samples, progress=progress)
        dataset.info = {
            "curation_import_fingerprint": plan.fingerprint,
            "curation_source": plan.source_kind,
            "label_field": LABEL_FIELD,
        }
        dataset.save()
        if plan.arrays is not None:
            if media_root.exists():
                shutil.rmtree(media_root)
            staging_media.rename(media_root)
            dataset.set_values("filepath", [str(media_root / Path(p).name) for p in filepaths])
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        dataset.name = name
        dataset.persistent = True
        _record_import_run(dataset, plan)
        return dataset
    except BaseException:
        if dataset is not None and fo.dataset_exists(dataset.name) and dataset.name != name:
            dataset.delete()
        shutil.rmtree(staging_media, ignore_errors=True)
        raise


_PNG_NAME = re.compile(r"(train|test|pool)-\d{6,}\.png")


def _replaceable_media(folder: Path) -> bool:
    """Whether ``folder`` is absent, empty, or holds only PNGs named as ``_write_pngs`` names them."""
    if not folder.exists():
        return True
    return folder.is_dir() and all(p.is_file() and _PNG_NAME.fullmatch(p.name) for p in folder.iterdir())


def _write_pngs(plan: ImportPlan, staging: Path, final: Path, progress: bool) -> list[str]:
    from PIL import Image
    from tqdm import tqdm

    staging.mkdir(parents=True, exist_ok=False)
    arrays = plan.arrays
    assert arrays is not None
    paths = []
    iterator: Iterable[int] = range(len(arrays))
    if progress:
        iterator = tqdm(iterator, desc="Writing images", unit="img")
    for i in iterator:
        split = plan.splits[i]
        filename = f"{split}-{int(plan.source_index[i]):06d}.png"
        Image.fromarray(arrays[i]).save(staging / filename, compress_level=1)
        paths.append(str(staging / filename))
    return paths


def _import_fiftyone_format(name: str, path: Path, fingerprint: str, overwrite: bool):
    import fiftyone as fo

    dataset_type = _fiftyone_format(path)
    staging_name = f"{name}.importing-{uuid.uuid4().hex[:8]}"
    try:
        dataset = fo.Dataset.from_dir(dataset_dir=str(path), dataset_type=dataset_type, name=staging_name,
                                      label_field=LABEL_FIELD if dataset_type is not fo.types.FiftyOneDataset
                                      else None)
    except Exception as exc:
        if fo.dataset_exists(staging_name):
            fo.delete_dataset(staging_name)
        raise InputError(f"{path} could not be read as {dataset_type.__name__}: {exc}") from exc
    try:
        if LABEL_FIELD not in dataset.get_field_schema():
            raise InputError(f"{path} has no {LABEL_FIELD!r} field; export it with the labels in {LABEL_FIELD!r}.")
        labels = dataset.distinct(f"{LABEL_FIELD}.label")
        classes = dataset.classes.get(LABEL_FIELD) or dataset.default_classes or sorted(labels)
        dataset.default_classes = list(classes)
        dataset.classes = {**dataset.classes, LABEL_FIELD: list(classes)}
        untagged = dataset.match_tags(list(SPLITS), bool=False)
        if len(untagged):
            untagged.tag_samples("train")
        dataset.info = {**dataset.info, "curation_import_fingerprint": fingerprint,
                        "curation_source": "fiftyone", "label_field": LABEL_FIELD}
        dataset.save()
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        dataset.name = name
        dataset.persistent = True
        _record_import_run(dataset, None, source=str(path.resolve()))
        return dataset
    except BaseException:
        if fo.dataset_exists(staging_name):
            fo.delete_dataset(staging_name)
        raise


def _record_import_run(dataset, plan: ImportPlan | None, source: str | None = None) -> None:
    from active_learning.runs import record_run

    counts = dataset.count_sample_tags()
    config = {"source_kind": plan.source_kind if plan else "fiftyone", "label_field": LABEL_FIELD,
              "source": source or json.dumps(plan.details if plan else {})}
    results = {"num_samples": len(dataset), "splits": {k: int(v) for k, v in counts.items()},
               "classes": list(dataset.default_classes)}
    record_run(dataset, IMPORT_RUN_KEY, config, results)
