"""Test-time augmentation for label errors on the MNIST test set: does averaging the out-of-sample probabilities over
shifted copies of each image rank the 15 human-verified errors higher?

``train SEED OUT.npz``: one seed's stratified 5-fold over the 10k test set with the fixed recipe (the same split and
models as ``label_errors_mnist.py --backend arrays --seeds SEED``); every held-out fold is scored under all 25 shifts
of up to 2 pixels (``active_learning.model.augment.shifted``, the training translations' range) and all are saved.
``report NPZ [NPZ ...]``: for no TTA, the 5 shifts of at most 1 pixel along one axis, the 9 of at most 1 pixel and
all 25, the verified errors in the top 25/50/100 per seed and for the seeds' ensemble, by self-confidence and
normalized margin. Writes benchmarks/results/label_errors_mnist_<device>_tta.json and prints it as the last line.
One seed takes ~25 min on one CPU core; run seeds in parallel processes with OMP_NUM_THREADS=1.
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

from active_learning.model.augment import tta_shifts

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHIFTS = tta_shifts(2)  # the product's, in FixedModel.predict_proba's order
TTA_SETS = {"none": lambda dy, dx: dy == dx == 0, "cross_1px_5": lambda dy, dx: abs(dy) + abs(dx) <= 1,
            "square_1px_9": lambda dy, dx: max(abs(dy), abs(dx)) <= 1, "square_2px_25": lambda dy, dx: True}


def probs_under_shifts(x: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int,
                       device: str | None, recipe=None, log: str = "") -> tuple[np.ndarray, str]:
    """Out-of-sample probabilities of every image under each of the 25 ``SHIFTS``: (25, N, K), and the device.

    The same stratified split and models as ``cross_val_proba(..., seeds=(seed,))``; the held-out images of each
    fold are scored under every shift, kept apart (``cross_val_proba`` with ``tta_px`` averages them).
    """
    from sklearn.model_selection import StratifiedKFold

    from active_learning.model.augment import shifted
    from active_learning.model.fixed import FixedModel, Recipe

    recipe = recipe or Recipe()
    probs = np.zeros((len(SHIFTS), len(x), num_classes), np.float32)
    started = time.perf_counter()
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)  # cross_val_proba's split for this seed
    for fold, (fit, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        model = FixedModel(num_classes, recipe.with_seed(seed), device=device).fit(x[fit], labels[fit])
        for j, (dy, dx) in enumerate(SHIFTS):
            probs[j, held_out] = model.predict_proba(shifted(x[held_out], dy, dx))
        print(f"{log}seed {seed} fold {fold}: {time.perf_counter() - started:.0f} s", flush=True)
    return probs, model.device_


def train(seed: int, out: str, device: str | None) -> None:
    from active_learning.data.idx import read_idx_pair
    from active_learning.data.images import arrays_to_model_input
    from active_learning.model.fixed import Recipe

    images, labels = read_idx_pair(DATA / "mnist" / "t10k-images-idx3-ubyte.gz",
                                   DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    x = arrays_to_model_input(images, Recipe().image_size)
    labels = labels.astype(np.int64)
    started = time.perf_counter()
    probs, device_used = probs_under_shifts(x, labels, 10, 5, seed, device)
    np.savez_compressed(out, probs=probs, labels=labels, shifts=np.array(SHIFTS), seed=seed,
                        seconds=time.perf_counter() - started, device=device_used)


def report(paths: list[str], sheet: str | None = None) -> None:
    import importlib.util

    path = Path(__file__).with_name("label_errors_mnist.py")
    spec = importlib.util.spec_from_file_location("label_errors_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verified_counts = module.verified_counts

    runs = [np.load(p) for p in paths]
    labels = runs[0]["labels"]
    out: dict = {"benchmark": "label_errors_mnist_tta", "seeds": [int(r["seed"]) for r in runs], "folds": 5,
                 "probabilities": "out-of-sample, stratified 5-fold over the 10k test set, fixed recipe",
                 "by_tta": {}}
    ensembles: dict[str, np.ndarray] = {}
    for name, keep in TTA_SETS.items():
        chosen = [j for j, s in enumerate(SHIFTS) if keep(*s)]
        per_seed = [r["probs"][chosen].mean(axis=0) for r in runs]
        per_seed = [p / p.sum(axis=1, keepdims=True) for p in per_seed]
        ensemble = np.mean(per_seed, axis=0)
        ensemble /= ensemble.sum(axis=1, keepdims=True)
        ensembles[name] = ensemble
        entry: dict = {"shifts": len(chosen),
                       "out_of_sample_accuracy": round(float((ensemble.argmax(1) == labels).mean()), 4)}
        for method in ("self_confidence", "normalized_margin"):
            counts = verified_counts(labels, ensemble, method)
            entry[method] = {"ensemble": {k: counts[k] for k in ("verified_in_top25", "verified_in_top50",
                                                                 "verified_in_top100", "verified_ranks")},
                             "single_seed_top50": [verified_counts(labels, p, method)["verified_in_top50"]
                                                   for p in per_seed]}
        out["by_tta"][name] = entry
    headline = ensembles["square_2px_25"]
    best = verified_counts(labels, headline, "self_confidence")
    out.update({k: best[k] for k in ("verified_in_top25", "verified_in_top50", "verified_in_top100",
                                     "kept_by_crowd_in_top50", "never_checked_in_top50",
                                     "never_checked_top50_indices")})
    out["headline"] = "square_2px_25, self_confidence, ensemble of the seeds"
    if sheet:
        rank = module.check_result(labels, headline, "self_confidence").per_sample["rank"]
        print("top 50 suspects:", module.top50_sheet(rank, headline, sheet))
    out["seconds"] = round(float(sum(float(r["seconds"]) for r in runs)), 1)
    out["seconds_note"] = "training and 25-shift scoring, summed over the seeds (each seed one process, one thread)"
    device = str(runs[0]["device"])
    out["device"] = device
    out["reference_cleanlab_published_top50"] = 11
    path = ROOT / "benchmarks" / "results" / f"label_errors_mnist_{device.split(':')[0]}_tta.json"
    path.write_text(json.dumps(out, indent=2, default=int) + "\n")
    print(json.dumps(out, default=int))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("seed", type=int)
    p.add_argument("out")
    p.add_argument("--device", default=None)
    p = sub.add_parser("report")
    p.add_argument("npz", nargs="+")
    p.add_argument("--sheet", default=None, help="write a PNG of the ensemble's top 50 suspects, captioned")
    args = parser.parse_args()
    if args.command == "train":
        train(args.seed, args.out, args.device)
    else:
        report(args.npz, args.sheet)


if __name__ == "__main__":
    main()
