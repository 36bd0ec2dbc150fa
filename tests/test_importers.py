"""Import (active_learning.importers.import_dataset) into the real MongoDB: every source kind, idempotency,
name clashes, and bad input that must leave nothing behind."""

from __future__ import annotations

import gzip
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo

from active_learning.errors import DatasetExistsError, InputError
from active_learning.idx import read_idx_pair
from active_learning.importers import FASHION_MNIST_CLASSES, IMPORT_RUN_KEY, LABEL_FIELD, import_dataset
from active_learning.runs import load_run

COLORS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


# -- helpers -----------------------------------------------------------------------------------------------
def _media_dir() -> Path:
    return Path(fo.config.default_dataset_dir)


def _state() -> tuple[list[str], list[str]]:
    """Every dataset name and every entry of FiftyOne's default media folder: what an import may leave behind."""
    media = sorted(os.listdir(_media_dir())) if _media_dir().is_dir() else []
    return sorted(fo.list_datasets()), media


def _png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (12, 10), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(color) + rng.integers(-30, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _class_tree(root: Path, per_class: int = 4, classes: dict = COLORS) -> dict[str, str]:
    """One subfolder per class with ``per_class`` PNGs each; returns {resolved file path: class name}."""
    truth = {}
    for c, (name, color) in enumerate(classes.items()):
        for i in range(per_class):
            path = _png(root / name / f"{name}_{i}.png", color, size=(8 + i, 9 + c), seed=10 * c + i)
            truth[str(path.resolve())] = name
    return truth


def _sample_table(dataset) -> dict[str, tuple]:
    ids, paths, labels, tags = dataset.values(["id", "filepath", f"{LABEL_FIELD}.label", "tags"])
    return {i: (p, l, tuple(t)) for i, p, l, t in zip(ids, paths, labels, tags)}


# -- sklearn digits ---------------------------------------------------------------------------------------
def test_digits(dataset_name: str) -> None:
    from sklearn.datasets import load_digits

    dataset = import_dataset(dataset_name, None, test_fraction=0.2, progress=False)
    assert dataset.name == dataset_name and dataset.persistent
    assert len(dataset) == 1797
    assert dataset.default_classes == [str(i) for i in range(10)]
    assert dataset.classes[LABEL_FIELD] == [str(i) for i in range(10)]
    assert isinstance(dataset.first()[LABEL_FIELD], fo.Classification)

    index, labels, tags, paths = dataset.values(["source_index", f"{LABEL_FIELD}.label", "tags", "filepath"])
    assert sorted(index) == list(range(1797))
    assert all(len(t) == 1 and t[0] in ("train", "test") for t in tags)
    digits = load_digits()
    assert [int(label) for label in labels] == digits.target[index].tolist()

    # Stratified: every class has about 20% of its samples tagged test.
    per_class = Counter(label for label, t in zip(labels, tags) if t == ["test"])
    totals = Counter(labels)
    for name in totals:
        assert abs(per_class[name] / totals[name] - 0.2) < 0.02
    assert dataset.count_sample_tags() == {"test": sum(per_class.values()), "train": 1797 - sum(per_class.values())}

    # The PNGs exist in FiftyOne's media folder and hold the scaled 8x8 scans.
    assert all(Path(p).is_file() and Path(p).suffix == ".png" for p in paths)
    assert {Path(p).parent for p in paths} == {_media_dir() / dataset_name}
    for k in (0, 500, 1796):
        expected = np.clip(np.rint(digits.images[index[k]] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(Image.open(paths[k])), expected)

    config, results = load_run(dataset, IMPORT_RUN_KEY)
    assert config["source_kind"] == "sklearn-digits" and config["label_field"] == LABEL_FIELD
    assert results["num_samples"] == 1797 and results["splits"] == dataset.count_sample_tags()
    assert dataset.info["curation_source"] == "sklearn-digits"


def test_digits_pool_fraction(dataset_name: str) -> None:
    dataset = import_dataset(dataset_name, "digits", test_fraction=0.1, pool_fraction=0.5, seed=3, progress=False)
    counts = dataset.count_sample_tags()
    assert set(counts) == {"train", "test", "pool"}
    assert sum(counts.values()) == 1797
    assert abs(counts["pool"] - 0.5 * 1797) < 15 and abs(counts["test"] - 0.1 * 1797) < 15


def test_digits_idempotent_clash_and_overwrite(dataset_name: str) -> None:
    first = import_dataset(dataset_name, None, progress=False)
    table = _sample_table(first)
    state = _state()

    again = import_dataset(dataset_name, None, progress=False)
    assert _sample_table(again) == table  # the same ids, files, labels and tags: nothing was re-imported
    assert _state() == state

    # Another source under the same name: refused, the dataset untouched.
    with pytest.raises(DatasetExistsError, match=dataset_name):
        import_dataset(dataset_name, None, test_fraction=0.3, progress=False)
    assert _state() == state
    kept = fo.load_dataset(dataset_name)
    assert _sample_table(kept) == table
    assert all(Path(p).is_file() for p, _, _ in table.values())

    replaced = import_dataset(dataset_name, None, test_fraction=0.3, overwrite=True, progress=False)
    assert len(replaced) == 1797
    assert not set(_sample_table(replaced)) & set(table)  # new samples
    assert abs(replaced.count_sample_tags()["test"] - 0.3 * 1797) < 15
    assert _state() == state  # no staging dataset or staging media folder left
    paths = replaced.values("filepath")
    assert all(Path(p).is_file() for p in paths)
    assert len(os.listdir(_media_dir() / dataset_name)) == 1797  # the old PNGs were replaced, not added to
    # The replaced dataset is itself idempotent under its new options.
    assert _sample_table(import_dataset(dataset_name, None, test_fraction=0.3, progress=False)) == \
        _sample_table(replaced)


# -- image folders -----------------------------------------------------------------------------------------
def test_image_folder(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "animals", per_class=4)
    (tmp_path / "animals" / "notes.txt").write_text("not an image")
    (tmp_path / "animals" / "cat" / "readme.md").write_text("not an image either")
    dataset = import_dataset(dataset_name, str(tmp_path / "animals"), test_fraction=0.25, progress=False)

    assert len(dataset) == 12
    assert dataset.default_classes == ["cat", "dog", "fox"]
    paths, labels, tags = dataset.values(["filepath", f"{LABEL_FIELD}.label", "tags"])
    assert dict(zip(paths, labels)) == truth  # referenced in place, labeled by their folder
    assert Counter(t[0] for t in tags) == {"train": 9, "test": 3}
    assert Counter(label for label, t in zip(labels, tags) if t == ["test"]) == {"cat": 1, "dog": 1, "fox": 1}
    config, results = load_run(dataset, IMPORT_RUN_KEY)
    assert config["source_kind"] == "image-folder" and results["classes"] == ["cat", "dog", "fox"]

    state = _state()
    assert _sample_table(import_dataset(dataset_name, str(tmp_path / "animals"), test_fraction=0.25,
                                        progress=False)) == _sample_table(dataset)
    # A new image changes the source: the same name now clashes.
    _png(tmp_path / "animals" / "dog" / "dog_new.png", COLORS["dog"])
    with pytest.raises(DatasetExistsError):
        import_dataset(dataset_name, str(tmp_path / "animals"), test_fraction=0.25, progress=False)
    assert _state() == state and len(fo.load_dataset(dataset_name)) == 12


def test_image_folder_split_layout(dataset_name: str, tmp_path: Path) -> None:
    root = tmp_path / "splits"
    train = _class_tree(root / "train", per_class=3)
    test = _class_tree(root / "test", per_class=2, classes={"cat": COLORS["cat"], "fox": COLORS["fox"]})
    pool = _class_tree(root / "pool", per_class=1, classes={"dog": COLORS["dog"]})
    dataset = import_dataset(dataset_name, str(root), progress=False)

    assert dataset.default_classes == ["cat", "dog", "fox"]
    paths, labels, tags = dataset.values(["filepath", f"{LABEL_FIELD}.label", "tags"])
    got = {p: (label, t[0]) for p, label, t in zip(paths, labels, tags)}
    expected = {**{p: (c, "train") for p, c in train.items()}, **{p: (c, "test") for p, c in test.items()},
                **{p: (c, "pool") for p, c in pool.items()}}
    assert got == expected
    assert dataset.count_sample_tags() == {"train": 9, "test": 4, "pool": 1}


# -- IDX ---------------------------------------------------------------------------------------------------
def test_idx_fashion_mnist_subset(dataset_name: str, shared_data: Path) -> None:
    folder = shared_data / "fashion-mnist"
    dataset = import_dataset(dataset_name, str(folder), max_per_split=40, pool_fraction=0.25, seed=1,
                             progress=False)
    assert len(dataset) == 80
    assert dataset.default_classes == FASHION_MNIST_CLASSES
    counts = dataset.count_sample_tags()
    assert counts["test"] == 40 and counts["train"] + counts["pool"] == 40 and counts["pool"] >= 5

    test_images, test_labels = read_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    train_images, train_labels = read_idx_pair(folder / "train-images-idx3-ubyte.gz",
                                               folder / "train-labels-idx1-ubyte.gz")
    for sample in dataset.iter_samples():
        images, labels = (test_images, test_labels) if "test" in sample.tags else (train_images, train_labels)
        k = sample["source_index"]
        assert sample[LABEL_FIELD].label == FASHION_MNIST_CLASSES[labels[k]]
        np.testing.assert_array_equal(np.asarray(Image.open(sample.filepath)), images[k])
    train_index = dataset.match_tags(["train", "pool"]).values("source_index")
    assert len(set(train_index)) == 40 and max(train_index) < 60000
    assert len(set(dataset.match_tags("test").values("source_index"))) == 40

    # Another subset size is another source.
    with pytest.raises(DatasetExistsError):
        import_dataset(dataset_name, str(folder), max_per_split=41, pool_fraction=0.25, seed=1, progress=False)


def test_idx_single_file_path_and_class_names(dataset_name: str, shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "digits-idx"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, folder / name)
    names = [f"digit-{i}" for i in range(10)]
    (folder / "classes.txt").write_text("\n".join(names) + "\n")
    with pytest.raises(InputError, match="only 3 class names"):
        import_dataset(dataset_name, str(folder), max_per_split=20, classes=["a", "b", "c"], progress=False)
    assert not fo.dataset_exists(dataset_name)
    # A path to one of the files means its folder; classes.txt names the classes.
    dataset = import_dataset(dataset_name, str(folder / "t10k-images-idx3-ubyte.gz"), max_per_split=20,
                             progress=False)
    assert len(dataset) == 20 and dataset.count_sample_tags() == {"test": 20}
    assert dataset.default_classes == names
    assert set(dataset.distinct(f"{LABEL_FIELD}.label")) <= set(names)


# -- FiftyOne exports --------------------------------------------------------------------------------------
def test_fiftyone_image_classification_export(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "src", per_class=3)
    source = fo.Dataset()
    source.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=c)) for p, c in truth.items()])
    export = tmp_path / "export"
    source.export(export_dir=str(export), dataset_type=fo.types.FiftyOneImageClassificationDataset,
                  label_field=LABEL_FIELD, classes=["cat", "dog", "fox"])
    source.delete()

    dataset = import_dataset(dataset_name, str(export), progress=False)
    assert len(dataset) == 9
    assert dataset.default_classes == ["cat", "dog", "fox"]
    assert dataset.classes[LABEL_FIELD] == ["cat", "dog", "fox"]
    assert dataset.count_sample_tags() == {"train": 9}  # untagged samples become train
    paths, labels = dataset.values(["filepath", f"{LABEL_FIELD}.label"])
    assert all(Path(p).is_file() and Path(p).is_relative_to(export) for p in paths)
    assert Counter(labels) == Counter(truth.values())
    # Each exported image keeps its label and its pixels.
    by_name = {Path(p).name: p for p in truth}
    for p, label in zip(paths, labels):
        source_path = by_name[Path(p).name]
        assert truth[source_path] == label
        np.testing.assert_array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(source_path)))
    config, results = load_run(dataset, IMPORT_RUN_KEY)
    assert config["source_kind"] == "fiftyone" and results["num_samples"] == 9

    state = _state()
    assert _sample_table(import_dataset(dataset_name, str(export), progress=False)) == _sample_table(dataset)
    assert _state() == state

    # Re-exporting other samples into the same folder makes it another source.
    smaller = fo.Dataset()
    smaller.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=c))
                         for p, c in list(truth.items())[:4]])
    smaller.export(export_dir=str(export), dataset_type=fo.types.FiftyOneImageClassificationDataset,
                   label_field=LABEL_FIELD, classes=["cat", "dog", "fox"], overwrite=True)
    smaller.delete()
    with pytest.raises(DatasetExistsError):
        import_dataset(dataset_name, str(export), progress=False)
    assert len(import_dataset(dataset_name, str(export), overwrite=True, progress=False)) == 4
    assert _state() == state


def test_fiftyone_dataset_export_keeps_split_tags(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "src", per_class=2)
    source = fo.Dataset()
    source.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=c),
                                  tags=["test" if p.endswith("_0.png") else "pool"]) for p, c in truth.items()])
    source.export(export_dir=str(tmp_path / "export"), dataset_type=fo.types.FiftyOneDataset, export_media=True)
    source.delete()
    dataset = import_dataset(dataset_name, str(tmp_path / "export"), progress=False)
    assert dataset.count_sample_tags() == {"test": 3, "pool": 3}
    assert sorted(dataset.default_classes) == ["cat", "dog", "fox"]


# -- bad input leaves nothing behind -------------------------------------------------------------------------
def _assert_refused(name: str, data: str, match: str, **kwargs) -> InputError:
    before = _state()
    with pytest.raises(InputError, match=match) as info:
        import_dataset(name, data, progress=False, **kwargs)
    assert _state() == before, "a failed import left a dataset or a media folder behind"
    assert not any("importing" in n for n in fo.list_datasets())
    return info.value


def test_bad_sources_leave_nothing(dataset_name: str, tmp_path: Path, shared_data: Path) -> None:
    _assert_refused(dataset_name, str(tmp_path / "does-not-exist"), "no such file or directory")

    (tmp_path / "empty").mkdir()
    _assert_refused(dataset_name, str(tmp_path / "empty"), "no class subfolders")

    (tmp_path / "no-images" / "cat").mkdir(parents=True)
    (tmp_path / "no-images" / "cat" / "a.txt").write_text("x")
    _assert_refused(dataset_name, str(tmp_path / "no-images"), "no images in them")

    _class_tree(tmp_path / "one-bad", per_class=3)
    bad = tmp_path / "one-bad" / "dog" / "broken.png"
    bad.write_bytes(os.urandom(300))
    error = _assert_refused(dataset_name, str(tmp_path / "one-bad"), "1 image\\(s\\) cannot be read")
    assert "broken.png" in str(error) and "nothing was written" in str(error)

    truncated = tmp_path / "one-truncated"
    _class_tree(truncated, per_class=2)
    good = truncated / "fox" / "fox_1.png"
    good.write_bytes(good.read_bytes()[:60])
    _assert_refused(dataset_name, str(truncated), "fox_1.png")

    idx = tmp_path / "bad-idx"
    idx.mkdir()
    raw = gzip.decompress((shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    (idx / "t10k-images-idx3-ubyte").write_bytes(raw[:-784])
    shutil.copy(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz", idx / "t10k-labels-idx1-ubyte.gz")
    _assert_refused(dataset_name, str(idx), "truncated or corrupt")

    mismatch = tmp_path / "mismatch-idx"
    mismatch.mkdir()
    shutil.copy(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz", mismatch / "t10k-images-idx3-ubyte.gz")
    shutil.copy(shared_data / "mnist" / "train-labels-idx1-ubyte.gz", mismatch / "t10k-labels-idx1-ubyte.gz")
    _assert_refused(dataset_name, str(mismatch), "do not match")

    lonely = tmp_path / "lonely-idx"
    lonely.mkdir()
    shutil.copy(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz", lonely / "t10k-images-idx3-ubyte.gz")
    _assert_refused(dataset_name, str(lonely), "no matching labels file")

    (tmp_path / "file.csv").write_text("a,b\n")
    _assert_refused(dataset_name, str(tmp_path / "file.csv"), "is a file")

    _assert_refused(dataset_name, None, "test_fraction must be in", test_fraction=1.5)
    _assert_refused(dataset_name, str(shared_data / "fashion-mnist"), "max_per_split must be at least 1",
                    max_per_split=0)


def test_fiftyone_export_without_labels_leaves_nothing(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "src", per_class=1)
    source = fo.Dataset()
    source.add_samples([fo.Sample(filepath=p, label=fo.Classification(label=c)) for p, c in truth.items()])
    source.export(export_dir=str(tmp_path / "export"), dataset_type=fo.types.FiftyOneDataset)
    source.delete()
    _assert_refused(dataset_name, str(tmp_path / "export"), "has no 'ground_truth' field")

    broken = tmp_path / "broken-export"
    (broken / "data").mkdir(parents=True)
    (broken / "labels.json").write_text('{"classes": ["a"], "labels": {"x": ')
    _assert_refused(dataset_name, str(broken), "could not be read as FiftyOneImageClassificationDataset")


def test_media_dir_is_never_a_folder_of_other_files(dataset_name: str, tmp_path: Path, shared_data: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, folder / name)
    media = tmp_path / "media"
    monkeypatch.chdir(tmp_path)
    dataset = import_dataset(dataset_name, str(folder), max_per_split=10, media_dir="media", progress=False)
    paths = dataset.values("filepath")
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)  # a relative --media-dir is resolved
    assert sorted(os.listdir(media)) == sorted(Path(p).name for p in paths)
    assert all(Path(p).parent == media for p in paths)
    table = _sample_table(dataset)

    # Replacing the dataset into a folder of someone else's files is refused; the files and the dataset stay.
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"not ours")
    _assert_refused(dataset_name, str(folder), "already holds files that this import did not write",
                    max_per_split=12, media_dir=str(photos), overwrite=True)
    assert os.listdir(photos) == ["holiday.jpg"]
    assert _sample_table(fo.load_dataset(dataset_name)) == table
    # The same for the default folder, e.g. a FiftyOne zoo download named like the dataset.
    zoo = _media_dir() / f"{dataset_name}-zoo"
    zoo.mkdir(parents=True)
    try:
        (zoo / "info.json").write_text("{}")
        _assert_refused(f"{dataset_name}-zoo", str(folder), "already holds files", max_per_split=10)
        assert os.listdir(zoo) == ["info.json"]
    finally:
        shutil.rmtree(zoo)
    # Its own folder is replaced on overwrite.
    replaced = import_dataset(dataset_name, str(folder), max_per_split=12, media_dir=str(media), overwrite=True,
                              progress=False)
    assert sorted(os.listdir(media)) == sorted(Path(p).name for p in replaced.values("filepath"))
    assert len(os.listdir(media)) == 12


def test_bad_source_keeps_the_existing_dataset(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "good", per_class=2)
    dataset = import_dataset(dataset_name, str(tmp_path / "good"), test_fraction=0.0, progress=False)
    table = _sample_table(dataset)
    _class_tree(tmp_path / "bad", per_class=2)
    (tmp_path / "bad" / "cat" / "garbage.png").write_bytes(b"\x89PNG not really")
    _assert_refused(dataset_name, str(tmp_path / "bad"), "garbage.png", overwrite=True)
    assert _sample_table(fo.load_dataset(dataset_name)) == table
    assert sorted(p for p, _, _ in table.values()) == sorted(truth)
