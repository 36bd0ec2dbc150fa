"""Planted label noise on Fashion-MNIST: how well the label-errors check finds it, and what fixing it buys.

Settings: uniform 10%, uniform 20% (a flipped label goes to a random other class), and class-conditional 20%
between look-alike classes (Shirt <-> T-shirt/top, Pullover <-> Coat). For each: out-of-sample probabilities
by K-fold with the fixed model (trained from scratch), the ``label_errors`` check (cleanlab), precision/recall/F1
of its flags against the planted flips, and the fixed model's Fashion-MNIST test accuracy when trained on the
noisy labels, on the labels after removing the flagged samples, after replacing flagged labels by the suggested
ones, and on the clean labels. The library's array-level functions are used (no database) so that the figures
measure the method. On a GPU the defaults are the full train set and 5 folds; on the CPU a seeded subset and 3
folds (the JSON says which). Writes benchmarks/results/label_errors_noise_<device>.json and prints it last.
"""

from __future__ import annotations

import bench_data  # first: it takes benchmarks/ off sys.path (see its docstring)

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from active_learning.data.idx import read_idx_pair
from active_learning.data.images import arrays_to_model_input
from active_learning.model.fixed import FixedModel, Recipe, select_device
from active_learning.model.splits import cross_val_proba
from curation_checks.base import CheckInputs
from curation_checks.label_errors import LabelErrors


ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
LOOK_ALIKE = {6: 0, 0: 6, 2: 4, 4: 2}  # Shirt<->T-shirt/top, Pullover<->Coat


def accuracy(images, labels, test_images, test_labels, recipe, device) -> float:
    model = FixedModel(10, recipe, device=device).fit(images, labels)
    return float((model.predict(test_images) == test_labels).mean())


def load(size: int, image_size: int):
    """The seeded training subset (model input, clean labels) and the test set; the same in every process."""
    train_x, train_y = read_idx_pair(DATA / "train-images-idx3-ubyte.gz", DATA / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx_pair(DATA / "t10k-images-idx3-ubyte.gz", DATA / "t10k-labels-idx1-ubyte.gz")
    subset = np.sort(np.random.default_rng(0).choice(len(train_x), size=min(size, len(train_x)), replace=False))
    return (arrays_to_model_input(train_x[subset], image_size), train_y[subset].astype(np.int64),
            arrays_to_model_input(test_x, image_size), test_y.astype(np.int64))


def plant(setting: str, clean: np.ndarray) -> np.ndarray:
    """The noisy labels of ``setting`` (``bench_data.plant`` with Fashion-MNIST's look-alike pairs)."""
    return bench_data.plant(setting, clean, LOOK_ALIKE)


def run_setting(setting: str, size: int, folds: int, epochs: int, device: str) -> dict:
    """One setting end to end (in its own process): plant, K-fold, check, three retrainings."""
    t0 = time.perf_counter()
    recipe = Recipe(epochs=epochs)
    images, clean, test_images, test_labels = load(size, recipe.image_size)
    if setting == "clean":
        return {"test_accuracy": accuracy(images, clean, test_images, test_labels, recipe, device)}
    classes = tuple(str(c) for c in range(10))
    noisy = plant(setting, clean)
    planted = noisy != clean
    probs = cross_val_proba(images, noisy, 10, folds, recipe, device=device)
    result = LabelErrors().run(CheckInputs(tuple(map(str, range(len(noisy)))), classes, noisy, probs))
    flag = np.asarray(result.per_sample["flag"], dtype=bool)
    suggested = np.asarray([classes.index(s) for s in result.per_sample["suggested"]])
    true_positive = int((flag & planted).sum())
    precision = true_positive / max(int(flag.sum()), 1)
    recall = true_positive / max(int(planted.sum()), 1)
    fixed = np.where(flag, suggested, noisy)
    out = {
        "planted": int(planted.sum()),
        "flagged": int(flag.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
        "fixed_labels_correct": round(float((fixed[flag] == clean[flag]).mean()) if flag.any() else 0.0, 4),
        "out_of_sample_accuracy_vs_clean": round(float((probs.argmax(1) == clean).mean()), 4),
        "test_accuracy_noisy": round(accuracy(images, noisy, test_images, test_labels, recipe, device), 4),
        "test_accuracy_removed": round(accuracy(images[~flag], noisy[~flag], test_images, test_labels, recipe,
                                                device), 4),
        "test_accuracy_fixed": round(accuracy(images, fixed, test_images, test_labels, recipe, device), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(setting, json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    bench_data.fashion_training_arguments(parser)
    parser.add_argument("--settings", default="uniform10,uniform20,lookalike20")
    parser.add_argument("--jobs", type=int, default=1, help="settings run in parallel processes (one GPU is shared)")
    args = parser.parse_args()
    device = select_device(args.device)
    gpu = device.startswith("cuda")
    started = time.perf_counter()
    size = args.train_size or (60000 if gpu else 4000)
    folds = args.folds or (5 if gpu else 3)
    recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)

    settings = args.settings.split(",")
    for setting in settings:
        if not (setting.startswith("uniform") or setting.startswith("lookalike")):
            raise SystemExit(f"unknown setting {setting}")
    work = [(s, size, folds, recipe.epochs, device) for s in settings] + [("clean", size, folds, recipe.epochs, device)]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        done = dict(zip([w[0] for w in work], pool.map(run_setting, *zip(*work))))
    clean_accuracy = done.pop("clean")["test_accuracy"]
    results = done
    out = {
        "benchmark": "label_errors_noise",
        "settings": results,
        "test_accuracy_clean": round(clean_accuracy, 4),
        "setting": f"Fashion-MNIST, {'full train set' if size >= 60000 else f'seeded {size}-image subset'}, "
                   f"{folds}-fold out-of-sample probabilities, {recipe.epochs} epochs, on {device}",
        "train_size": size,
        "folds": folds,
        "epochs": recipe.epochs,
        "device": device,
        "seconds": round(time.perf_counter() - started, 1),
    }
    bench_data.write_result(out, f"label_errors_noise_{bench_data.device_kind(device)}")


if __name__ == "__main__":
    main()
