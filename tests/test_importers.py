"""Import (active_learning.data.importers.import_dataset) into the real MongoDB: every source kind, idempotency,
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
from active_learning.data.idx import read_idx_pair
from active_learning.data.importers import FASHION_MNIST_CLASSES, IMPORT_RUN_KEY, LABEL_FIELD, import_dataset
from active_learning.store.runs import load_run

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


def _pngs(folder: Path) -> list[str]:
    """The image files of a media folder (without its owner file)."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


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
    assert len(_pngs(_media_dir() / dataset_name)) == 1797  # the old PNGs were replaced, not added to
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
def _export(truth: dict[str, str], export: Path) -> Path:
    """A FiftyOne image-classification export of the files ``truth`` maps to their classes."""
    source = fo.Dataset()
    source.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=c)) for p, c in truth.items()])
    source.export(export_dir=str(export), dataset_type=fo.types.FiftyOneImageClassificationDataset,
                  label_field=LABEL_FIELD, classes=["cat", "dog", "fox"])
    source.delete()
    return export


def test_fiftyone_image_classification_export(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "src", per_class=3)
    export = _export(truth, tmp_path / "export")

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
    assert _pngs(media) == sorted(Path(p).name for p in paths)
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
    assert _pngs(media) == sorted(Path(p).name for p in replaced.values("filepath"))
    assert len(_pngs(media)) == 12


def test_bad_source_keeps_the_existing_dataset(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "good", per_class=2)
    dataset = import_dataset(dataset_name, str(tmp_path / "good"), test_fraction=0.0, progress=False)
    table = _sample_table(dataset)
    _class_tree(tmp_path / "bad", per_class=2)
    (tmp_path / "bad" / "cat" / "garbage.png").write_bytes(b"\x89PNG not really")
    _assert_refused(dataset_name, str(tmp_path / "bad"), "garbage.png", overwrite=True)
    assert _sample_table(fo.load_dataset(dataset_name)) == table
    assert sorted(p for p, _, _ in table.values()) == sorted(truth)


# -- crash safety and concurrency (issue 16): real CLI processes, killed with SIGKILL at named points -------------
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from conftest import run_cli  # noqa: E402

LEASE_SECONDS = "2"  # the killed import's dataset lease runs out this fast, so the rerun need not wait 60 s


def _idx_copy(shared_data: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, folder / name)
    return folder


def _start_cli(args: list[str], env: dict[str, str], log: Path, pause_at: str | None = None,
               marker: Path | None = None, pause_seconds: float = 600) -> subprocess.Popen:
    env = {**env, "CURATION_LEASE_SECONDS": LEASE_SECONDS}
    if pause_at:
        env.update(CURATION_TEST_PAUSE_AT=pause_at, CURATION_TEST_PAUSE_MARKER=str(marker),
                   CURATION_TEST_PAUSE_SECONDS=str(pause_seconds))
    exe = Path(sys.executable).with_name("curation")
    return subprocess.Popen([str(exe), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


def _wait_for(marker: Path, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the import never reached its pause point (rc {proc.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _leftovers(media_parent: Path) -> list[str]:
    """Staging or replaced datasets and folders, import journals and dataset leases: what a crash can leave."""
    import fiftyone.core.odm as foo

    db = foo.get_db_conn()
    found = [n for n in fo.list_datasets() if ".staging-" in n or ".replaced-" in n]
    if media_parent.is_dir():
        found += [p.name for p in media_parent.iterdir() if p.name.startswith((".staging-", ".replaced-"))]
    found += [f"journal {d['_id']}" for d in db["curation_import_journal"].find({})]
    found += [f"lease {d['_id']}" for d in db["curation_leases"].find({})]
    return found


def _assert_intact(name: str, table: dict | None = None, size: int | None = None, source: Path | None = None):
    """The dataset exists, every file it references exists and holds the pixels of its source sample."""
    dataset = fo.load_dataset(name)
    dataset.reload()
    if table is not None:
        assert _sample_table(dataset) == table
    if size is not None:
        assert len(dataset) == size
    paths, index = dataset.values(["filepath", "source_index"])
    assert len(set(paths)) == len(paths) and len(set(index)) == len(index), "duplicated samples"
    assert all(os.path.isfile(p) for p in paths), "a sample's file is gone"
    if source is not None:
        images, _ = read_idx_pair(source / "t10k-images-idx3-ubyte.gz", source / "t10k-labels-idx1-ubyte.gz")
        for path, k in zip(paths, index):
            np.testing.assert_array_equal(np.asarray(Image.open(path)), images[k])
    return dataset


def test_kill_during_overwrite_keeps_the_old_dataset_and_the_next_import_cleans_up(
        dataset_name: str, tmp_path: Path, shared_data: Path, cli_env: dict) -> None:
    source = _idx_copy(shared_data, tmp_path / "idx")
    original = ["import", "--name", dataset_name, "--data", str(source), "--max-per-split", "20"]
    replacement = ["import", "--name", dataset_name, "--data", str(source), "--max-per-split", "30", "--overwrite"]
    assert run_cli(original, cli_env).returncode == 0
    old = _assert_intact(dataset_name, size=20, source=source)
    table = _sample_table(old)
    media = Path(old.first().filepath).parent

    marker, log = tmp_path / "paused", tmp_path / "import.log"
    proc = _start_cli(replacement, cli_env, log, "import:before-swap", marker)
    _wait_for(marker, proc, log)
    _kill(proc)
    # Killed with the new media and dataset complete under staging names: the old dataset keeps every file.
    _assert_intact(dataset_name, table=table, source=source)
    assert _pngs(media) == sorted(Path(p).name for p, _, _ in table.values())
    left = _leftovers(media.parent)
    assert any(n.startswith(f"{dataset_name}.staging-") for n in left) and any(
        n.startswith(".staging-") for n in left), left  # what the kill left, for the next import to clean

    time.sleep(float(LEASE_SECONDS) + 0.5)
    again = run_cli(original, {**cli_env, "CURATION_LEASE_SECONDS": LEASE_SECONDS})
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Recovered: removed what an interrupted import" in again.stderr
    _assert_intact(dataset_name, table=table, source=source)  # still a no-op: the same samples, files and ids
    assert _leftovers(media.parent) == []

    replaced = run_cli(replacement, cli_env)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    new = _assert_intact(dataset_name, size=30, source=source)
    assert not set(_sample_table(new)) & set(table)
    assert _pngs(media) == sorted(Path(p).name for p in new.values("filepath"))
    assert _leftovers(media.parent) == []


def test_kill_in_the_middle_of_the_swap_is_finished_by_the_next_import(
        dataset_name: str, tmp_path: Path, shared_data: Path, cli_env: dict) -> None:
    source = _idx_copy(shared_data, tmp_path / "idx")
    assert run_cli(["import", "--name", dataset_name, "--data", str(source), "--max-per-split", "20"],
                   cli_env).returncode == 0
    media = Path(fo.load_dataset(dataset_name).first().filepath).parent
    replacement = ["import", "--name", dataset_name, "--data", str(source), "--max-per-split", "30", "--overwrite"]
    marker, log = tmp_path / "paused", tmp_path / "import.log"
    proc = _start_cli(replacement, cli_env, log, "import:mid-swap", marker)
    _wait_for(marker, proc, log)
    _kill(proc)
    # Killed after the commit began: the old dataset is renamed away, the new one not yet in place.
    assert not fo.dataset_exists(dataset_name)
    assert any(".replaced-" in n for n in fo.list_datasets())

    time.sleep(float(LEASE_SECONDS) + 0.5)
    rerun = run_cli(replacement, {**cli_env, "CURATION_LEASE_SECONDS": LEASE_SECONDS})
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Recovered: finished the interrupted replacement" in rerun.stderr
    new = _assert_intact(dataset_name, size=30, source=source)  # the new samples with their own pixels
    assert _pngs(media) == sorted(Path(p).name for p in new.values("filepath"))
    assert _leftovers(media.parent) == []


def test_concurrent_import_into_the_same_new_name_is_refused_and_leaves_nothing(
        dataset_name: str, tmp_path: Path, cli_env: dict) -> None:
    first = _class_tree(tmp_path / "first", per_class=2)
    second = _class_tree(tmp_path / "second", per_class=3)
    marker, log = tmp_path / "paused", tmp_path / "first.log"
    proc = _start_cli(["import", "--name", dataset_name, "--data", str(tmp_path / "first")], cli_env, log,
                      "import:before-swap", marker, pause_seconds=8)
    _wait_for(marker, proc, log)
    other = run_cli(["import", "--name", dataset_name, "--data", str(tmp_path / "second")], cli_env)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert f"Dataset {dataset_name!r} is being changed by curation import (pid {proc.pid}" in other.stderr
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    dataset = _assert_intact(dataset_name)
    assert sorted(dataset.values("filepath")) == sorted(first)  # the first import's files, none of the second's
    assert not set(dataset.values("filepath")) & set(second)
    assert _leftovers(_media_dir()) == []


def test_racing_imports_into_one_new_name_leave_one_complete_dataset(
        dataset_name: str, tmp_path: Path, cli_env: dict) -> None:
    sources = {"a": _class_tree(tmp_path / "a", per_class=2), "b": _class_tree(tmp_path / "b", per_class=3)}
    procs = {key: _start_cli(["import", "--name", dataset_name, "--data", str(tmp_path / key)], cli_env,
                             tmp_path / f"{key}.log") for key in sources}
    codes = {key: proc.wait(timeout=180) for key, proc in procs.items()}
    logs = {key: (tmp_path / f"{key}.log").read_text() for key in sources}
    assert sorted(codes.values()) == [0, 2], logs
    winner = next(key for key, code in codes.items() if code == 0)
    loser = next(key for key in sources if key != winner)
    assert "Traceback" not in logs[loser]
    assert "is being changed by curation import" in logs[loser] or "already exists" in logs[loser], logs[loser]
    dataset = _assert_intact(dataset_name)
    assert sorted(dataset.values("filepath")) == sorted(sources[winner])
    assert _leftovers(_media_dir()) == []


# -- the no-op check looks at the files ------------------------------------------------------------------------------
def test_same_source_again_rewrites_missing_images(dataset_name: str, tmp_path: Path, shared_data: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    source = _idx_copy(shared_data, tmp_path / "idx")
    dataset = import_dataset(dataset_name, str(source), max_per_split=25, progress=False)
    table = _sample_table(dataset)
    paths = sorted(p for p, _, _ in table.values())
    for path in paths[:7]:
        os.remove(path)
    with caplog.at_level("WARNING"):
        again = import_dataset(dataset_name, str(source), max_per_split=25, progress=False)
    assert "7 of its 25 image files were missing: rewrote them" in caplog.text
    _assert_intact(dataset_name, table=table, source=source)  # the same samples (ids), every file back
    assert _sample_table(again) == table

    shutil.rmtree(Path(paths[0]).parent)  # the whole media folder gone (what the old --overwrite did on a kill)
    import_dataset(dataset_name, str(source), max_per_split=25, progress=False)
    _assert_intact(dataset_name, table=table, source=source)
    assert _pngs(Path(paths[0]).parent) == sorted(Path(p).name for p in paths)


def test_same_export_again_with_missing_files_says_so(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "src", per_class=2)
    export = _export(truth, tmp_path / "export")
    dataset = import_dataset(dataset_name, str(export), progress=False)
    table = _sample_table(dataset)
    os.remove(dataset.first().filepath)
    from active_learning.errors import DataError

    with pytest.raises(DataError, match="1 of its 6 image files are missing .* restore them"):
        import_dataset(dataset_name, str(export), progress=False)
    _assert_refused(dataset_name, str(export), "could not be read as", overwrite=True)  # FiftyOne checks it
    assert _sample_table(fo.load_dataset(dataset_name)) == table  # the refused overwrite kept the dataset


def test_dataset_names_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    from active_learning.data.import_commit import validate_dataset_name

    for good in ("mnist", "My photos 2024", "cifar10_train-v2", "fashion.mnist"):
        assert validate_dataset_name(good) == good
    for bad, why in (("", "empty"), ("../x", "outside"), ("a/b", "path separator"), ("a\x00b", "control"),
                     (".x", "starts with '.'"), (" x", "whitespace"), ("x" * 201, "longer than"),
                     ("!!!", "FiftyOne refuses"), ("d.replaced-1", "reserved")):
        before = _state()
        with pytest.raises(InputError, match=why):
            import_dataset(bad, None, progress=False)
        assert _state() == before


def test_kill_leftovers_are_removed_by_an_import_of_another_name(
        dataset_name: str, tmp_path: Path, shared_data: Path, cli_env: dict) -> None:
    source = _idx_copy(shared_data, tmp_path / "idx")
    killed = f"{dataset_name}-killed"
    marker, log = tmp_path / "paused", tmp_path / "import.log"
    proc = _start_cli(["import", "--name", killed, "--data", str(source), "--max-per-split", "15"], cli_env, log,
                      "import:before-swap", marker)
    _wait_for(marker, proc, log)
    _kill(proc)
    assert not fo.dataset_exists(killed)  # a new name: nothing under it until the swap
    assert any(n.startswith(".staging-") for n in _leftovers(_media_dir()))
    time.sleep(float(LEASE_SECONDS) + 0.5)
    other = run_cli(["import", "--name", dataset_name, "--data", str(source), "--max-per-split", "5"],
                    {**cli_env, "CURATION_LEASE_SECONDS": LEASE_SECONDS})
    assert other.returncode == 0, other.stderr[-2000:]
    assert f"Recovered: removed what an interrupted import of {killed!r} had staged" in other.stderr
    assert not fo.dataset_exists(killed) and _leftovers(_media_dir()) == []
    assert not (_media_dir() / killed).exists()
    _assert_intact(dataset_name, size=5, source=source)


def test_fiftyone_dataset_export_with_missing_media_is_refused(dataset_name: str, tmp_path: Path) -> None:
    truth = _class_tree(tmp_path / "src", per_class=2)
    source = fo.Dataset()
    source.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=c)) for p, c in truth.items()])
    source.export(export_dir=str(tmp_path / "export"), dataset_type=fo.types.FiftyOneDataset, export_media=True)
    source.delete()
    victim = next((tmp_path / "export" / "data").iterdir())
    victim.unlink()
    error = _assert_refused(dataset_name, str(tmp_path / "export"), "1 of the 6 images of the export")
    assert victim.name in str(error) and "export it again with its media" in str(error)


@pytest.mark.parametrize("when", ["before-commit", "during-commit"])
def test_a_name_taken_by_another_writer_meanwhile_is_refused_at_the_atomic_rename(
        dataset_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """A writer that bypasses the lease (a notebook's ``fo.Dataset(name)``) takes the name while the import runs:
    the import's final rename fails (dataset names are unique in MongoDB), the intruder's dataset is kept and the
    import leaves nothing behind."""
    from active_learning.data import import_commit, importers

    _class_tree(tmp_path / "animals", per_class=2)
    intruder = {}
    if when == "before-commit":
        build = importers._build

        def build_then_intrude(*args, **kwargs):
            dataset = build(*args, **kwargs)
            intruder["dataset"] = fo.Dataset(dataset_name)
            return dataset

        monkeypatch.setattr(importers, "_build", build_then_intrude)
    else:
        set_phase = import_commit._set_phase

        def set_phase_then_intrude(journal, phase):  # after commit's own check: only the unique index refuses
            set_phase(journal, phase)
            intruder["dataset"] = fo.Dataset(dataset_name)

        monkeypatch.setattr(import_commit, "_set_phase", set_phase_then_intrude)
    with pytest.raises(DatasetExistsError, match=f"{dataset_name!r} was (created|taken) by another writer"):
        import_dataset(dataset_name, str(tmp_path / "animals"), progress=False)
    assert fo.load_dataset(dataset_name) is intruder["dataset"] and len(intruder["dataset"]) == 0
    assert _leftovers(_media_dir()) == []


def test_media_dir_of_another_dataset_is_refused(dataset_name: str, tmp_path: Path, shared_data: Path) -> None:
    source = _idx_copy(shared_data, tmp_path / "idx")
    media = tmp_path / "media"
    first = import_dataset(dataset_name, str(source), max_per_split=6, media_dir=str(media), progress=False)
    assert (media / ".curation-dataset").read_text().strip() == dataset_name
    table = _sample_table(first)
    other = f"{dataset_name}-other"
    try:
        _assert_refused(other, str(source), f"holds the images of dataset {dataset_name!r}", max_per_split=8,
                        media_dir=str(media))
        _assert_intact(dataset_name, table=table, source=source)  # its PNGs were not replaced by the other's
        # The owner itself may replace them, and a folder whose dataset was deleted is free again.
        import_dataset(dataset_name, str(source), max_per_split=7, media_dir=str(media), overwrite=True,
                       progress=False)
        assert len(_pngs(media)) == 7
        fo.delete_dataset(dataset_name)
        assert len(import_dataset(other, str(source), max_per_split=8, media_dir=str(media), progress=False)) == 8
        assert (media / ".curation-dataset").read_text().strip() == other
    finally:
        if fo.dataset_exists(other):
            fo.delete_dataset(other)
