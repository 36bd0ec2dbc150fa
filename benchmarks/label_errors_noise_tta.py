"""Test-time augmentation on a second dataset: Fashion-MNIST with planted label noise (label_errors_noise.py's
settings and subset). Does averaging the out-of-sample probabilities over shifted copies find the planted flips
better, or was the MNIST gain (label_errors_mnist_tta.py) particular to centred digits?

``train SETTING OUT.npz``: plants the setting's noise in the seeded training subset, runs the stratified K-fold of
``cross_val_proba`` and scores every held-out image under all 25 shifts of up to 2 px (the same models with and
without TTA). ``report NPZ [NPZ ...]``: for no TTA, 9 shifts (up to 1 px) and 25 (up to 2 px): the flags'
precision/recall/F1 (``LabelErrors`` defaults), and the ranking: precision among the top N (N = the number of
planted flips) and average precision, by self-confidence and normalized margin; the out-of-sample accuracy
against the clean labels. Per setting and seed (``--seed``: the fold split and training seed; the planted flips
stay the same), and the mean over the seeds. Writes benchmarks/results/label_errors_noise_<device>_tta.json and prints it last.
On the CPU one setting (4,000 images, 3 folds) takes ~30 min on one core; run settings in parallel processes with
OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder's active_learning.py must not shadow the active_learning package

import argparse
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TTA_SETS = ("none", "square_1px_9", "square_2px_25")


def sibling(name: str) -> ModuleType:
    """A benchmark script of this folder, imported by path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(setting: str, out: str, size: int, folds: int, seed: int, device: str | None) -> None:
    from active_learning.model.fixed import Recipe

    noise, mnist_tta = sibling("label_errors_noise"), sibling("label_errors_mnist_tta")
    images, clean, _, _ = noise.load(size, Recipe().image_size)
    noisy = noise.plant(setting, clean)
    started = time.perf_counter()
    probs, device_used = mnist_tta.probs_under_shifts(images, noisy, 10, folds, seed, device, log=f"{setting} ")
    np.savez_compressed(out, probs=probs, clean=clean, noisy=noisy, shifts=np.array(mnist_tta.SHIFTS),
                        setting=setting, seed=seed, folds=folds, seconds=time.perf_counter() - started,
                        device=device_used)


def scores(probs: np.ndarray, noisy: np.ndarray, clean: np.ndarray) -> dict:
    """How well the label-errors check finds the planted flips from ``probs``."""
    from cleanlab.rank import get_label_quality_scores
    from sklearn.metrics import average_precision_score

    from curation_checks.base import CheckInputs
    from curation_checks.label_errors import LabelErrors

    planted = noisy != clean
    classes = tuple(str(c) for c in range(probs.shape[1]))
    result = LabelErrors().run(CheckInputs(tuple(map(str, range(len(noisy)))), classes, noisy, probs))
    flag = np.asarray(result.per_sample["flag"], dtype=bool)
    hits = int((flag & planted).sum())
    precision, recall = hits / max(int(flag.sum()), 1), hits / max(int(planted.sum()), 1)
    out = {"flagged": int(flag.sum()), "precision": round(precision, 4), "recall": round(recall, 4),
           "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
           "out_of_sample_accuracy_vs_clean": round(float((probs.argmax(1) == clean).mean()), 4)}
    n = int(planted.sum())
    for method in ("self_confidence", "normalized_margin"):
        quality = get_label_quality_scores(noisy, probs, method=method)
        top = np.argsort(quality, kind="stable")[:n]
        out[method] = {"precision_at_num_planted": round(float(planted[top].mean()), 4),
                       "average_precision": round(float(average_precision_score(planted, -quality)), 4)}
    return out


def mean_of(entries: list[dict]) -> dict:
    """The mean of each number over ``entries`` (dicts of the same shape), rounded; nested dicts recursively."""
    out: dict = {}
    for key, value in entries[0].items():
        if isinstance(value, dict):
            out[key] = mean_of([e[key] for e in entries])
        elif isinstance(value, (int, float)):
            out[key] = round(float(np.mean([e[key] for e in entries])), 4)
    return out


def report(paths: list[str]) -> None:
    mnist_tta = sibling("label_errors_mnist_tta")
    runs = [np.load(p) for p in paths]
    out: dict = {"benchmark": "label_errors_noise_tta", "settings": {}}
    for run in runs:
        setting, seed = str(run["setting"]), int(run["seed"])
        entry: dict = {"seconds": round(float(run["seconds"]), 1)}
        for name in TTA_SETS:
            keep = mnist_tta.TTA_SETS[name]
            chosen = [j for j, s in enumerate(mnist_tta.SHIFTS) if keep(*s)]
            probs = run["probs"][chosen].mean(axis=0).astype(np.float64)
            entry[name] = {"shifts": len(chosen), **scores(probs / probs.sum(1, keepdims=True), run["noisy"],
                                                           run["clean"])}
        slot = out["settings"].setdefault(setting, {"planted": int((run["noisy"] != run["clean"]).sum()),
                                                    "num_images": len(run["noisy"]), "folds": int(run["folds"]),
                                                    "by_seed": {}})
        slot["by_seed"][str(seed)] = entry
        print(setting, seed, json.dumps(entry), flush=True)
    for slot in out["settings"].values():
        slot["mean_over_seeds"] = {name: mean_of([e[name] for e in slot["by_seed"].values()]) for name in TTA_SETS}
    device = str(runs[0]["device"])
    out["setting"] = (f"Fashion-MNIST, seeded {len(runs[0]['noisy'])}-image subset of label_errors_noise.py, "
                      f"{int(runs[0]['folds'])}-fold, fixed recipe, the same models scored with and without TTA")
    out["device"] = device
    out["seconds"] = round(sum(float(r["seconds"]) for r in runs), 1)
    out["seconds_note"] = "training and 25-shift scoring, summed over the runs (one process, one thread each)"
    path = ROOT / "benchmarks" / "results" / f"label_errors_noise_{device.split(':')[0]}_tta.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("setting", help="uniform10, uniform20 or lookalike20 (label_errors_noise.py's settings)")
    p.add_argument("out")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p = sub.add_parser("report")
    p.add_argument("npz", nargs="+")
    args = parser.parse_args()
    if args.command == "train":
        if not (args.setting.startswith("uniform") or args.setting.startswith("lookalike")):
            raise SystemExit(f"unknown setting {args.setting}: uniform<P> or lookalike<P>, e.g. uniform20")
        train(args.setting, args.out, args.train_size, args.folds, args.seed, args.device)
    else:
        report(args.npz)


if __name__ == "__main__":
    main()
