"""Data for the model-quality and CIFAR-10 label-error benchmarks, loaded as the product loads it.

CIFAR-10: ``../shared/data/cifar10-train/images.tar.gz`` is extracted once into a folder tree (one subfolder per
class, as a user has it) under the system's temp folder, and a seeded, class-stratified subset of N photos is
decoded by the product's own loader (``active_learning.data.images.load_images``). Fashion-MNIST and MNIST: the IDX
training files, a seeded subset, resized by ``arrays_to_model_input``. Not a benchmark itself (no JSON).

Benchmarks import this module first: importing it takes ``benchmarks/`` off ``sys.path`` (a script's folder is
``sys.path[0]``, and this folder's ``active_learning.py``, a name fixed by the product's issues, would shadow the
``active_learning`` package). ``write_result`` writes a benchmark's JSON and prints it as the last line.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

RESULTS = _HERE / "results"

import numpy as np

from active_learning.data.idx import read_idx_pair
from active_learning.data.images import arrays_to_model_input, load_images

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR = SHARED / "cifar10-train"
IDX = {"fashion_mnist": SHARED / "fashion-mnist", "mnist": SHARED / "mnist"}


def write_result(out: dict, name: str, path: str | Path | None = None) -> Path:
    """Write ``out`` to ``benchmarks/results/<name>.json`` (or ``path``) and print it as one JSON line."""
    target = Path(path) if path else RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return target


def fashion_training_arguments(parser) -> None:
    """The options the Fashion-MNIST planted-noise benchmarks share: device, subset size, folds, epochs."""
    parser.add_argument("--device", default=None)
    parser.add_argument("--train-size", type=int, default=None, help="default: 60000 on a GPU, 4000 on the CPU")
    parser.add_argument("--folds", type=int, default=None, help="default: 5 on a GPU, 3 on the CPU")
    parser.add_argument("--epochs", type=int, default=None, help="default: the fixed recipe's")


def device_kind(device: str) -> str:
    """``cuda:0`` -> ``cuda``: the suffix of a result file."""
    return device.split(":")[0]


def cifar10_tree() -> Path:
    """The extracted CIFAR-10 folder tree (``<root>/<class>/<index>.jpg``), extracting it on first use."""
    root = Path(tempfile.gettempdir()) / "curation-bench-cifar10"
    tree = root / "cifar10-train"
    done = root / ".extracted"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(CIFAR / "images.tar.gz") as archive:
            archive.extractall(root, filter="data")
        done.write_text("ok\n")
    return tree


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded subset of ``size`` with (as near as possible) equal counts per class."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = size // len(classes)
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False)
              for c in classes]
    return np.sort(np.concatenate(picked))


def cifar10(size: int, image_size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(images uint8 (N, 3, S, S), labels, class names, file paths) of a stratified subset of ``size`` photos."""
    classes = (CIFAR / "classes.txt").read_text().split()
    labels = np.load(CIFAR / "labels.npy").astype(np.int64)
    subset = stratified_subset(labels, size, seed)
    tree = cifar10_tree()
    paths = [str(tree / classes[labels[i]] / f"{i:05d}.jpg") for i in subset]
    return load_images(paths, image_size), labels[subset], classes, paths


def idx_dataset(name: str, size: int, image_size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a stratified subset of ``size`` images of Fashion-MNIST or MNIST's training set."""
    folder = IDX[name]
    images, labels = read_idx_pair(folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    subset = stratified_subset(labels.astype(np.int64), size, seed)
    return arrays_to_model_input(images[subset], image_size), labels[subset].astype(np.int64)


def plant_uniform(labels: np.ndarray, rate: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """Flip a ``rate`` share of labels, each to a uniformly random other class."""
    noisy = labels.copy()
    flip = rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)
    noisy[flip] = (labels[flip] + rng.integers(1, k, size=len(flip))) % k
    return noisy


def plant_look_alike(labels: np.ndarray, rate: float, partners: dict[int, int],
                     rng: np.random.Generator) -> np.ndarray:
    """Flip a ``rate`` share of each look-alike class's labels to its partner class (``partners``: class -> class)."""
    noisy = labels.copy()
    for cls, partner in partners.items():
        members = np.flatnonzero(labels == cls)
        flip = rng.choice(members, size=int(round(rate * len(members))), replace=False)
        noisy[flip] = partner
    return noisy


def plant(setting: str, clean: np.ndarray, partners: dict[int, int], k: int = 10) -> np.ndarray:
    """The noisy labels of ``setting`` (``uniform10``, ``uniform20``, ``lookalike20``, ...); each setting has its
    own seeded generator, so runs are reproducible."""
    rng = np.random.default_rng([0, *setting.encode()])
    if setting.startswith("uniform"):
        return plant_uniform(clean, int(setting[7:]) / 100, k, rng)
    if setting.startswith("lookalike"):
        return plant_look_alike(clean, int(setting[9:]) / 100, partners, rng)
    raise SystemExit(f"unknown setting {setting}")
