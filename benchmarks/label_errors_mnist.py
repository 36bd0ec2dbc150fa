"""Label errors on the MNIST test set, scored against the 15 human-verified errors (../shared/data).

The product's own path end to end: import the 10k MNIST test images into FiftyOne, out-of-sample probabilities
from the fixed model trained from scratch by K-fold (``compute_model_outputs``), then the ``label_errors`` check
(cleanlab). We count how many of the verified errors fall in the top 25/50/100 suspects (rank by label quality).
Test-time augmentation as the product does it (``--tta-px``, default 2); ``--tta-px 0`` reproduces the plain
figures committed before it. Writes benchmarks/results/label_errors_mnist_<device>[_tta<N>].json and prints the
same JSON as the last line.
Reference: cleanlab's published probabilities place 11 of the 15 in the top 50.

``--backend arrays`` runs the same model and check on in-memory arrays (no FiftyOne, no MongoDB: for machines
such as a lent GPU box that have neither); ``--jobs N`` then trains the seeds of an ensemble in N processes
(several small trainings share one GPU far better than one after another). Both backends also report the
counts for every cleanlab rank method and for each seed alone, from the same probabilities.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder's active_learning.py must not shadow the active_learning package

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from active_learning.model.fixed import DEFAULT_TTA_PX

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def crowd_verdicts() -> dict[int, bool]:
    """The 100 candidates the crowd checked: test-set index -> whether it is a verified error (fewer than 3 of 5
    workers kept the given label). Any other image was never shown to a worker: unknown, not necessarily right."""
    with open(DATA / "mnist-label-errors" / "mnist_mturk_candidates_with_verdict.csv") as handle:
        return {int(row["test_index"]): row["is_label_error"] == "1" for row in csv.DictReader(handle)}


def verified_errors() -> set[int]:
    """Test-set indices whose given label fewer than 3 of 5 workers kept (15, as published)."""
    return {index for index, is_error in crowd_verdicts().items() if is_error}


def counts_from_ranks(rank) -> dict:
    """Where the verified errors rank, given each test image's rank (1 = most suspect; indexable by test index),
    and what else the top 50 holds: candidates the crowd kept as given, and images never checked. A detector whose
    suspects differ from the model that chose the 100 candidates finds its other suspects counted as misses."""
    verdicts = crowd_verdicts()
    ranks = sorted(int(rank[i]) for i, is_error in verdicts.items() if is_error)
    top50 = [i for i in range(len(rank)) if rank[i] <= 50]
    never_checked = sorted((int(i) for i in top50 if i not in verdicts), key=lambda i: rank[i])
    return {"verified_in_top25": sum(r <= 25 for r in ranks), "verified_in_top50": sum(r <= 50 for r in ranks),
            "verified_in_top100": sum(r <= 100 for r in ranks), "verified_ranks": ranks,
            "kept_by_crowd_in_top50": sum(1 for i in top50 if verdicts.get(i) is False),
            "never_checked_in_top50": len(never_checked), "never_checked_top50_indices": never_checked}


def top50_sheet(rank, probs, path: str | Path) -> str:
    """A PNG of the 50 most suspect test images, worst first, each captioned with its rank, the crowd's verdict
    (VERIFIED error / kept by the crowd / never checked), the given label and the model's most likely class: for a
    person to look at what the count cannot judge (the never-checked suspects)."""
    from PIL import Image, ImageDraw

    from active_learning.data.idx import read_idx_pair

    images, labels = read_idx_pair(DATA / "mnist" / "t10k-images-idx3-ubyte.gz",
                                   DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    verdicts = crowd_verdicts()
    top = sorted((i for i in range(len(rank)) if rank[i] <= 50), key=lambda i: rank[i])
    scale, columns, caption = 3, 10, 30
    side = 28 * scale
    sheet = Image.new("L", (columns * side, -(-len(top) // columns) * (side + caption)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(top):
        x, y = (k % columns) * side, (k // columns) * (side + caption)
        sheet.paste(Image.fromarray(255 - images[i]).resize((side, side), Image.NEAREST), (x, y))
        verdict = {True: "VERIFIED", False: "kept"}.get(verdicts.get(i), "unchecked")
        draw.text((x + 2, y + side + 1), f"#{int(rank[i])} {verdict}", fill=0)
        draw.text((x + 2, y + side + 14), f"i{i} given {labels[i]} p {int(np.argmax(probs[i]))}", fill=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--split", choices=("kfold", "train-set"), default="kfold",
                        help="kfold: K-fold over the 10k test set; train-set: one model per seed trained on the "
                             "disjoint 60k MNIST training set scores the test set")
    parser.add_argument("--seeds", default="0", help="comma-separated; several = an ensemble")
    parser.add_argument("--epochs", type=int, default=None, help="default: the fixed recipe's")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rank-method", default="self_confidence")
    parser.add_argument("--backend", choices=("fiftyone", "arrays"), default="fiftyone")
    parser.add_argument("--jobs", type=int, default=1, help="arrays backend: seeds trained in parallel processes")
    parser.add_argument("--tta-px", type=int, default=DEFAULT_TTA_PX,
                        help=f"test-time augmentation: average the probabilities over shifts of up to N pixels "
                             f"(default {DEFAULT_TTA_PX}, the product's; 0 = plain, as the figures before it; "
                             f"label_errors_mnist_tta.py compares the settings on the same models)")
    parser.add_argument("--save-probs", default=None, help="arrays backend: write the per-seed probabilities (.npz)")
    parser.add_argument("--sheet", default=None, help="arrays backend: write a PNG of the top 50 suspects, captioned")
    args = parser.parse_args()
    if args.backend == "arrays":
        return main_arrays(args)

    import fiftyone as fo

    from active_learning.data.importers import import_dataset
    from active_learning.model.fixed import Recipe, select_device
    from active_learning.model.outputs import compute_model_outputs
    from curation_checks.io import run_check

    device = select_device(args.device)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
    started = time.perf_counter()
    name = "curation-bench-mnist-test"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "mnist-test"
        source.mkdir()
        for file in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            (source / file).symlink_to(DATA / "mnist" / file)
        dataset = import_dataset(name, str(source), overwrite=True, progress=False,
                                 media_dir=str(Path(tmp) / "media"))
        model = compute_model_outputs(dataset, folds=args.folds, seeds=seeds, recipe=recipe, device=device,
                                      tta_px=args.tta_px)
        result = run_check(dataset, "label_errors", rank_method=args.rank_method)
        index, rank = dataset.values(["source_index", "label_issue_rank"])
        fo.delete_dataset(name)
    seconds = time.perf_counter() - started
    rank_by_index = np.zeros(len(index), np.int64)
    rank_by_index[np.asarray(index)] = rank
    out = {
        "benchmark": "label_errors_mnist",
        **counts_from_ranks(rank_by_index),
        "num_verified": len(verified_errors()),
        "num_flagged": result.summary["num_issues"],
        "out_of_sample_accuracy": round(model.out_of_sample_accuracy, 4),
        "folds": args.folds,
        "seeds": list(seeds),
        "epochs": recipe.epochs,
        "rank_method": args.rank_method,
        "tta_px": args.tta_px,
        "seconds": round(seconds, 1),
        "device": device,
        "reference_cleanlab_published_top50": 11,
    }
    write_result(out, device)


def write_result(out: dict, device: str) -> None:
    """benchmarks/results/label_errors_mnist_<device>[_train-set][_tta<N>].json, and the same JSON printed last."""
    suffix = "_train-set" if out.get("split") == "train-set" else ""
    suffix += f"_tta{out['tta_px']}" if out.get("tta_px") else ""
    path = ROOT / "benchmarks" / "results" / f"label_errors_mnist_{device.split(':')[0]}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


def seed_probs(seed: int, folds: int, epochs: int | None, device: str, split: str = "kfold",
               tta_px: int = 0) -> np.ndarray:
    """Out-of-sample probabilities of the MNIST test set from one seed (one process per seed).

    ``kfold``: the seed's K-fold over the test set. ``train-set``: a model trained on the disjoint training set.
    """
    from active_learning.data.idx import read_idx_pair
    from active_learning.data.images import arrays_to_model_input
    from active_learning.model.fixed import Recipe
    from active_learning.model.splits import cross_val_proba, disjoint_proba

    images, labels = read_idx_pair(DATA / "mnist" / "t10k-images-idx3-ubyte.gz",
                                   DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    recipe = Recipe() if epochs is None else Recipe(epochs=epochs)
    images = arrays_to_model_input(images, recipe.image_size)
    if split == "train-set":
        train_images, train_labels = read_idx_pair(DATA / "mnist" / "train-images-idx3-ubyte.gz",
                                                   DATA / "mnist" / "train-labels-idx1-ubyte.gz")
        return disjoint_proba(arrays_to_model_input(train_images, recipe.image_size), train_labels.astype("int64"),
                              images, 10, recipe, seeds=(seed,), device=device, tta_px=tta_px)[0]
    return cross_val_proba(images, labels.astype("int64"), 10, folds, recipe, seeds=(seed,), device=device,
                           tta_px=tta_px)


def check_result(labels, probs, rank_method: str):
    """The label_errors check run on in-memory arrays (per-sample rank, flags, summary)."""
    from curation_checks.base import CheckInputs
    from curation_checks.label_errors import LabelErrors

    return LabelErrors(rank_method=rank_method).run(
        CheckInputs(tuple(map(str, range(len(labels)))), tuple(map(str, range(10))), labels, probs))


def verified_counts(labels, probs, rank_method: str) -> dict:
    """Where the verified errors rank under ``rank_method`` (the label_errors check's ranking)."""
    result = check_result(labels, probs, rank_method)
    return {**counts_from_ranks(result.per_sample["rank"]), "num_flagged": int(result.summary["num_issues"])}


def main_arrays(args) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from active_learning.data.idx import read_idx_pair
    from active_learning.model.fixed import Recipe, select_device

    device = select_device(args.device)
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = args.epochs if args.epochs is not None else Recipe().epochs
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        per_seed = list(pool.map(seed_probs, seeds, [args.folds] * len(seeds), [epochs] * len(seeds),
                                 [device] * len(seeds), [args.split] * len(seeds), [args.tta_px] * len(seeds)))
    seconds = time.perf_counter() - started
    _, labels = read_idx_pair(DATA / "mnist" / "t10k-images-idx3-ubyte.gz",
                              DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    labels = labels.astype(np.int64)
    probs = np.mean(per_seed, axis=0)
    probs /= probs.sum(axis=1, keepdims=True)
    if args.save_probs:
        np.savez_compressed(args.save_probs, labels=labels, seeds=np.asarray(seeds),
                            **{f"seed_{s}": p for s, p in zip(seeds, per_seed)})
    main_counts = verified_counts(labels, probs, args.rank_method)
    if args.sheet:
        print("top 50 suspects:", top50_sheet(check_result(labels, probs, args.rank_method).per_sample["rank"],
                                              probs, args.sheet))
    from curation_checks.label_errors import RANK_METHODS

    out = {
        "benchmark": "label_errors_mnist",
        **main_counts,
        "num_verified": len(verified_errors()),
        "out_of_sample_accuracy": round(float((probs.argmax(1) == labels).mean()), 4),
        "by_rank_method": {m: {k: v for k, v in verified_counts(labels, probs, m).items()
                               if k not in ("verified_ranks", "never_checked_top50_indices")}
                           for m in RANK_METHODS},
        "single_seed_top50": {str(s): verified_counts(labels, p / p.sum(1, keepdims=True), args.rank_method)
                              ["verified_in_top50"] for s, p in zip(seeds, per_seed)},
        "split": args.split,
        "probabilities": (f"out-of-sample, stratified {args.folds}-fold over the 10k test set" if args.split == "kfold"
                          else "out-of-sample, model trained on the disjoint 60k MNIST training set"),
        "folds": args.folds if args.split == "kfold" else None,
        "seeds": seeds,
        "epochs": epochs,
        "rank_method": args.rank_method,
        "tta_px": args.tta_px,
        "backend": "arrays (the library's model and check on in-memory arrays; no FiftyOne)",
        "seconds": round(seconds, 1),
        "jobs": args.jobs,
        "device": device,
        "reference_cleanlab_published_top50": 11,
    }
    write_result(out, device)


if __name__ == "__main__":
    main()
