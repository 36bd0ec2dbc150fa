"""Active learning through the real Label Studio: each strategy against random on Fashion-MNIST.

Every round goes through the product's loop (``active_learning.loop.run_round``): select with the strategy, push
the tasks to a real Label Studio server started here (127.0.0.1), answer them through its API from the hidden
ground truth (the simulated annotator), ingest with provenance, retrain the fixed model from scratch, evaluate on a
fixed test view. Reports, per strategy, the learning curve (mean over seeds), the labels needed to match random's
accuracy at the largest budget, and the loop's own overhead (select + push + ingest of 1,000 tasks, training and
annotation excluded). The full setting (10k test view, 500 -> 10k labels in steps of 500, 3 seeds) is the GPU
default; on the CPU the default is a smaller one and the JSON says which. Writes
benchmarks/results/active_learning_<device>.json and .png, and prints the JSON as the last line.
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
    args = parser.parse_args()

    import fiftyone as fo

    from active_learning.importers import import_dataset
    from active_learning.label_studio import LabelStudioSettings, connect
    from active_learning.loop import LoopConfig, init_loop, list_rounds, run_round
    from active_learning.model import select_device
    from labelstudio_server import start_label_studio, stop_label_studio

    device = select_device(None)
    gpu = device.startswith("cuda")
    pool_size = args.pool_size or (60000 if gpu else 4000)
    test_size = args.test_size or (10000 if gpu else 2000)
    initial = args.initial or (500 if gpu else 200)
    batch = args.batch or (500 if gpu else 200)
    max_labels = args.max_labels or (10000 if gpu else 1000)
    seeds = [int(s) for s in (args.seeds or ("0,1,2" if gpu else "0")).split(",")]
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
                                        include_review_queue=False, project_title=f"bench {strategy} {seed}")
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

    mean_curves = {s: mean_curve(c) for s, c in curves.items()}
    target = mean_curves["random"][-1][1]
    needed = {s: next((n for n, a in curve if a >= target), None) for s, curve in mean_curves.items()}
    out = {
        "benchmark": "active_learning",
        "labels_needed_to_match_random_10k" if max_labels == 10000 else "labels_needed_to_match_random_max": needed,
        "random_accuracy_at_max": round(target, 4),
        "round_overhead_seconds": overhead,
        "curve": {s: [[n, round(a, 4)] for n, a in curve] for s, curve in mean_curves.items()},
        "setting": f"Fashion-MNIST pool {pool_size}, test view {test_size}, {initial} initial + {batch} per round up "
                   f"to {max_labels} labels, seeds {seeds}, on {device}"
                   + ("" if gpu else " (CPU: a smaller setting than the full 500->10k, 3-seed one)"),
        "device": device,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = ROOT / "benchmarks" / "results" / f"active_learning_{device.split(':')[0]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    plot(mean_curves, path.with_suffix(".png"), out["setting"])
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
                        initial_size=size, seed=0, epochs=epochs or 1, include_review_queue=False,
                        project_title="bench overhead")
    init_loop(dataset, config, client)
    state = run_round(dataset, client, simulate_field="ground_truth")
    timings = {k: state.timings.get(k, 0.0) for k in ("select", "push", "ingest")}
    result = {"tasks": size, **timings, "total": round(sum(timings.values()), 3),
              "annotate_simulated": state.timings.get("annotate"), "retrain": state.timings.get("retrain")}
    import fiftyone as fo

    fo.delete_dataset(dataset.name)
    return result


def plot(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for strategy, curve in curves.items():
        axis.plot([n for n, _ in curve], [a for _, a in curve], marker="o", label=strategy,
                  linestyle="--" if strategy == "random" else "-")
    axis.set_xlabel("labels")
    axis.set_ylabel("test accuracy")
    axis.set_title(title, fontsize=8)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
