"""How good the fixed model's out-of-sample probabilities are, per dataset and recipe: the signal every check reads.

Per (dataset, recipe): stratified K-fold out-of-sample accuracy (``cross_val_proba`` with the recipe's default
test-time augmentation, as the product runs it), wall seconds, training images per second, device. Datasets: a
seeded, class-stratified subset of N CIFAR-10 photos (decoded from the JPEG folder tree by the product's loader),
Fashion-MNIST and MNIST subsets. On CIFAR-10 it also runs the near-duplicate check on the first fold model's
embeddings of all N photos, with the star groups the check uses and with the connected components it used before
(true near-duplicates are rare in CIFAR-10, so big groups there are the embeddings' fault).

CPU defaults: CIFAR-10 10,000 photos with both recipes, Fashion-MNIST and MNIST 3,000 images each with both,
5 folds. GPU defaults: all 50,000 photos, 60,000 digits. Writes benchmarks/results/model_quality_<device>.json
(``--out`` to change) and prints it as the last line. Top-level keys describe the CIFAR-10 run of the first recipe.
"""

from __future__ import annotations

import bench_data  # first: it takes benchmarks/ off sys.path (see its docstring)

import argparse
import json
import time
from pathlib import Path

import numpy as np

from active_learning.model.fixed import RECIPES, default_tta_px, epochs_for, named_recipe, select_device
from active_learning.model.splits import cross_val_proba
from curation_checks.base import CheckInputs
from curation_checks.near_duplicates import NearDuplicates


ROOT = Path(__file__).resolve().parents[1]


def chained_groups(embeddings: np.ndarray, threshold: float) -> dict:
    """Near-duplicate groups as connected components of all pairs within ``threshold`` (the check before)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    index = NearestNeighbors(metric="euclidean", algorithm="brute").fit(unit)
    dist, idx = index.radius_neighbors(unit, radius=float(np.sqrt(2 * threshold)), return_distance=True)
    src = np.concatenate([np.full(len(i), r) for r, (d, i) in enumerate(zip(dist, idx))])
    dst = np.concatenate([i for i in idx])
    keep = src != dst
    graph = coo_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(len(unit), len(unit)))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    grouped = sizes[sizes >= 2]
    return {"num_flagged": int(grouped.sum()), "num_groups": int(len(grouped)),
            "largest_group": int(grouped.max()) if len(grouped) else 0}


def near_duplicates(embeddings: np.ndarray) -> dict:
    """The check's summary on ``embeddings`` beside the chained grouping at the same threshold."""
    ids = tuple(str(i) for i in range(len(embeddings)))
    result = NearDuplicates().run(CheckInputs(ids, ("x",), None, None, embeddings))
    summary = result.summary
    return {"star_groups": {k: summary[k] for k in ("num_flagged", "num_groups", "largest_group",
                                                    "num_large_groups")},
            "chained_groups": chained_groups(embeddings, summary["threshold"]),
            "threshold": round(summary["threshold"], 6)}


def run(dataset: str, images: np.ndarray, labels: np.ndarray, recipe_name: str, folds: int, device: str,
        epochs: int | None) -> dict:
    """One (dataset, recipe) K-fold, timed."""
    recipe = named_recipe(recipe_name, **({"epochs": epochs} if epochs else {}))
    tta_px = default_tta_px(recipe)
    kept: dict[str, object] = {}

    def keep_first(model, held_out) -> None:
        kept.setdefault("model", model)

    started = time.perf_counter()
    probs = cross_val_proba(images, labels, int(labels.max()) + 1, folds, recipe, device=device, tta_px=tta_px,
                            on_fold=keep_first)
    seconds = time.perf_counter() - started
    fold_train = len(images) * (folds - 1) / folds
    out = {
        "dataset": dataset, "recipe": recipe_name, "images": int(len(images)), "folds": folds,
        "oos_accuracy": round(float((probs.argmax(1) == labels).mean()), 4),
        "seconds": round(seconds, 1),
        "train_images_per_second": round(fold_train * epochs_for(recipe, int(fold_train)) * folds / seconds, 1),
        "epochs": epochs_for(recipe, int(fold_train)), "tta_px": tta_px, "tta_flip": recipe.flip,
        "device": device, "precision": getattr(kept["model"], "precision_", "fp32"),
        "recipe_settings": recipe.to_dict(),
    }
    if dataset == "cifar10":
        out["near_duplicates"] = near_duplicates(kept["model"].embed(images))
    print(json.dumps({k: v for k, v in out.items() if k != "recipe_settings"}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--datasets", default="cifar10,fashion_mnist,mnist")
    parser.add_argument("--recipes", default="photo,fast", help="comma-separated, run for every dataset")
    parser.add_argument("--plan", default=None, help="dataset:recipe pairs in the order to run them, e.g. "
                                                     "cifar10:photo,mnist:fast (overrides --datasets/--recipes)")
    parser.add_argument("--cifar-images", type=int, default=None, help="default: 50000 on a GPU, 10000 on the CPU")
    parser.add_argument("--digit-images", type=int, default=None, help="default: 60000 on a GPU, 3000 on the CPU")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    parser.add_argument("--out", default=None, help="result file (default benchmarks/results/model_quality_<device>.json)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in the result file (same dataset, recipe, folds) and run the rest")
    args = parser.parse_args()
    device = select_device(args.device)
    gpu = device.startswith("cuda")
    plan = ([tuple(item.split(":", 1)) for item in args.plan.split(",")] if args.plan else
            [(d, r) for d in args.datasets.split(",") for r in args.recipes.split(",")])
    for dataset, name in plan:
        if name not in RECIPES:
            raise SystemExit(f"unknown recipe {name}; known: {', '.join(RECIPES)}")
        if dataset != "cifar10" and dataset not in bench_data.IDX:
            raise SystemExit(f"unknown dataset {dataset}; known: cifar10, fashion_mnist, mnist")
    started = time.perf_counter()
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"model_quality_{device.split(':')[0]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = json.loads(path.read_text())["runs"] if args.resume and path.is_file() else []
    done = {(r["dataset"], r["recipe"], r["folds"], r["device"]) for r in runs}
    plan = [(d, r) for d, r in plan if (d, r, args.folds, device) not in done]
    out: dict = {}
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dataset, name in plan:
        if dataset not in loaded:
            loaded.clear()  # one dataset in memory at a time
            if dataset == "cifar10":
                loaded[dataset] = bench_data.cifar10(args.cifar_images or (50000 if gpu else 10000))[:2]
            else:
                loaded[dataset] = bench_data.idx_dataset(dataset, args.digit_images or (60000 if gpu else 3000))
        images, labels = loaded[dataset]
        runs.append(run(dataset, images, labels, name, args.folds, device, args.epochs))
        out = summarise(runs, device, started)
        path.write_text(json.dumps(out, indent=2) + "\n")  # after every run: a killed benchmark keeps its figures
    print(json.dumps(out))


def summarise(runs: list[dict], device: str, started: float) -> dict:
    """The result object: top-level keys from the first CIFAR-10 run, then every run."""
    head = next((r for r in runs if r["dataset"] == "cifar10"), runs[0])
    return {
        "benchmark": "model_quality",
        "cifar10_oos_accuracy": head["oos_accuracy"] if head["dataset"] == "cifar10" else None,
        "cifar10_images": head["images"] if head["dataset"] == "cifar10" else 0,
        "cifar10_folds": head["folds"],
        "cifar10_seconds": head["seconds"] if head["dataset"] == "cifar10" else None,
        "recipe": head["recipe"],
        "device": device,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main()
