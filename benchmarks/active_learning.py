"""Active learning through the real Label Studio: each strategy against random on Fashion-MNIST.

Every round goes through the product's loop (``active_learning.loop.rounds.run_round``): select with the strategy, push
the tasks to a real Label Studio server started here (127.0.0.1), answer them through its API from the hidden
ground truth (the simulated annotator), ingest with provenance, retrain the fixed model from scratch, evaluate on a
fixed test view. Reports, per strategy, the learning curve (mean over seeds), the labels needed to match random's
accuracy at the largest budget, and the loop's own overhead (select + push + ingest of 1,000 tasks, training and
annotation excluded). The full setting (10k test view, 500 -> 10k labels in steps of 500, 3 seeds) is the GPU
default; on the CPU the default is a smaller one and the JSON says which. Writes
benchmarks/results/active_learning_<device>.json and .png, and prints the JSON as the last line.

``--backend arrays`` runs the same strategies (``active_learning.loop.strategies.select``) and the same fixed model on
in-memory arrays, with the annotator's answer read from the truth directly: no FiftyOne, MongoDB or Label Studio.
It exists for machines that have none of those (a lent GPU box) and measures label efficiency only; the loop's
overhead is measured by the default backend. ``--jobs N`` runs the (strategy, seed) curves in N processes.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder's active_learning.py must not shadow the active_learning package

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
sys.path.insert(0, str(ROOT / "tests"))  # the Label Studio server helper the tests use (a script, not the library)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strategies", default="margin,entropy,k_center_greedy")
    parser.add_argument("--seeds", default=None, help="default: 0,1,2 on a GPU, 0 on the CPU")
    parser.add_argument("--pool-size", type=int, default=None, help="default: 60000 (GPU) / 4000 (CPU)")
    parser.add_argument("--test-size", type=int, default=None, help="default: 10000 (GPU) / 2000 (CPU)")
    parser.add_argument("--initial", type=int, default=None, help="default: 500 (GPU) / 200 (CPU)")
    parser.add_argument("--batch", type=int, default=None, help="default: 500 (GPU) / 200 (CPU)")
    parser.add_argument("--max-labels", type=int, default=None, help="default: 10000 (GPU) / 1000 (CPU)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the fixed recipe's")
    parser.add_argument("--min-steps", type=int, default=None,
                        help="floor on optimizer steps per training (default: the loop's, 1000; 0: epochs alone)")
    parser.add_argument("--no-random-curve", action="store_true",
                        help="arrays backend with --reference-labels: skip random's curve, compare with the reference")
    parser.add_argument("--backend", choices=("label-studio", "arrays"), default="label-studio")
    parser.add_argument("--jobs", type=int, default=1, help="arrays backend: curves computed in parallel processes")
    parser.add_argument("--log", default=None, help="arrays backend: append one JSON line per round to this file")
    parser.add_argument("--reuse-log", default=None,
                        help="arrays backend: take the complete (strategy, seed) curves of an earlier --log file "
                             "instead of recomputing them (e.g. random's, when adding a strategy)")
    parser.add_argument("--reference-labels", type=int, default=None,
                        help="arrays backend: measure random's accuracy at this many labels with one training per "
                             "seed (its label set replayed) and match the curves against it; lets the curves stop "
                             "at --max-labels below it (e.g. 5000 against random at 10000)")
    parser.add_argument("--out", default=None, help="result JSON path (default benchmarks/results/"
                                                     "active_learning_<device>.json; the PNG goes beside it)")
    args = parser.parse_args()
    if args.backend == "arrays":
        return main_arrays(args)

    import fiftyone as fo

    from active_learning.data.importers import import_dataset
    from active_learning.label_studio.connection import LabelStudioSettings, connect
    from active_learning.loop.rounds import LoopConfig, init_loop, list_rounds, run_round
    from active_learning.model.fixed import select_device
    from labelstudio_server import start_label_studio, stop_label_studio

    device = select_device(None)
    setting = _setting(args, device.startswith("cuda"))
    pool_size, test_size, initial, batch, max_labels, seeds = (
        setting[k] for k in ("pool_size", "test_size", "initial", "batch", "max_labels", "seeds"))
    strategies = ["random"] + [s for s in args.strategies.split(",") if s and s != "random"]
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="al-bench-") as tmp:
        root = Path(tmp)
        server = start_label_studio(root / "ls", local_files_root=root)
        import os

        os.environ["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(root)
        try:
            client = connect(LabelStudioSettings(url=server.url, api_key=server.personal_access_token, timeout=120))
            base = import_dataset("curation-bench-al", str(DATA), max_per_split=max(pool_size, test_size),
                                  overwrite=True, progress=False, media_dir=str(root / "media"))
            train = base.match_tags("train")
            pool_ids = train.take(pool_size, seed=0).values("id")
            test_ids = base.match_tags("test").take(test_size, seed=0).values("id")
            base = base.select(pool_ids + test_ids).clone("curation-bench-al-base")
            base.match_tags("train").tag_samples("pool")
            base.match_tags("pool").untag_samples("train")
            curves: dict[str, list[list[tuple[int, float]]]] = {}
            for strategy in strategies:
                for seed in seeds:
                    name = f"curation-bench-al-{strategy}-{seed}"
                    dataset = base.clone(name, persistent=False)
                    config = LoopConfig(label_field="al_label", eval_field="ground_truth", strategy=strategy,
                                        batch_size=batch, initial_size=initial, seed=seed, epochs=args.epochs,
                                        include_review_queue=False, project_title=f"bench {strategy} {seed}",
                                        **({} if args.min_steps is None else {"min_steps": args.min_steps}))
                    init_loop(dataset, config, client)
                    points = []
                    while True:
                        state = run_round(dataset, client, simulate_field="ground_truth")
                        points.append((state.num_labeled, state.accuracy))
                        print(f"{strategy} seed {seed}: {state.num_labeled} labels -> {state.accuracy:.4f} "
                              f"({', '.join(f'{k} {v:.1f}s' for k, v in state.timings.items())})", flush=True)
                        if state.num_labeled >= max_labels:
                            break
                    curves.setdefault(strategy, []).append(points)
                    fo.delete_dataset(name)
            overhead = measure_overhead(base, client, LoopConfig, init_loop, run_round, list_rounds, args.epochs)
        finally:
            stop_label_studio(server)
            for name in ("curation-bench-al", "curation-bench-al-base"):
                if fo.dataset_exists(name):
                    fo.delete_dataset(name)

    finish(curves, setting, device, started, overhead,
           backend="label-studio (the product's loop through a real Label Studio, simulated annotator)")


def _setting(args, gpu: bool) -> dict:
    return {
        "pool_size": args.pool_size or (60000 if gpu else 4000),
        "test_size": args.test_size or (10000 if gpu else 2000),
        "initial": args.initial or (500 if gpu else 200),
        "batch": args.batch or (500 if gpu else 200),
        "max_labels": args.max_labels or (10000 if gpu else 1000),
        "seeds": [int(s) for s in (args.seeds or ("0,1,2" if gpu else "0")).split(",")],
    }


def _recipe_kw(args) -> dict:
    """What the recipe differs in from the fixed one (recorded in the JSON and the log): the loop's step floor
    unless ``--min-steps`` says otherwise, and ``--epochs``."""
    from active_learning.model.fixed import LOOP_MIN_STEPS

    kw = {"min_steps": LOOP_MIN_STEPS if args.min_steps is None else args.min_steps}
    return kw if args.epochs is None else {**kw, "epochs": args.epochs}


def _arrays(setting: dict, seed: int, recipe_kw: dict):
    """The recipe and the pool / test arrays of the setting: the same pool and test view for every strategy and seed."""
    import numpy as np

    from active_learning.data.idx import read_idx_pair
    from active_learning.data.images import arrays_to_model_input
    from active_learning.model.fixed import Recipe

    train_x, train_y = read_idx_pair(DATA / "train-images-idx3-ubyte.gz", DATA / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx_pair(DATA / "t10k-images-idx3-ubyte.gz", DATA / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(0)
    pool_index = np.sort(rng.choice(len(train_x), size=min(setting["pool_size"], len(train_x)), replace=False))
    test_index = np.sort(rng.choice(len(test_x), size=min(setting["test_size"], len(test_x)), replace=False))
    recipe = Recipe(seed=seed, **recipe_kw)
    return (recipe, arrays_to_model_input(train_x[pool_index], recipe.image_size), train_y[pool_index].astype(np.int64),
            arrays_to_model_input(test_x[test_index], recipe.image_size), test_y[test_index].astype(np.int64))


def _select_round(name: str, model, pool, labeled, n: int, random_state: int):
    """Pool indices one round of the loop picks with strategy ``name`` (random when there is no model yet)."""
    import numpy as np

    from active_learning.loop.strategies import REQUIRES, select

    candidates = np.flatnonzero(~labeled)
    needs = REQUIRES.get(name, frozenset())
    probs = embeddings = labeled_embeddings = None
    if model is not None and {"probs", "embeddings"} <= needs:
        probs, embeddings = model.predict_proba_and_embed(pool[candidates])
    elif model is not None and "probs" in needs:
        probs = model.predict_proba(pool[candidates])
    elif model is not None and "embeddings" in needs:
        embeddings = model.embed(pool[candidates])
    if model is not None and "labeled_embeddings" in needs:
        labeled_embeddings = model.embed(pool[labeled])
    if probs is None and embeddings is None:
        embeddings = np.zeros((len(candidates), 1), dtype=np.float32)
    picked = select(name, probs, embeddings, min(n, len(candidates)), random_state=random_state,
                    labeled_embeddings=labeled_embeddings)
    return candidates[picked]


def array_curve(strategy: str, seed: int, setting: dict, recipe_kw: dict, device: str, log: str | None) -> list:
    """One learning curve on arrays: the loop's select -> (truth as the annotation) -> retrain -> evaluate."""
    import numpy as np

    from active_learning.model.fixed import FixedModel

    recipe, pool, truth, test, test_labels = _arrays(setting, seed, recipe_kw)
    labeled = np.zeros(len(pool), dtype=bool)
    model, points, round_index = None, [], 0
    while True:
        t0 = time.perf_counter()
        name = strategy if model is not None else "random"
        n = setting["batch"] if model is not None else setting["initial"]
        labeled[_select_round(name, model, pool, labeled, n, seed + round_index)] = True
        select_seconds = time.perf_counter() - t0
        model = FixedModel(10, recipe, device=device).fit(pool[labeled], truth[labeled])
        accuracy = float((model.predict(test) == test_labels).mean())
        point = {"strategy": strategy, "seed": seed, "round": round_index, "labels": int(labeled.sum()),
                 "accuracy": round(accuracy, 4), "select_s": round(select_seconds, 2),
                 "train_s": round(model.train_seconds_, 1), "epochs_run": model.epochs_, **recipe_kw}
        print(json.dumps(point), flush=True)
        if log:
            with open(log, "a") as handle:
                handle.write(json.dumps(point) + "\n")
        points.append((int(labeled.sum()), accuracy))
        round_index += 1
        if labeled.sum() >= setting["max_labels"] or labeled.all():
            return points


def random_reference(seed: int, setting: dict, labels: int, recipe_kw: dict, device: str) -> float:
    """Random's accuracy at ``labels`` labels with one training: random's picks need no model, so the label set
    its curve would hold at that point is replayed round by round and the fixed model trained on it once."""
    import numpy as np

    from active_learning.model.fixed import FixedModel

    recipe, pool, truth, test, test_labels = _arrays(setting, seed, recipe_kw)
    labeled = np.zeros(len(pool), dtype=bool)
    round_index = 0
    while labeled.sum() < labels and not labeled.all():
        n = setting["batch"] if round_index else setting["initial"]
        labeled[_select_round("random", None, pool, labeled, n, seed + round_index)] = True
        round_index += 1
    model = FixedModel(10, recipe, device=device).fit(pool[labeled], truth[labeled])
    accuracy = float((model.predict(test) == test_labels).mean())
    print(json.dumps({"strategy": "random", "seed": seed, "labels": int(labeled.sum()), "accuracy": round(accuracy, 4),
                      "reference": True, "epochs_run": model.epochs_, **recipe_kw}), flush=True)
    return accuracy


def main_arrays(args) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from active_learning.model.fixed import select_device

    device = select_device(None)
    gpu = device.startswith("cuda")
    setting = _setting(args, gpu)
    strategies = ["random"] + [s for s in args.strategies.split(",") if s and s != "random"]
    if args.no_random_curve:
        if not args.reference_labels:
            raise SystemExit("--no-random-curve needs --reference-labels (random's accuracy to compare with)")
        strategies.remove("random")
    recipe_kw = _recipe_kw(args)
    reused = reuse_curves(args.reuse_log, setting, recipe_kw) if args.reuse_log else {}
    work = [(s, seed) for seed in setting["seeds"] for s in strategies if (s, seed) not in reused]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(array_curve, [w[0] for w in work], [w[1] for w in work], [setting] * len(work),
                                [recipe_kw] * len(work), [device] * len(work), [args.log] * len(work)))
    computed = dict(zip(work, results))
    curves: dict[str, list] = {}
    for seed in setting["seeds"]:
        for strategy in strategies:
            curves.setdefault(strategy, []).append(computed.get((strategy, seed)) or reused[(strategy, seed)])
    reference = None
    if args.reference_labels:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            n_seeds = len(setting["seeds"])
            reference = (args.reference_labels,
                         list(pool.map(random_reference, setting["seeds"], [setting] * n_seeds,
                                       [args.reference_labels] * n_seeds, [recipe_kw] * n_seeds,
                                       [device] * n_seeds)))
    overhead_file = ROOT / "benchmarks" / "results" / "active_learning_cpu.json"
    overhead = json.loads(overhead_file.read_text()).get("round_overhead_seconds") if overhead_file.exists() else None
    finish(curves, setting, device, started, overhead,
           backend="arrays (strategies and model on in-memory arrays, the truth as the annotation; no Label "
                   "Studio: round_overhead_seconds is the label-studio backend's CPU measurement)",
           reference=reference, out_path=args.out,
           reused={f"{strategy} seed {seed}": args.reuse_log for strategy, seed in sorted(reused)
                   if strategy in strategies and seed in setting["seeds"]}, recipe_kw=recipe_kw)


def reuse_curves(path: str, setting: dict, recipe_kw: dict) -> dict[tuple[str, int], list[tuple[int, float]]]:
    """Complete curves (every round up to the setting's max labels) from an earlier run's JSON-lines log, made with
    the same recipe overrides."""
    rounds: dict[tuple[str, int], dict[int, tuple[int, float]]] = {}
    for line in Path(path).read_text().splitlines():
        point = json.loads(line)
        if point.get("epochs") != recipe_kw.get("epochs") or point.get("min_steps", 0) != recipe_kw["min_steps"]:
            continue
        rounds.setdefault((point["strategy"], point["seed"]), {})[point["round"]] = (point["labels"],
                                                                                    point["accuracy"])
    complete = {}
    for key, by_round in rounds.items():
        points = [by_round[i] for i in sorted(by_round)]
        if sorted(by_round) == list(range(len(points))) and points[-1][0] >= setting["max_labels"]:
            complete[key] = points
    return complete


def finish(curves: dict, setting: dict, device: str, started: float, overhead, backend: str,
           reference: tuple[int, list[float]] | None = None, out_path: str | None = None,
           reused: dict[str, str] | None = None, recipe_kw: dict | None = None) -> None:
    """Mean curves, labels needed to match random's accuracy at the largest budget (or at ``reference``'s label
    count, measured separately), the JSON and the PNG."""
    gpu = device.startswith("cuda")
    mean_curves = {s: mean_curve(c) for s, c in curves.items()}
    target = statistics.mean(reference[1]) if reference else mean_curves["random"][-1][1]
    target_labels = reference[0] if reference else setting["max_labels"]
    needed = {s: next((n for n, a in curve if a >= target), None) for s, curve in mean_curves.items()}
    full = target_labels == 10000
    out = {
        "benchmark": "active_learning",
        "labels_needed_to_match_random_10k" if full else "labels_needed_to_match_random_max": needed,
        "random_accuracy_at_max": round(target, 4),
        **({"random_reference": {"labels": reference[0], "accuracy_per_seed": [round(a, 4) for a in reference[1]],
                                 "how": "one training per seed on the label set random's curve holds there"}}
           if reference else {}),
        "round_overhead_seconds": overhead,
        "curve": {s: [[n, round(a, 4)] for n, a in curve] for s, curve in mean_curves.items()},
        "curve_per_seed": {s: [[round(a, 4) for _, a in run] for run in c] for s, c in curves.items()},
        "setting": f"Fashion-MNIST pool {setting['pool_size']}, test view {setting['test_size']}, "
                   f"{setting['initial']} initial + {setting['batch']} per round up to {setting['max_labels']} "
                   f"labels, seeds {setting['seeds']}, on {device}"
                   + (f"; random's accuracy at {reference[0]} labels measured by one training per seed"
                      if reference else "")
                   + ("" if gpu or full else " (CPU: a smaller setting than the full 500->10k, 3-seed one)"),
        "backend": backend,
        "recipe_overrides": recipe_kw or {},
        **({"reused_curves": reused} if reused else {}),
        "device": device,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = Path(out_path) if out_path else ROOT / "benchmarks" / "results" / f"active_learning_{device.split(':')[0]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    plot(mean_curves, path.with_suffix(".png"), out["setting"], (target_labels, target) if reference else None)
    print(json.dumps(out))


def mean_curve(runs: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Mean accuracy per label count over seeds (runs share their label counts)."""
    length = min(len(r) for r in runs)
    return [(runs[0][i][0], statistics.mean(r[i][1] for r in runs)) for i in range(length)]


def measure_overhead(base, client, LoopConfig, init_loop, run_round, list_rounds, epochs) -> dict:
    """select + push + ingest of one 1,000-task round (annotation and training excluded)."""
    dataset = base.clone("curation-bench-al-overhead", persistent=False)
    size = min(1000, len(dataset.match_tags("pool")))
    config = LoopConfig(label_field="al_label", eval_field="ground_truth", strategy="random", batch_size=size,
                        initial_size=size, seed=0, epochs=epochs or 1, min_steps=0, include_review_queue=False,
                        project_title="bench overhead")  # its training is not part of the overhead: keep it short
    init_loop(dataset, config, client)
    state = run_round(dataset, client, simulate_field="ground_truth")
    timings = {k: state.timings.get(k, 0.0) for k in ("select", "push", "ingest")}
    result = {"tasks": size, **timings, "total": round(sum(timings.values()), 3),
              "annotate_simulated": state.timings.get("annotate"), "retrain": state.timings.get("retrain")}
    import fiftyone as fo

    fo.delete_dataset(dataset.name)
    return result


def plot(curves: dict[str, list[tuple[int, float]]], path: Path, title: str,
         reference: tuple[int, float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for strategy, curve in curves.items():
        axis.plot([n for n, _ in curve], [a for _, a in curve], marker="o", label=strategy,
                  linestyle="--" if strategy == "random" else "-")
    if reference:
        axis.axhline(reference[1], color="grey", linestyle=":",
                     label=f"random at {reference[0]:,} labels ({reference[1]:.4f})")
    axis.set_xlabel("labels")
    axis.set_ylabel("test accuracy")
    import textwrap

    axis.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=8)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
