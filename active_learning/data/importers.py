"""Import image classification data into FiftyOne: image folder trees, IDX files, FiftyOne formats, sklearn digits.

Everything is read and validated before anything is written (``active_learning.data.sources``: the plan), so bad
input leaves no half-written dataset or stray files. Images end up as files on disk (in place for folders, PNGs for
arrays), the ground truth is a ``Classification`` field, and each sample carries one split tag (``train``, ``test``
or ``pool``). Importing the same source under the same name twice is a no-op; another source under an existing name
is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from active_learning.data.idx import FASHION_MNIST_CLASSES
from active_learning.data.sources import SPLITS, ImportPlan, fiftyone_fingerprint, fiftyone_format, plan_source
from active_learning.errors import DataError, DatasetExistsError, InputError

__all__ = ["FASHION_MNIST_CLASSES", "IMPORT_RUN_KEY", "LABEL_FIELD", "ImportPlan", "import_dataset", "plan_source"]

logger = logging.getLogger(__name__)

LABEL_FIELD = "ground_truth"
IMPORT_RUN_KEY = "curation_import"


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

    Crash-safe (``active_learning.data.import_commit``): the new dataset and its images are built under staging names
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

    from active_learning.data import import_commit
    from active_learning.store.faults import pause_point
    from active_learning.store.lease import writer_lease

    import_commit.validate_dataset_name(name)
    plan = plan_source(data, test_fraction, pool_fraction, max_per_split, classes, seed)
    fingerprint = plan.fingerprint if isinstance(plan, ImportPlan) else fiftyone_fingerprint(Path(plan))
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
                    "Pick another `name`, or pass `overwrite=True` to replace it."
                )
        if media_root is not None and not _replaceable_media(media_root):
            raise InputError(
                f"{media_root} already holds files that this import did not write, and it would replace the folder: "
                "pass another `media_dir` (or another `name`). Nothing was written."
            )
        owner = _media_owner(media_root) if media_root is not None else None
        if owner not in (None, name) and fo.dataset_exists(owner):
            raise InputError(f"{media_root} holds the images of dataset {owner!r}, and this import would replace "
                             "them: pass another `media_dir` (or another `name`). Nothing was written.")
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

    from active_learning.store.runs import now_utc

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

    dataset_type = fiftyone_format(path)
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
    from active_learning.store.runs import record_run

    counts = dataset.count_sample_tags()
    config = {"source_kind": plan.source_kind if plan else "fiftyone", "label_field": LABEL_FIELD,
              "source": source or json.dumps(plan.details if plan else {})}
    results = {"num_samples": len(dataset), "splits": {k: int(v) for k, v in counts.items()},
               "classes": list(dataset.default_classes)}
    record_run(dataset, IMPORT_RUN_KEY, config, results)
