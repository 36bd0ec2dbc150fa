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
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from active_learning.errors import DataError, DatasetExistsError, InputError
from active_learning import idx
from active_learning.idx import idx_class_names, read_idx_pair

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "test", "pool")
FASHION_MNIST_CLASSES = idx.FASHION_MNIST_CLASSES
LABEL_FIELD = "ground_truth"
IMPORT_RUN_KEY = "curation_import"


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
        raise InputError("--data is empty: give a folder of class subfolders, of IDX files, or a FiftyOne export "
                         "(or leave it out for the bundled digits).")
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

    Crash-safe (``active_learning.import_commit``): the new dataset and its images are built under staging names
    and swapped in at the end, so a killed import leaves the old dataset with all its files, and the next import
    removes or finishes what it left. One import per name at a time (the dataset's writer lease).

    Args:
        name: dataset name (FiftyOne's rules, and no path separators: it names the media folder).
        data: None (or ``"digits"``) for scikit-learn's bundled digits; a folder of class subfolders (or of
            ``train/``, ``test/``, ``pool/`` each holding class subfolders); a folder of IDX files; or a
            FiftyOne export (FiftyOneDataset or FiftyOneImageClassificationDataset).
        test_fraction: share of each class tagged ``test`` when the source has no test split.
        pool_fraction: share of each class's training samples tagged ``pool`` (the active-learning pool).
        max_per_split: a seeded random subset of at most this many samples per IDX file pair.
        classes: class names for IDX files (default: ``classes.txt`` beside them, Fashion-MNIST's names for a
            folder named like it, else the digits 0..max label).
        seed: seed of the random splits and subsets.
        overwrite: replace an existing dataset of the same name.
        media_dir: where array images are written as PNG (default: FiftyOne's default dataset dir / name).
        progress: show progress bars.

    Raises:
        InputError: the name or the source is bad: missing, empty or malformed (nothing is written).
        DatasetExistsError: ``name`` exists and holds another source, and ``overwrite`` is False.
        DatasetBusyError: another process is importing into (or otherwise changing) ``name``.
        DataError: ``name`` holds this source but image files it references are missing and cannot be rewritten.
    """
    import fiftyone as fo

    from active_learning import import_commit
    from active_learning.faults import pause_point
    from active_learning.lease import writer_lease

    import_commit.validate_dataset_name(name)
    plan = plan_source(data, test_fraction, pool_fraction, max_per_split, classes, seed)
    fingerprint = plan.fingerprint if isinstance(plan, ImportPlan) else _fiftyone_fingerprint(Path(plan))
    media_root = None
    if isinstance(plan, ImportPlan) and plan.arrays is not None:
        media_root = Path(media_dir).expanduser().resolve() if media_dir else Path(fo.config.default_dataset_dir) / name
    with writer_lease(name, "curation import"):
        for line in import_commit.recover(name):
            logger.warning("Recovered: %s.", line)
        if fo.dataset_exists(name):
            existing = fo.load_dataset(name)
            if existing.info.get("curation_import_fingerprint") == fingerprint and not overwrite:
                _restore_missing_files(existing, plan)
                return existing  # the same data again: nothing to do
            if not overwrite:
                by = existing.info.get("curation_imported_by")
                raise DatasetExistsError(
                    f"Dataset {name!r} already exists ({len(existing)} samples"
                    + (f", imported by {by}" if by else "") + ") and holds other data. "
                    "Pick another --name, or pass --overwrite to replace it."
                )
        if media_root is not None and not _replaceable_media(media_root):
            raise InputError(
                f"{media_root} already holds files that this import did not write, and it would replace the folder: "
                "pass another --media-dir (or another --name). Nothing was written."
            )
        owner = _media_owner(media_root) if media_root is not None else None
        if owner not in (None, name) and fo.dataset_exists(owner):
            raise InputError(f"{media_root} holds the images of dataset {owner!r}, and this import would replace "
                             "them: pass another --media-dir (or another --name). Nothing was written.")
        journal = import_commit.begin(name, media_root, replace=overwrite)
        try:
            if isinstance(plan, str):
                _build_from_fiftyone_format(journal.staging_dataset, Path(plan), fingerprint)
            else:
                _build(name, journal.staging_dataset, plan, media_root, journal.staging_media, progress)
            pause_point("import:before-swap")
            return import_commit.commit(journal)
        except BaseException:
            try:  # uncommitted: delete the staging; committed (interrupted mid-swap): finish the swap
                import_commit.settle(journal)
            except Exception:  # noqa: BLE001 - the journal stays; the next import settles it
                logger.exception("Could not settle the interrupted import of %r; the next import will.", name)
            raise


def _build(name: str, staging_name: str, plan: ImportPlan, media_root: Path | None, staging_media: str | None,
           progress: bool):
    """The complete new dataset ``name`` under ``staging_name`` (its PNGs in ``staging_media``), run recorded."""
    import fiftyone as fo

    if plan.arrays is not None:
        filepaths = _write_pngs(name, plan, Path(staging_media), media_root, progress)
    else:
        filepaths = list(plan.filepaths or [])
    dataset = fo.Dataset(staging_name, persistent=True)
    dataset.default_classes = list(plan.classes)
    dataset.classes = {LABEL_FIELD: list(plan.classes)}
    samples = [
        fo.Sample(filepath=path, tags=[split], ground_truth=fo.Classification(label=plan.classes[label]),
                  source_index=int(index))
        for path, split, label, index in zip(filepaths, plan.splits, plan.labels.tolist(), plan.source_index.tolist())
    ]
    dataset.add_samples(samples, progress=progress)
    dataset.info = {"curation_import_fingerprint": plan.fingerprint, "curation_source": plan.source_kind,
                    "label_field": LABEL_FIELD, "curation_imported_by": _importer()}
    dataset.save()
    _record_import_run(dataset, plan)
    return dataset


def _importer() -> str:
    import socket

    from active_learning.runs import now_utc

    return f"pid {os.getpid()} on {socket.gethostname()} at {now_utc()}"


def _restore_missing_files(dataset, plan: ImportPlan | str) -> None:
    """Check that every file ``dataset`` references exists; rewrite missing PNGs of an array source in place.

    Raises:
        DataError: files are missing and the source does not hold them (an image folder, an export).
    """
    paths = dataset.values("filepath")
    missing = [p for p in paths if not os.path.isfile(p)]
    if not missing:
        return
    rows = {}
    if isinstance(plan, ImportPlan) and plan.arrays is not None:
        rows = {_png_name(plan, i): i for i in range(len(plan))}
    if not rows or any(Path(p).name not in rows for p in missing):
        raise DataError(
            f"Dataset {dataset.name!r} holds this source, but {len(missing)} of its {len(paths)} image files are "
            f"missing (e.g. {missing[0]}) and the source does not hold them: restore them (from a backup, or "
            "export again), then import again."
        )
    from PIL import Image

    for path in missing:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        Image.fromarray(plan.arrays[rows[target.name]]).save(partial, format="PNG", compress_level=1)
        os.replace(partial, target)
    for folder in {Path(p).parent for p in missing}:
        if _media_owner(folder) is None:
            (folder / MEDIA_OWNER_FILE).write_text(dataset.name + "\n")
    logger.warning("Dataset %r already held this source, but %d of its %d image files were missing: rewrote them "
                   "from the source.", dataset.name, len(missing), len(paths))


_PNG_NAME = re.compile(r"(train|test|pool)-\d{6,}\.png(\.partial)?")
MEDIA_OWNER_FILE = ".curation-dataset"  # in a PNG folder: the name of the dataset whose images it holds


def _png_name(plan: ImportPlan, row: int) -> str:
    return f"{plan.splits[row]}-{int(plan.source_index[row]):06d}.png"


def _replaceable_media(folder: Path) -> bool:
    """Whether ``folder`` is absent, empty, or holds only PNGs named as ``_write_pngs`` names them."""
    if not folder.exists():
        return True
    return folder.is_dir() and all(p.is_file() and (_PNG_NAME.fullmatch(p.name) or p.name == MEDIA_OWNER_FILE)
                                   for p in folder.iterdir())


def _media_owner(folder: Path) -> str | None:
    """The dataset whose PNGs ``folder`` holds (None: unknown, e.g. written before the owner file existed)."""
    try:
        return (folder / MEDIA_OWNER_FILE).read_text().strip() or None
    except OSError:
        return None


def _write_pngs(name: str, plan: ImportPlan, staging: Path, final: Path, progress: bool) -> list[str]:
    """Write the PNGs into ``staging``; returns their paths once ``staging`` is renamed to ``final``."""
    from PIL import Image
    from tqdm import tqdm

    staging.mkdir(parents=True, exist_ok=False)
    (staging / MEDIA_OWNER_FILE).write_text(name + "\n")
    arrays = plan.arrays
    assert arrays is not None
    paths = []
    iterator: Iterable[int] = range(len(arrays))
    if progress:
        iterator = tqdm(iterator, desc="Writing images", unit="img")
    for i in iterator:
        filename = _png_name(plan, i)
        Image.fromarray(arrays[i]).save(staging / filename, compress_level=1)
        paths.append(str(final / filename))
    return paths


def _build_from_fiftyone_format(staging_name: str, path: Path, fingerprint: str):
    import fiftyone as fo

    dataset_type = _fiftyone_format(path)
    try:
        dataset = fo.Dataset.from_dir(dataset_dir=str(path), dataset_type=dataset_type, name=staging_name,
                                      persistent=True, label_field=LABEL_FIELD
                                      if dataset_type is not fo.types.FiftyOneDataset else None)
    except Exception as exc:
        raise InputError(f"{path} could not be read as {dataset_type.__name__}: {exc}") from exc
    if LABEL_FIELD not in dataset.get_field_schema():
        raise InputError(f"{path} has no {LABEL_FIELD!r} field; export it with the labels in {LABEL_FIELD!r}.")
    files = dataset.values("filepath")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise InputError(f"{len(missing)} of the {len(files)} images of the export {path} are missing (e.g. "
                         f"{missing[0]}): export it again with its media. Nothing was written.")
    labels = dataset.distinct(f"{LABEL_FIELD}.label")
    classes = dataset.classes.get(LABEL_FIELD) or dataset.default_classes or sorted(labels)
    dataset.default_classes = list(classes)
    dataset.classes = {**dataset.classes, LABEL_FIELD: list(classes)}
    untagged = dataset.match_tags(list(SPLITS), bool=False)
    if len(untagged):
        untagged.tag_samples("train")
    dataset.info = {**dataset.info, "curation_import_fingerprint": fingerprint, "curation_source": "fiftyone",
                    "label_field": LABEL_FIELD, "curation_imported_by": _importer()}
    dataset.save()
    _record_import_run(dataset, None, source=str(path.resolve()))
    return dataset


def _record_import_run(dataset, plan: ImportPlan | None, source: str | None = None) -> None:
    from active_learning.runs import record_run

    counts = dataset.count_sample_tags()
    config = {"source_kind": plan.source_kind if plan else "fiftyone", "label_field": LABEL_FIELD,
              "source": source or json.dumps(plan.details if plan else {})}
    results = {"num_samples": len(dataset), "splits": {k: int(v) for k, v in counts.items()},
               "classes": list(dataset.default_classes)}
    record_run(dataset, IMPORT_RUN_KEY, config, results)
