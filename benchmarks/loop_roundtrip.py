"""The annotation loop end to end through a real Label Studio: pre-annotations, skips, wrong answers, review queue.

What a person's loop does, with a simulated annotator in their place, on Fashion-MNIST:

1. import (1,000 pool images without labels, 500 labeled train images, 500 test images), ``curation model`` on the
   train split (K-fold: out-of-sample probabilities and the model that pre-annotates round 0), the label-errors
   check on it;
2. ``al init`` against a Label Studio server started here the README's way (``scripts/labelstudio start``);
3. round 0: 100 random pool samples pushed, each pre-annotated by the model run; the annotator skips 5% and
   answers the rest, 10% of them wrongly on purpose; ingest, retrain, evaluate;
4. the 10 worst label-error suspects of the train split are queued for review; round 1: 100 samples chosen by
   margin plus the 10 review samples, pre-annotated by round 0's model (review samples by their suggested label).

The figures are read back from Label Studio and the database, not from the loop's own counters: every task of the
project is listed and its predictions counted. Writes benchmarks/results/loop_roundtrip.json and prints it last.
Keys: tasks_pushed, tasks_with_prediction, skipped, rounds_completed, labels_ingested, round_overhead_seconds
(select + push + ingest per round, median; annotation, training and evaluation excluded), seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/active_learning.py must not shadow the active_learning package

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the Label Studio server helper the tests use (a script, not the library)
OVERHEAD_STEPS = ("select", "push", "ingest")


def prepare(name: str, media: Path, pool: int, train: int, test: int, epochs: int):
    """The dataset, its model run (K-fold on the train split) and its label-errors check."""
    from active_learning.data.importers import import_dataset
    from active_learning.model.fixed import named_recipe
    from active_learning.model.outputs import compute_model_outputs
    from curation_checks.label_issues import find_label_issues

    base = import_dataset(f"{name}-import", str(DATA), max_per_split=pool + train, overwrite=True, progress=False,
                          media_dir=str(media))
    shuffled = base.match_tags("train").shuffle(seed=0)
    pool_ids = shuffled.limit(pool).values("id")
    train_ids = shuffled.skip(pool).limit(train).values("id")
    test_ids = base.match_tags("test").take(test, seed=0).values("id")
    dataset = base.select(pool_ids + train_ids + test_ids).clone(name)
    dataset.select(pool_ids).tag_samples("pool")
    dataset.select(pool_ids).untag_samples("train")
    recipe = named_recipe("fast", epochs=epochs)
    compute_model_outputs(dataset.match_tags("train"), folds=3, recipe=recipe)
    find_label_issues(dataset.match_tags("train"))
    return dataset


def server_figures(client, project_id: int) -> dict:
    """Tasks of the project as Label Studio holds them: how many, how many with a prediction, their versions."""
    tasks = client.list_tasks(project_id, with_predictions=True)
    versions: dict[str, int] = {}
    for task in tasks:
        for prediction in task["predictions"]:
            versions[prediction["model_version"]] = versions.get(prediction["model_version"], 0) + 1
    return {"tasks": len(tasks), "with_prediction": sum(1 for t in tasks if t["predictions"]),
            "prediction_versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--review", type=int, default=10)
    parser.add_argument("--skip", type=float, default=0.05)
    parser.add_argument("--wrong", type=float, default=0.10)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the model run and of each round")
    parser.add_argument("--min-steps", type=int, default=100, help="optimizer-step floor per round's training")
    parser.add_argument("--out", default=str(RESULTS / "loop_roundtrip.json"))
    args = parser.parse_args()

    import fiftyone as fo

    from active_learning.store.label_history import queue_for_review
    from active_learning.label_studio.connection import LabelStudioSettings, connect
    from active_learning.label_studio.ingest import PROVENANCE_FIELD
    from active_learning.label_studio.simulate import SimulatedAnnotator
    from active_learning.loop.rounds import init_loop, run_round
    from active_learning.loop.state import LoopConfig, list_rounds
    from labelstudio_server import start_label_studio, stop_label_studio

    started = time.perf_counter()
    name = "curation-bench-roundtrip"
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as tmp:
        root = Path(tmp)
        server = start_label_studio(root / "ls", local_files_root=root)
        os.environ["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(root)
        try:
            setup_started = time.perf_counter()
            dataset = prepare(name, root / "media", args.pool, args.train, args.test, args.epochs)
            setup_seconds = time.perf_counter() - setup_started
            client = connect(LabelStudioSettings(url=server.url, api_key=server.personal_access_token, timeout=120))
            config = LoopConfig(label_field="al_label", eval_field="ground_truth", strategy="margin",
                                batch_size=args.batch, initial_size=args.batch, epochs=args.epochs,
                                min_steps=args.min_steps, project_title="roundtrip benchmark")
            project_id = init_loop(dataset, config, client)
            annotator = SimulatedAnnotator(skip_fraction=args.skip, wrong_fraction=args.wrong, seed=0)

            first = run_round(dataset, client, simulate_field="ground_truth", annotator=annotator)
            suspects = (dataset.match_tags("train").exists("label_issue_rank").sort_by("label_issue_rank")
                        .limit(args.review).values("id"))
            queue_for_review(dataset, suspects, "suspected label error (label-errors check)")
            second = run_round(dataset, client, simulate_field="ground_truth", annotator=annotator)

            rounds = list_rounds(dataset)
            dataset.reload()
            on_server = server_figures(client, project_id)
            ingested = dataset.exists(f"{PROVENANCE_FIELD}.task_id")
            given, truth = ingested.values(["al_label.label", "ground_truth.label"])
            overhead = [sum(r.timings.get(step, 0.0) for step in OVERHEAD_STEPS) for r in rounds]
            result = {
                "tasks_pushed": on_server["tasks"],
                "tasks_with_prediction": on_server["with_prediction"],
                "skipped": sum(len(r.skipped) for r in rounds),
                "rounds_completed": sum(r.step == "done" for r in rounds),
                "labels_ingested": len(ingested),
                "round_overhead_seconds": round(statistics.median(overhead), 2),
                "seconds": round(time.perf_counter() - started, 1),
                "review_tasks": len(second.review),
                "review_tasks_with_suggestion": sum(
                    1 for t in client.list_tasks(project_id, with_predictions=True)
                    if t["data"].get("sample_id") in set(second.review) and t["predictions"]),
                "wrong_labels_ingested": sum(a != b for a, b in zip(given, truth)),
                "prediction_versions": on_server["prediction_versions"],
                "predictions_from": [r.predictions_from for r in rounds],
                "per_round": [{"round": r.index, "pushed": len(r.task_ids), "with_prediction": r.with_prediction,
                               "skipped": len(r.skipped), "annotated": r.annotated, "accuracy": r.accuracy,
                               "timings": r.timings} for r in rounds],
                "round_overhead_seconds_per_round": [round(v, 2) for v in overhead],
                "setup_seconds": round(setup_seconds, 1),
                "setting": {"dataset": "Fashion-MNIST", "pool": args.pool, "train": args.train, "test": args.test,
                            "batch": args.batch, "review": args.review, "skip": args.skip, "wrong": args.wrong,
                            "epochs": args.epochs, "min_steps": args.min_steps, "strategy": "margin",
                            "annotator": "simulated through the real Label Studio API",
                            "label_studio": "1.23, started by scripts/labelstudio start on 127.0.0.1"},
                "accuracy": [first.accuracy, second.accuracy],
            }
        finally:
            stop_label_studio(server)
            for dataset_name in (name, f"{name}-import"):
                if fo.dataset_exists(dataset_name):
                    fo.delete_dataset(dataset_name)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
