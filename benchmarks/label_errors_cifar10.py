"""Planted label noise on CIFAR-10 photos: does the label-errors check find it, and does it say when it can't?

Settings: uniform 10% and 20% (a flipped label goes to a random other class) and class-conditional 20% between
look-alike classes (cat <-> dog, automobile <-> truck, deer <-> horse). For each: out-of-sample probabilities by
stratified K-fold with the photo recipe (trained from scratch on the noisy labels, with the recipe's default
test-time augmentation), then the ``label_errors`` check as the product runs it: its flags' precision, recall and
F1 against the planted flips, the ranking's average precision, the number flagged vs planted, and the trust
verdict the check records. The same probabilities are also scored with cleanlab's ``prune_by_noise_rate`` (the
earlier default), and the suggested labels' accuracy is given per confidence floor (what "Accept suggested label"
may take). A seeded, class-stratified subset of N photos from the JPEG folder tree; on the CPU 10,000 photos and
3 folds, on a GPU all 50,000 and 5 folds (the JSON says which). Writes
benchmarks/results/label_errors_cifar10_<device>.json and prints it as the last line.

``--passes 2`` adds a second pass per setting, as ``curation label-errors --passes 2`` runs it: the same folds
retrained without the first pass's flagged samples, every sample scored again, under ``second_pass``.
``--first-pass-probs FILE`` takes the first pass's probabilities from an earlier ``--save-probs`` file instead of
training them again (checked against the planted labels). ``--merge A.json B.json ...`` writes one result from
per-setting runs of the same recipe, images and folds (the sources are listed).
"""

from __future__ import annotations

import bench_data  # first: it takes benchmarks/ off sys.path (see its docstring)

import argparse
import json
import time
from pathlib import Path

import numpy as np

from active_learning.model.fixed import uses_bf16, default_tta_px, named_recipe, select_device
from active_learning.model.splits import cross_val_proba
from curation_checks.base import CheckInputs
from curation_checks.label_errors import DEFAULT_FILTER, LabelErrors


ROOT = Path(__file__).resolve().parents[1]
LOOK_ALIKE = {3: 5, 5: 3, 1: 9, 9: 1, 4: 7, 7: 4}  # cat<->dog, automobile<->truck, deer<->horse
CONFIDENCE_FLOORS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def flag_scores(flag: np.ndarray, planted: np.ndarray) -> dict:
    """Precision, recall, F1 of boolean flags against the planted flips."""
    true_positive = int((flag & planted).sum())
    precision = true_positive / max(int(flag.sum()), 1)
    recall = true_positive / max(int(planted.sum()), 1)
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4), "flagged": int(flag.sum())}


def lowest_quality_flags(labels: np.ndarray, probs: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Flags on the k lowest label qualities, k = cleanlab's off-diagonal count of the confident joint."""
    from cleanlab.count import num_label_issues

    k = int(num_label_issues(labels, probs, estimation_method="off_diagonal"))
    flag = np.zeros(len(labels), dtype=bool)
    flag[np.argsort(quality, kind="stable")[:k]] = True
    return flag


def score_setting(noisy: np.ndarray, clean: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """The check's figures for one setting's out-of-sample probabilities."""
    from sklearn.metrics import average_precision_score

    planted = noisy != clean
    ids = tuple(str(i) for i in range(len(noisy)))
    inputs = CheckInputs(ids, classes, noisy, probs)
    result = LabelErrors().run(inputs)
    flag = np.asarray(result.per_sample["flag"], dtype=bool)
    quality = np.asarray(result.per_sample["score"], dtype=np.float64)
    suggested = probs.argmax(1)
    confidence = probs[np.arange(len(probs)), suggested]
    verdict = result.summary["trust"]
    out = {
        **flag_scores(flag, planted),
        "ap": round(float(average_precision_score(planted, -quality)), 4),
        "planted": int(planted.sum()),
        "verdict": "trusted" if verdict["trusted"] else "not trusted",
        "verdict_message": verdict["message"],
        "filter_rule": DEFAULT_FILTER,
        "filter_by": result.summary["filter_by"],  # the rule the product's default chose at this accuracy
        "oos_accuracy_vs_given": round(float((suggested == noisy).mean()), 4),
        "oos_accuracy_vs_clean": round(float((suggested == clean).mean()), 4),
        "by_rule": {rule: flag_scores(np.asarray(LabelErrors(filter_by=rule).run(inputs).per_sample["flag"],
                                                 dtype=bool), planted)
                    for rule in ("predicted_neq_given", "prune_by_noise_rate")},
        # a candidate rule for weak models (docs/model.md): the k lowest label qualities, k = the off-diagonal count
        "candidate_rules": {"quality_ranked_off_diagonal_count": flag_scores(lowest_quality_flags(noisy, probs, quality),
                                                                               planted)},
        "suggestions_by_confidence": {},
    }
    for floor in CONFIDENCE_FLOORS:
        taken = flag & (confidence >= floor)
        out["suggestions_by_confidence"][f"{floor:.1f}"] = {
            "taken": int(taken.sum()),
            "right": round(float((suggested[taken] == clean[taken]).mean()), 4) if taken.any() else None,
        }
    return out


def product_flags(noisy: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """The flags of the ``label_errors`` check with its defaults (what a second pass leaves out)."""
    inputs = CheckInputs(tuple(str(i) for i in range(len(noisy))), classes, noisy, probs)
    return np.asarray(LabelErrors().run(inputs).per_sample["flag"], dtype=bool)


MERGE_SAME = ("images", "folds", "recipe", "recipe_settings", "device")


def merge_results(paths: list[Path]) -> dict:
    """One result from per-setting runs: their settings side by side, provided they share ``MERGE_SAME``. Each
    setting keeps its source file, precision (bf16 and fp32 agree within the seed-to-seed spread; docs/model.md)
    and seconds."""
    results = [json.loads(p.read_text()) for p in paths]
    first = results[0]
    for path, result in zip(paths, results):
        differing = [k for k in MERGE_SAME if result.get(k) != first.get(k)]
        if differing:
            raise SystemExit(f"{path} differs from {paths[0]} in {', '.join(differing)}: not one benchmark")
    settings: dict = {}
    for path, result in zip(paths, results):
        for name, figures in result["settings"].items():
            settings[name] = {**figures, "source": path.name, "precision": result.get("precision")}
    return {**{k: v for k, v in first.items() if k not in ("settings", "seconds", "note")},
            "settings": settings, "passes": max(r.get("passes", 1) for r in results),
            "precision": "/".join(sorted({str(r.get("precision")) for r in results})),
            "merged_from": [p.name for p in paths], "seconds": round(sum(r["seconds"] for r in results), 1),
            "setting": first["setting"] + "; each setting from its own run (merged_from)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=None, help="default: 50000 on a GPU, 10000 on the CPU")
    parser.add_argument("--folds", type=int, default=None, help="default: 5 on a GPU, 3 on the CPU")
    parser.add_argument("--recipe", default="photo")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--settings", default="uniform10,uniform20,lookalike20")
    parser.add_argument("--out", default=None)
    parser.add_argument("--save-probs", default=None, help="also save every setting's probabilities and labels "
                                                           "(.npz) to rescore them without training")
    parser.add_argument("--passes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--first-pass-probs", default=None, help="an earlier --save-probs file")
    parser.add_argument("--merge", nargs="+", default=None, help="per-setting result files to merge into --out")
    args = parser.parse_args()
    if args.merge:
        bench_data.write_result(merge_results([Path(f) for f in args.merge]), "label_errors_cifar10_cpu", args.out)
        return
    device = select_device(args.device)
    gpu = device.startswith("cuda")
    size = args.images or (50000 if gpu else 10000)
    folds = args.folds or (5 if gpu else 3)
    recipe = named_recipe(args.recipe, **({"epochs": args.epochs} if args.epochs else {}))
    started = time.perf_counter()
    first_pass = dict(np.load(args.first_pass_probs)) if args.first_pass_probs else None
    images, clean, class_names, _ = bench_data.cifar10(size)
    classes = tuple(class_names)
    settings: dict[str, dict] = {}
    saved: dict[str, np.ndarray] = {}
    for setting in args.settings.split(","):
        t0 = time.perf_counter()
        noisy = bench_data.plant(setting, clean, LOOK_ALIKE)
        loaded = first_pass is not None and setting in first_pass
        if loaded:
            probs = first_pass[setting]
            if not np.array_equal(first_pass[f"{setting}_labels"], noisy):
                raise SystemExit(f"{args.first_pass_probs}: {setting} was saved with other labels or images")
        else:
            probs = cross_val_proba(images, noisy, len(classes), folds, recipe, device=device,
                                    tta_px=default_tta_px(recipe))
        settings[setting] = {**score_setting(noisy, clean, probs, classes),
                             "seconds": None if loaded else round(time.perf_counter() - t0, 1),
                             "first_pass_from": args.first_pass_probs if loaded else None}
        saved[setting] = probs
        saved[f"{setting}_labels"] = noisy
        if args.save_probs:  # the first pass is kept even if the second one is interrupted
            np.savez_compressed(args.save_probs, clean=clean, **saved)
        if args.passes == 2:
            t1 = time.perf_counter()
            keep = ~product_flags(noisy, probs, classes)
            second = cross_val_proba(images, noisy, len(classes), folds, recipe, device=device,
                                     tta_px=default_tta_px(recipe), train_mask=keep)
            settings[setting]["second_pass"] = {**score_setting(noisy, clean, second, classes),
                                                "trained_on": int(keep.sum()),
                                                "seconds": round(time.perf_counter() - t1, 1)}
            saved[f"{setting}_pass2"] = second
        print(setting, json.dumps(settings[setting]), flush=True)
        if args.save_probs:
            np.savez_compressed(args.save_probs, clean=clean, **saved)
    out = {
        "benchmark": "label_errors_cifar10",
        "settings": settings,
        "images": size,
        "folds": folds,
        "recipe": recipe.name,
        "epochs": recipe.epochs,
        "recipe_settings": recipe.to_dict(),
        "device": device,
        "precision": "bf16" if uses_bf16(device) else "fp32",
        "passes": args.passes,
        "setting": f"CIFAR-10 photos, seeded class-stratified {size}-image subset of the training set, "
                   f"{folds}-fold out-of-sample probabilities, recipe {recipe.name}, on {device}",
        "seconds": round(time.perf_counter() - started, 1),
    }
    bench_data.write_result(out, f"label_errors_cifar10_{bench_data.device_kind(device)}", args.out)


if __name__ == "__main__":
    main()
