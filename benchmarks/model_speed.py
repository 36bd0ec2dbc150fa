"""Speed and accuracy of the fixed model on Fashion-MNIST (../shared/data), trained from scratch.

On a GPU: the full 60k training set. On the CPU: a seeded 10k subset (the JSON says which). Training throughput
is the median over epochs, inference throughput the median of 5 passes over the 10k test set. Writes
benchmarks/results/model_speed_<device>.json and prints the same JSON object as the last line.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder's active_learning.py must not shadow the active_learning package

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from active_learning.data.idx import read_idx_pair
from active_learning.data.images import arrays_to_model_input
from active_learning.model.fixed import FixedModel, Recipe, select_device

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--train-size", type=int, default=None, help="default: 60000 on a GPU, 10000 on the CPU")
    parser.add_argument("--epochs", type=int, default=None, help="default: the fixed recipe's")
    args = parser.parse_args()
    device = select_device(args.device)
    train_x, train_y = read_idx_pair(DATA / "train-images-idx3-ubyte.gz", DATA / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx_pair(DATA / "t10k-images-idx3-ubyte.gz", DATA / "t10k-labels-idx1-ubyte.gz")
    size = args.train_size or (len(train_x) if device.startswith("cuda") else 10_000)
    subset = np.sort(np.random.default_rng(0).choice(len(train_x), size=size, replace=False))
    recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
    images = arrays_to_model_input(train_x[subset], recipe.image_size)
    test_images = arrays_to_model_input(test_x, recipe.image_size)

    epoch_ends: list[float] = []
    started = time.perf_counter()
    model = FixedModel(10, recipe, device=device).fit(
        images, train_y[subset], progress=lambda f, m: epoch_ends.append(time.perf_counter()))
    epoch_seconds = np.diff([started, *epoch_ends])
    steps = len(images) // min(recipe.batch_size, len(images))
    timed = epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds  # the first epoch includes warm-up
    train_rate = statistics.median(steps * recipe.batch_size / s for s in timed)

    model.predict_proba(test_images[:512])  # warm-up
    infer_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        probs = model.predict_proba(test_images)
        infer_times.append(time.perf_counter() - t0)
    accuracy = float((probs.argmax(1) == test_y).mean())
    result = {
        "benchmark": "model_speed",
        "device": device,
        "device_name": _device_name(device),
        "train_images_per_s": round(train_rate, 1),
        "infer_images_per_s": round(len(test_images) / statistics.median(infer_times), 1),
        "accuracy": round(accuracy, 4),
        "accuracy_setting": f"Fashion-MNIST test (10,000), trained on {'the full train set' if size == len(train_x) else f'a seeded {size:,}-image subset'}"
                            f" for {recipe.epochs} epochs ({'GPU' if device.startswith('cuda') else 'CPU'})",
        "train_size": size,
        "epochs": recipe.epochs,
        "train_seconds_total": round(model.train_seconds_, 1),
        "recipe": recipe.to_dict(),
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "infer_seconds": [round(s, 3) for s in infer_times],
        "python": platform.python_version(),
    }
    out = ROOT / "benchmarks" / "results" / f"model_speed_{device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
