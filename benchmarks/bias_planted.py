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
  label as a categorical field, with crossed (two-field) slices as ``compute_bias`` does by default
  (``crosses=True``: e.g. ``label = 'Shirt' & brightness < 0.12`` or ``brightness < 0.1 & contrast < 0.2``), and
  without them (one-field slices only, under ``slices_one_field``);
- the **field-free search**: ``underperforming_groups`` on the embeddings of the fixed model trained on the whole
  (planted) subset, as ``curation model`` computes them, with the default number of groups.

Note that half of the planted (darkened) images carry a *given* label other than the planted class: the model,
which learns "dark shirt -> Shirt", is wrong mostly on those, so the errors of the planted slice are spread over the
given labels, and "given label = Shirt AND dark" holds mainly the darkened images it gets right.

Matching: the slice (or group) that "is" the planted one is the one with the highest Jaccard index
|S & P| / |S | P| with the planted samples P (ties: the better-ranked one). ``planted_slice_rank`` is its position
in the search's worst-first order (1 = found first). We also report precision |S & P| / |S| and recall
|S & P| / |P| of the top-ranked slice/group, and of the matching one.

The expensive part (K-fold out-of-sample probabilities and the final model's embeddings) can be saved once with
``--save-arrays PATH.npz`` and reused with ``--load-arrays PATH.npz`` (the planting is redone from the seed and
checked against the saved given labels and planted indices), so that the searches can be rerun in seconds.

Defaults: on a GPU the full train set and 5 folds; on the CPU a seeded 4,000-image subset and 3 folds (the JSON
says which). Writes benchmarks/results/bias_planted_<device>.json (or ``--out``) and prints it as the last line.
"""

from __future__ import annotations

import bench_data  # first: it takes benchmarks/ off sys.path (see its docstring)

import argparse
import time
from pathlib import Path

import numpy as np

from active_learning.data.idx import read_idx_pair
from active_learning.data.images import arrays_to_model_input
from active_learning.model.fixed import FixedModel, Recipe, select_device
from active_learning.model.splits import cross_val_proba
from curation_checks.bias.groups import underperforming_groups
from curation_checks.bias.images import image_statistics
from curation_checks.bias.slice_search import slice_performance
from curation_checks.bias.settings import DEFAULT_CROSS_PARENTS
from curation_checks.bias.slices import SliceStat

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


def _load_arrays(path: str) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    bench_data.fashion_training_arguments(parser)
    parser.add_argument("--planted-class", type=int, default=6, help="class index to plant in (default 6, Shirt)")
    parser.add_argument("--fraction", type=float, default=0.3, help="share of the class's images darkened")
    parser.add_argument("--darken", type=float, default=0.35, help="pixel factor of the darkened images")
    parser.add_argument("--flip", type=float, default=0.5, help="share of the darkened images mislabeled")
    parser.add_argument("--bins", default="4,10", help="quantile bins per numeric field, comma-separated settings")
    parser.add_argument("--n-groups", type=int, default=None, help="default: underperforming_groups' automatic")
    parser.add_argument("--min-size", type=int, default=20)
    parser.add_argument("--max-cross-parents", type=int, default=DEFAULT_CROSS_PARENTS,
                        help="one-field slices crossed at most (slice_performance's cap)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-arrays", default=None, metavar="PATH.npz",
                        help="save the out-of-sample probabilities and embeddings (with the planting) for reuse")
    parser.add_argument("--load-arrays", default=None, metavar="PATH.npz",
                        help="reuse saved probabilities and embeddings instead of training (same planting flags)")
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/results/bias_planted_<device>"
                                                    ".json, device of the run that computed the arrays)")
    args = parser.parse_args()
    started = time.perf_counter()
    saved = _load_arrays(args.load_arrays) if args.load_arrays else None
    if saved is not None:  # the settings that made the arrays win over the defaults
        device = str(saved["device"])
        size, folds, epochs = int(saved["train_size"]), int(saved["folds"]), int(saved["epochs"])
        for name, value in (("train_size", args.train_size), ("folds", args.folds), ("epochs", args.epochs)):
            if value is not None and value != int(saved[name]):
                raise SystemExit(f"--{name.replace('_', '-')} {value} differs from the saved arrays' {saved[name]}.")
        recipe = Recipe(epochs=epochs)
    else:
        device = select_device(args.device)
        recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
    gpu = device.startswith("cuda")
    train_x, train_y = read_idx_pair(DATA / "train-images-idx3-ubyte.gz", DATA / "train-labels-idx1-ubyte.gz")
    if saved is None:
        size = args.train_size or (len(train_x) if gpu else 4000)
        folds = args.folds or (5 if gpu else 3)
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(len(train_x), size=size, replace=False))
    raw, clean = train_x[subset], train_y[subset].astype(np.int64)
    raw, given, planted, flipped = plant(raw, clean, args.planted_class, args.fraction, args.darken, args.flip, rng)
    stats = image_statistics(raw)

    if saved is not None:
        for name, ours in (("subset", subset), ("given", given), ("planted", planted)):
            if not np.array_equal(saved[name], ours):
                raise SystemExit(f"The saved arrays were made with another planting ({name} differs): pass the "
                                 "same --seed, --planted-class, --fraction, --darken and --flip as when saving.")
        probs, embeddings = saved["probs"], saved["embeddings"]
        cv_seconds, train_seconds = float(saved["seconds_cross_val"]), float(saved["seconds_final_model"])
    else:
        images = arrays_to_model_input(raw, recipe.image_size)
        t0 = time.perf_counter()
        probs = cross_val_proba(images, given, len(CLASSES), folds, recipe, device=device)
        cv_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        final = FixedModel(len(CLASSES), recipe, device=device).fit(images, given)
        embeddings = final.embed(images)
        train_seconds = time.perf_counter() - t0
        if args.save_arrays:
            Path(args.save_arrays).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.save_arrays, probs=probs, embeddings=embeddings, subset=subset, given=given,
                                planted=planted, device=device, train_size=size, folds=folds, epochs=recipe.epochs,
                                seed=args.seed, planted_class=args.planted_class, fraction=args.fraction,
                                darken=args.darken, flip=args.flip, seconds_cross_val=cv_seconds,
                                seconds_final_model=train_seconds)
    correct = probs.argmax(axis=1) == given

    slice_values = {"brightness": stats.brightness, "contrast": stats.contrast, "label": [CLASSES[i] for i in given]}
    slice_results, one_field_results, slice_seconds = {}, {}, {}
    for bins in (int(b) for b in args.bins.split(",")):
        for crosses, results in ((True, slice_results), (False, one_field_results)):
            t0 = time.perf_counter()
            result = slice_performance(correct, slice_values, min_size=args.min_size, bins=bins,
                                       numeric=["brightness", "contrast"], crosses=crosses,
                                       max_cross_parents=args.max_cross_parents)
            slice_seconds[f"bins{bins}{'_crossed' if crosses else ''}"] = round(time.perf_counter() - t0, 3)
            results[f"bins{bins}"] = {**match(result.slices, planted), "num_crossed": result.num_crossed,
                                      "num_cross_parents": result.num_cross_parents}

    t0 = time.perf_counter()
    groups = underperforming_groups(embeddings, correct, n_groups=args.n_groups, min_size=args.min_size,
                                    labels=given, classes=CLASSES, random_state=args.seed)
    group_seconds = time.perf_counter() - t0
    group_result = {**match(groups.groups, planted), "n_groups": groups.n_groups}

    out = {
        "benchmark": "bias_planted",
        "slices": slice_results,
        "slices_one_field": one_field_results,
        "groups": group_result,
        "planted": {"class": CLASSES[args.planted_class], "darkened": int(len(planted)),
                    "mislabeled": int(len(flipped)), "darken_factor": args.darken,
                    "accuracy_in_planted": round(float(correct[planted].mean()), 4),
                    "accuracy_elsewhere": round(float(np.delete(correct, planted).mean()), 4),
                    "brightness_planted_mean": round(float(stats.brightness[planted].mean()), 4),
                    "brightness_all_mean": round(float(stats.brightness.mean()), 4)},
        "planted_given_label_is_planted_class": int((given[planted] == args.planted_class).sum()),
        "out_of_sample_accuracy": round(float(correct.mean()), 4),
        "setting": f"Fashion-MNIST, {'full train set' if size == len(train_x) else f'seeded {size}-image subset'}, "
                   f"{folds}-fold out-of-sample probabilities, {recipe.epochs} epochs, on {device}; arrays only "
                   "(no FiftyOne): the same functions compute_bias calls",
        "matching": "the slice/group with the highest Jaccard index with the planted (darkened) samples; rank 1 = "
                    "first in the search's worst-first order",
        "slice_search": "slices: one-field and crossed (two-field) slices in one Holm family, as compute_bias does "
                        f"by default (at most {args.max_cross_parents} one-field slices crossed); slices_one_field: "
                        "one-field slices only",
        "arrays": f"loaded from {args.load_arrays}" if saved is not None else (
            f"computed, saved to {args.save_arrays}" if args.save_arrays else "computed"),
        "train_size": size,
        "folds": folds,
        "epochs": recipe.epochs,
        "min_size": args.min_size,
        "device": device,
        "seconds_cross_val": round(cv_seconds, 1),
        "seconds_slice_search": slice_seconds,
        "seconds_final_model": round(train_seconds, 1),
        "seconds_group_search": round(group_seconds, 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    bench_data.write_result(out, f"bias_planted_{bench_data.device_kind(device)}", args.out)


if __name__ == "__main__":
    main()
