"""One-fold trials of recipe settings on CIFAR-10 photos: how the candidates behind the ``photo`` recipe compare.

The first fold of the stratified 5-fold over the seeded, class-stratified subset of N photos (8,000 trained and
2,000 held out at N = 10,000), trained with the named recipe and the overrides of each ``--trial``, scored with the
recipe's default test-time augmentation. Per trial: held-out accuracy, training seconds, training images/s,
precision (bf16 or fp32, ``active_learning.model.fixed.uses_bf16``). Trials run one after another, never two at
once (two multi-threaded trainings on the same cores slow each other down ~10x).

    python benchmarks/recipe_trials.py --trial 'widths=96,192,384' --trial 'epochs=24'

A trial is ``field=value[;field=value...]`` over ``Recipe`` fields (tuples comma-separated). Writes
benchmarks/results/recipe_trials_<device>.json (``--out``), appending to its ``trials`` with ``--resume``.
"""

from __future__ import annotations

import bench_data  # first: it takes benchmarks/ off sys.path (see its docstring)

import argparse
import json
import os
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from active_learning.model.fixed import FixedModel, Recipe, default_tta_px, named_recipe, select_device


def parse_trial(text: str) -> dict:
    """``'widths=96,192,384;epochs=20'`` -> ``{'widths': (96, 192, 384), 'epochs': 20}``, typed by ``Recipe``."""
    types = {f.name: f.type for f in fields(Recipe)}
    out: dict = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, value = part.partition("=")
        if name not in types:
            raise SystemExit(f"unknown recipe field {name!r}; known: {', '.join(types)}")
        kind = str(types[name])
        if "tuple" in kind:
            out[name] = tuple(int(v) for v in value.split(","))
        elif kind == "bool":
            out[name] = value.lower() in {"1", "true", "yes"}
        elif kind == "int":
            out[name] = int(value)
        elif kind == "float":
            out[name] = float(value)
        else:
            out[name] = value
    return out


def first_fold(labels: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    return next(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="photo")
    parser.add_argument("--trial", action="append", default=[], help="overrides; '' = the recipe as it is")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    device = select_device(args.device)
    name = f"recipe_trials_{bench_data.device_kind(device)}"
    path = Path(args.out) if args.out else bench_data.RESULTS / f"{name}.json"
    trials = json.loads(path.read_text())["trials"] if args.resume and path.is_file() else []

    images, labels = bench_data.cifar10(args.images)[:2]
    train, held_out = first_fold(labels, args.folds)
    for text in args.trial or [""]:
        overrides = parse_trial(text)
        recipe = named_recipe(args.recipe, **overrides)
        model = FixedModel(int(labels.max()) + 1, recipe, device=device)
        started = time.perf_counter()
        model.fit(images, labels[train], rows=train)
        train_seconds = time.perf_counter() - started
        probs = model.predict_proba(images, tta_px=default_tta_px(recipe), rows=held_out)
        trial = {"recipe": args.recipe, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in overrides.items()},
                 "held_out_accuracy": round(float((probs.argmax(1) == labels[held_out]).mean()), 4),
                 "train_seconds": round(train_seconds, 1),
                 "train_images_per_second": round(len(train) * model.epochs_ / train_seconds, 1),
                 "predict_seconds": round(time.perf_counter() - started - train_seconds, 1),
                 "precision": model.precision_, "epochs": model.epochs_, "train_images": int(len(train)),
                 "held_out_images": int(len(held_out)), "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None}
        print(json.dumps(trial), flush=True)
        trials.append(trial)
    bench_data.write_result({"images": int(len(images)), "folds": args.folds, "device": device, "trials": trials},
                            name, path)


if __name__ == "__main__":
    main()
