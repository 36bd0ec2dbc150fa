"""A planted underperforming slice on Fashion-MNIST: do the slice search and the embedding-group search find it?

Planting: in a seeded subset of the Fashion-MNIST train set, 30% of one class's images (default Shirt) are darkened
(pixel values times 0.35) and half of those get a wrong label (a uniformly random other class). The planted slice
is the set of darkened images: the model is wrong on about half of them, against roughly 10% elsewhere. Shirt is
also the class the model finds hardest without any planting, so the searches must tell the planted slice apart from
a weak class (a realistic confound); ``--planted-class 1`` (Trouser) isolates the planted effect instead.

Then, as the product does (but on arrays, without FiftyOne or MongoDB, so that the figures measure the method and
not the database): out-of-sample probabilities by stratified K-fold with the fixed model (``cross_val_proba``),
``correct = argmax == given label``, and
- the **field-based search**: ``slice_performance`` over the brightness and contrast that ``image_statistics``
  computes from the (darkened) images, binned by quantiles (``--bins``, several values allowed), plus the given
  label as a categorical field;
- the **field-free search**: ``underperforming_groups`` on the embeddings of the fixed model trained on the whole
  (planted) subset, as ``curation model`` computes them, with the default number of groups.

Matching: the slice (or group) that "is" the planted one is the one with the highest Jaccard index
|S & P| / |S | P| with the planted samples P (ties: the better-ranked one). ``planted_slice_rank`` is its position
in the search's worst-first order (1 = found first). We also report precision |S & P| / |S| and recall
|S & P| / |P| of the top-ranked slice/group, and of the matching one.

Defaults: on a GPU the full train set and 5 folds; on the CPU a seeded 4,000-image subset and 3 folds (the JSON
says which). Writes benchmarks/results/bias_planted_<device>.json and prints it as the last line.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder's active_learning.py must not shadow the active_learning package

import argparse
import json
import time
from pathlib import Path

import numpy as np

from active_learning.idx import read_idx_pair
from active_learning.images import arrays_to_model_input
from active_learning.model import FixedModel, Recipe, cross_val_proba, select_device
from curation_checks.bias import SliceStat, image_statistics, slice_performance, underperforming_groups

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def plant(images: np.ndarray, labels: np.ndarray, cls: int, fraction: float, factor: float, flip: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Darken ``fraction`` of class ``cls``'s images by ``factor`` and give ``flip`` of those a wrong label."""
    members = np.flatnonzero(labels == cls)
    darkened = np.sort(rng.choice(members, size=int(round(fraction * len(members))), replace=False))
    flipped = np.sort(rng.choice(darkened, size=int(round(flip * len(darkened))), replace=False))
    images = images.copy()
    images[darkened] = np.round(images[darkened].astype(np.float64) * factor).astype(np.uint8)
    given = labels.copy()
    given[flipped] = (labels[flipped] + rng.integers(1, len(CLASSES), size=len(flipped))) % len(CLASSES)
    return images, given, darkened, flipped


def match(ranked: tuple[SliceStat, ...], planted: np.ndarray) -> dict:
    """Rank of the best-matching slice (highest Jaccard), and precision/recall of the top and matching slices."""
    planted_set = set(planted.tolist())

    def scores(stat: SliceStat) -> dict:
        members = set(stat.indices.tolist())
        overlap = len(members & planted_set)
        return {"label": stat.label, "size": stat.size, "accuracy": round(stat.accuracy, 4),
                "ci": [round(stat.ci_low, 4), round(stat.ci_high, 4)], "p_adjusted": float(f"{stat.p_adjusted:.3g}"),
                "significant": stat.significant, "jaccard": round(overlap / len(members | planted_set), 4),
                "precision": round(overlap / max(len(members), 1), 4),
                "recall": round(overlap / max(len(planted_set), 1), 4)}

    if not ranked:
        return {"planted_slice_rank": None, "num_ranked": 0}
    all_scores = [scores(s) for s in ranked]
    best = max(range(len(ranked)), key=lambda i: (all_scores[i]["jaccard"], -i))
    return {"planted_slice_rank": best + 1, "num_ranked": len(ranked),
            "num_significant": sum(s.significant for s in ranked),
            "top_precision": all_scores[0]["precision"], "top_recall": all_scores[0]["recall"],
            "top": all_scores[0], "matching": all_scores[best]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--train-size", type=int, default=None, help="default: 60000 on a GPU, 4000 on the CPU")
    parser.add_argument("--folds", type=int, default=None, help="default: 5 on a GPU, 3 on the CPU")
    parser.add_argument("--epochs", type=int, default=None, help="default: the fixed recipe's")
    parser.add_argument("--planted-class", type=int, default=6, help="class index to plant in (default 6, Shirt)")
    parser.add_argument("--fraction", type=float, default=0.3, help="share of the class's images darkened")
    parser.add_argument("--darken", type=float, default=0.35, help="pixel factor of the darkened images")
    parser.add_argument("--flip", type=float, default=0.5, help="share of the darkened images mislabeled")
    parser.add_argument("--bins", default="4,10", help="quantile bins per numeric field, comma-separated settings")
    parser.add_argument("--n-groups", type=int, default=None, help="default: underperforming_groups' automatic")
    parser.add_argument("--min-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = select_device(args.device)
    gpu = device.startswith("cuda")
    started = time.perf_counter()
    train_x, train_y = read_idx_pair(DATA / "train-images-idx3-ubyte.gz", DATA / "train-labels-idx1-ubyte.gz")
    size = args.train_size or (len(train_x) if gpu else 4000)
    folds = args.folds or (5 if gpu else 3)
    recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(len(train_x), size=size, replace=False))
    raw, clean = train_x[subset], train_y[subset].astype(np.int64)
    raw, given, planted, flipped = plant(raw, clean, args.planted_class, args.fraction, args.darken, args.flip, rng)

    stats = image_statistics(raw)
    images = arrays_to_model_input(raw, recipe.image_size)
    t0 = time.perf_counter()
    probs = cross_val_proba(images, given, len(CLASSES), folds, recipe, device=device)
    cv_seconds = time.perf_counter() - t0
    correct = probs.argmax(axis=1) == given

    t0 = time.perf_counter()
    slice_results = {}
    for bins in (int(b) for b in args.bins.split(",")):
        result = slice_performance(correct, {"brightness": stats.brightness, "contrast": stats.contrast,
                                             "label": [CLASSES[i] for i in given]},
                                   min_size=args.min_size, bins=bins, numeric=["brightness", "contrast"])
        slice_results[f"bins{bins}"] = match(result.slices, planted)
    slice_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    final = FixedModel(len(CLASSES), recipe, device=device).fit(images, given)
    embeddings = final.embed(images)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = underperforming_groups(embeddings, correct, n_groups=args.n_groups, min_size=args.min_size,
                                    labels=given, classes=CLASSES, random_state=args.seed)
    group_seconds = time.perf_counter() - t0
    group_result = {**match(groups.groups, planted), "n_groups": groups.n_groups}

    out = {
        "benchmark": "bias_planted",
        "slices": slice_results,
        "groups": group_result,
        "planted": {"class": CLASSES[args.planted_class], "darkened": int(len(planted)),
                    "mislabeled": int(len(flipped)), "darken_factor": args.darken,
                    "accuracy_in_planted": round(float(correct[planted].mean()), 4),
                    "accuracy_elsewhere": round(float(np.delete(correct, planted).mean()), 4),
                    "brightness_planted_mean": round(float(stats.brightness[planted].mean()), 4),
                    "brightness_all_mean": round(float(stats.brightness.mean()), 4)},
        "out_of_sample_accuracy": round(float(correct.mean()), 4),
        "setting": f"Fashion-MNIST, {'full train set' if size == len(train_x) else f'seeded {size}-image subset'}, "
                   f"{folds}-fold out-of-sample probabilities, {recipe.epochs} epochs, on {device}; arrays only "
                   "(no FiftyOne): the same functions compute_bias calls",
        "matching": "the slice/group with the highest Jaccard index with the planted (darkened) samples; rank 1 = "
                    "first in the search's worst-first order",
        "train_size": size,
        "folds": folds,
        "epochs": recipe.epochs,
        "min_size": args.min_size,
        "device": device,
        "seconds_cross_val": round(cv_seconds, 1),
        "seconds_slice_search": round(slice_seconds, 3),
        "seconds_final_model": round(train_seconds, 1),
        "seconds_group_search": round(group_seconds, 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = ROOT / "benchmarks" / "results" / f"bias_planted_{device.split(':')[0]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
