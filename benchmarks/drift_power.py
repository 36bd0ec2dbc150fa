"""Drift detection power on Fashion-MNIST: how often the drift tests catch a planted shift, and how often they cry wolf.

The fixed model (``FixedModel``, trained from scratch on a seeded subset of the train split) embeds and predicts a
5,000-image reference drawn from the test split and the other 5,000 test images (the pool). Each shift is applied to
the RAW pool images (28x28 uint8, before the model's resize), and the shifted pool goes through the model once; every
trial then samples a target from those precomputed outputs:

- ``none``: a uniform sample of the pool (gives the false-positive rate);
- ``prior``: one class (drawn per trial) makes up 20% of the target instead of its ~10%, the other nine classes keep
  their relative shares: 10% of the target's mass moved to that class (total variation 0.10 from the pool prior);
- ``blur``: Gaussian blur, sigma 1 pixel (``scipy.ndimage.gaussian_filter``, rounded to uint8);
- ``brightness``: pixel values x1.3, clipped at 255;
- ``noise``: additive Gaussian noise, sigma ``--noise-sigma`` grey levels (default 10 of 255), rounded and clipped.

Targets of 100, 500 and 1,000 images, ``--trials`` trials each. Per trial: MMD on the embeddings
(``drift.mmd_test``, 200 permutations, at most 2,000 rows per side) and KS-BBSD on the probabilities
(``drift.ks_bbsd``). The combined detector (the one ``compute_drift`` uses) rejects when MMD p < alpha/2 OR KS-BBSD's
smallest per-class p < alpha/2/K: Bonferroni over the two tests, so its level is at most alpha. ``power`` is the
combined rejection rate; ``power_mmd`` and ``power_ks`` are each test's own rejection rate at the full alpha (as if
used alone). On ``none`` these rates are false-positive rates. Also: the mean fraction of target images above the
OOD threshold (the reference's own 0.95 quantile of leave-one-out k-NN cosine distances), the BBSE error on the prior
shift, and ``seconds_10k_vs_10k``: one MMD test of 10,000 vs 10,000 real 512-d embeddings (subsampled to 2,000 per
side, mmd_test's default). Writes benchmarks/results/drift_power_<device>.json and prints it last.
"""

from __future__ import annotations

import bench_data  # first: it takes benchmarks/ off sys.path (see its docstring)

import argparse
import json
import time
from pathlib import Path

import numpy as np

from active_learning.errors import DataError
from active_learning.data.idx import read_idx_pair
from active_learning.data.images import arrays_to_model_input
from active_learning.model.fixed import FixedModel, Recipe, select_device
from curation_checks.drift import stats as drift

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
SHIFTS = ("none", "prior", "blur", "brightness", "noise")
PRIOR_SHARE = 0.20  # the chosen class's share of a prior-shifted target (pool share ~0.10)


def shift_images(raw: np.ndarray, shift: str, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The raw (N, 28, 28) uint8 images with ``shift`` applied (``none`` and ``prior`` leave the pixels alone)."""
    from scipy.ndimage import gaussian_filter

    if shift in ("none", "prior"):
        return raw
    pixels = raw.astype(np.float64)
    if shift == "blur":
        pixels = gaussian_filter(pixels, sigma=(0, 1.0, 1.0))  # each image on its own: no blur across the stack
    elif shift == "brightness":
        pixels = pixels * 1.3
    elif shift == "noise":
        pixels = pixels + rng.normal(0.0, noise_sigma, size=pixels.shape)
    else:
        raise SystemExit(f"unknown shift {shift!r}; choose from {', '.join(SHIFTS)}")
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def model_outputs(model: FixedModel, raw: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and softmax probabilities of the fixed model on raw 28x28 images, from one forward pass.

    The probabilities are the softmax of the network's last layer (``fc``) applied to the embeddings: the same
    function ``predict_proba`` computes, without running the network twice.
    """
    embeddings = model.embed(arrays_to_model_input(raw, image_size)).astype(np.float64)
    weight = model.net_.fc.weight.detach().float().cpu().numpy().astype(np.float64)
    bias = model.net_.fc.bias.detach().float().cpu().numpy().astype(np.float64)
    logits = embeddings @ weight.T + bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return embeddings, probs / probs.sum(axis=1, keepdims=True)


def draw_target(shift: str, size: int, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pool indices of one target."""
    if shift != "prior":
        return rng.choice(len(labels), size=size, replace=False)
    chosen = rng.integers(0, labels.max() + 1)
    boosted = int(round(PRIOR_SHARE * size))
    members = np.flatnonzero(labels == chosen)
    others = np.flatnonzero(labels != chosen)
    return np.concatenate([rng.choice(members, boosted, replace=False),
                           rng.choice(others, size - boosted, replace=False)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--train-size", type=int, default=10_000, help="seeded subset of the 60k train images")
    parser.add_argument("--epochs", type=int, default=None, help="default: the fixed recipe's")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--shifts", default=",".join(SHIFTS))
    parser.add_argument("--reference-size", type=int, default=5000, help="drawn from the test split; the rest is "
                        "the pool targets are drawn from")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--noise-sigma", type=float, default=10.0, help="grey levels (of 255)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the Fashion-MNIST IDX files")
    args = parser.parse_args()
    device = select_device(args.device)
    started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",")]
    shifts = args.shifts.split(",")
    alpha = args.alpha

    data = args.data
    train_x, train_y = read_idx_pair(data / "train-images-idx3-ubyte.gz", data / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx_pair(data / "t10k-images-idx3-ubyte.gz", data / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(args.seed)
    recipe = Recipe(seed=args.seed) if args.epochs is None else Recipe(epochs=args.epochs, seed=args.seed)
    subset = np.sort(rng.choice(len(train_x), size=min(args.train_size, len(train_x)), replace=False))
    t0 = time.perf_counter()
    model = FixedModel(10, recipe, device=device).fit(arrays_to_model_input(train_x[subset], recipe.image_size),
                                                      train_y[subset].astype(np.int64))
    train_seconds = time.perf_counter() - t0

    order = rng.permutation(len(test_x))
    reference_rows, pool_rows = order[: args.reference_size], order[args.reference_size:]
    reference_labels = test_y[reference_rows].astype(np.int64)
    pool_labels = test_y[pool_rows].astype(np.int64)
    t0 = time.perf_counter()
    reference_emb, reference_probs = model_outputs(model, test_x[reference_rows], recipe.image_size)
    reference_accuracy = float((reference_probs.argmax(1) == reference_labels).mean())
    check = model.predict_proba(arrays_to_model_input(test_x[reference_rows[:256]], recipe.image_size))
    assert np.allclose(check, reference_probs[:256], atol=1e-4), "fc-on-embeddings differs from predict_proba"
    print(f"trained in {train_seconds:.0f} s; reference accuracy {reference_accuracy:.4f}", flush=True)
    ood_threshold = drift.ood_threshold(reference_emb, k=10, quantile=0.95)
    pools: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    pool_accuracy: dict[str, float] = {}
    for index, shift in enumerate(shifts):
        shifted = shift_images(test_x[pool_rows], shift, args.noise_sigma, np.random.default_rng([args.seed, index]))
        emb, probs = model_outputs(model, shifted, recipe.image_size)
        # each pool image's OOD score depends on the reference only: computed once, averaged per trial
        pools[shift] = (emb, probs, drift.ood_scores(reference_emb, emb, k=10))
        pool_accuracy[shift] = round(float((probs.argmax(1) == pool_labels).mean()), 4)
    inference_seconds = time.perf_counter() - t0
    print(f"model outputs for the reference and {len(shifts)} pools in {inference_seconds:.0f} s", flush=True)
    num_classes = reference_probs.shape[1]

    results: dict[str, dict[str, dict]] = {}
    for shift_index, shift in enumerate(shifts):
        emb, probs, ood = pools[shift]
        results[shift] = {}
        for size in sizes:
            t0 = time.perf_counter()
            mmd_reject = ks_reject = combined = 0
            ood_fraction, bbse_error = [], []
            for trial in range(args.trials):
                trial_rng = np.random.default_rng([args.seed, shift_index, size, trial])
                rows = draw_target(shift, size, pool_labels, trial_rng)
                mmd = drift.mmd_test(reference_emb, emb[rows], n_permutations=args.permutations,
                                     random_state=int(trial_rng.integers(2**31)))
                ks = drift.ks_bbsd(reference_probs, probs[rows], alpha=alpha)
                mmd_reject += mmd.p_value < alpha
                ks_reject += ks.drift
                combined += (mmd.p_value < alpha / 2) or (ks.min_p_value < alpha / 2 / num_classes)
                ood_fraction.append(float((ood[rows] > ood_threshold).mean()))
                if shift == "prior":
                    true_prior = np.bincount(pool_labels[rows], minlength=num_classes) / size
                    try:
                        estimate = drift.label_shift_estimate(reference_probs, reference_labels, probs[rows])
                    except DataError:  # e.g. a class the model never predicts: no estimate this trial
                        continue
                    bbse_error.append(0.5 * float(np.abs(estimate.target_prior_estimate - true_prior).sum()))
            entry = {"power": round(combined / args.trials, 4), "power_mmd": round(mmd_reject / args.trials, 4),
                     "power_ks": round(ks_reject / args.trials, 4),
                     "mean_fraction_ood": round(float(np.mean(ood_fraction)), 4), "trials": args.trials,
                     "seconds": round(time.perf_counter() - t0, 1)}
            if shift == "prior":
                entry["bbse_total_variation_error"] = round(float(np.mean(bbse_error)), 4) if bbse_error else None
                entry["bbse_trials"] = len(bbse_error)
            results[shift][str(size)] = entry
            print(shift, size, json.dumps(entry), flush=True)

    # one MMD test of 10k vs 10k real 512-d embeddings (reference + clean pool vs two shifted pools)
    timing_sides = [np.vstack([reference_emb, pools[s][0]]) for s in ("none",) if s in pools]
    other = [pools[s][0] for s in shifts if s not in ("none", "prior")][:2]
    seconds_10k = None
    if timing_sides and len(other) == 2:
        left, right = timing_sides[0][:10_000], np.vstack(other)[:10_000]
        t0 = time.perf_counter()
        drift.mmd_test(left, right, n_permutations=args.permutations, random_state=args.seed)
        seconds_10k = round(time.perf_counter() - t0, 3)

    false_positive = results.get("none", {})
    targets = {}
    if "500" in results.get("prior", {}) and "500" in results.get("blur", {}) and false_positive:
        targets = {"power_500_prior_ge_0.95": results["prior"]["500"]["power"] >= 0.95,
                   "power_500_blur_ge_0.95": results["blur"]["500"]["power"] >= 0.95,
                   "fpr_le_0.05_all_sizes": all(v["power"] <= 0.05 for v in false_positive.values())}
    out = {
        "benchmark": "drift_power",
        "results": results,
        "false_positive_rate": {size: v["power"] for size, v in false_positive.items()},
        "false_positive_rate_mmd": {size: v["power_mmd"] for size, v in false_positive.items()},
        "false_positive_rate_ks": {size: v["power_ks"] for size, v in false_positive.items()},
        "targets_met": targets,
        "seconds_10k_vs_10k": seconds_10k,
        "decision": "combined: MMD p < alpha/2 or KS-BBSD min p < alpha/2/K (Bonferroni over both tests); "
                    "power_mmd: MMD p < alpha; power_ks: KS-BBSD min p < alpha/K",
        "alpha": alpha,
        "permutations": args.permutations,
        "mmd_max_samples_per_side": drift.MAX_SAMPLES_PER_SIDE,
        "noise_sigma_grey_levels": args.noise_sigma,
        "prior_shift": f"one class (random per trial) at {PRIOR_SHARE:.0%} of the target, others proportional",
        "ood_threshold": round(ood_threshold, 5),
        "reference_accuracy": round(reference_accuracy, 4),
        "pool_accuracy": pool_accuracy,
        "setting": f"Fashion-MNIST; fixed model from scratch on a seeded {len(subset)}-image train subset, "
                   f"{recipe.epochs} epochs, on {device}; reference {len(reference_rows)} test images, pool "
                   f"{len(pool_rows)} other test images; {args.trials} trials per shift and size",
        "train_size": int(len(subset)),
        "epochs": recipe.epochs,
        "trials": args.trials,
        "device": device,
        "train_seconds": round(train_seconds, 1),
        "inference_seconds": round(inference_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    bench_data.write_result(out, f"drift_power_{bench_data.device_kind(device)}")


if __name__ == "__main__":
    main()
