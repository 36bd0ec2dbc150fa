"""Writing check results back: our one-update-per-sample bulk write vs FiftyOne's ``set_values`` per field.

A check writes several fields per sample (here 4: a float score, a bool flag, a string suggestion, an int rank)
for every sample. Both writers run side by side on the same 100k-sample dataset in one process, alternating,
3 repetitions each; we report medians and their ratio. Writes benchmarks/results/writeback.json and prints the
same JSON as the last line. Uses FiftyOne's configured database (the embedded one by default).
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder's active_learning.py must not shadow the active_learning package

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import fiftyone as fo

    from active_learning.store.fields import write_fields

    name = "curation-bench-writeback"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    dataset.add_samples([fo.Sample(filepath=f"/bench/{i:06d}.png") for i in range(args.samples)], progress=False)
    ids = dataset.values("id")
    rng = np.random.default_rng(0)
    classes = [str(c) for c in range(10)]

    def columns(seed: int) -> dict[str, list]:
        r = np.random.default_rng(seed)
        return {
            "bench_score": r.random(len(ids)).tolist(),
            "bench_flag": (r.random(len(ids)) < 0.05).tolist(),
            "bench_suggested": [classes[i] for i in r.integers(0, 10, len(ids))],
            "bench_rank": r.permutation(len(ids)).astype(int).tolist(),
        }

    ours, theirs = [], []
    for repeat in range(args.repeats):
        data = columns(int(rng.integers(1 << 30)))
        t0 = time.perf_counter()
        for field, column in data.items():
            dataset.set_values(field, dict(zip(ids, column)), key_field="id")
        theirs.append(time.perf_counter() - t0)
        expected = data
        data = columns(int(rng.integers(1 << 30)))
        t0 = time.perf_counter()
        write_fields(dataset, ids, data)
        ours.append(time.perf_counter() - t0)
        check = dataset.values("bench_score")
        assert check == data["bench_score"] and check != expected["bench_score"], "write_fields wrote wrong values"
    fo.delete_dataset(name)
    result = {
        "benchmark": "writeback",
        "samples": args.samples,
        "fields": 4,
        "repeats": args.repeats,
        "ours_seconds_median": round(statistics.median(ours), 3),
        "set_values_seconds_median": round(statistics.median(theirs), 3),
        "writeback_speedup": round(statistics.median(theirs) / statistics.median(ours), 2),
        "ours_seconds": [round(t, 3) for t in ours],
        "set_values_seconds": [round(t, 3) for t in theirs],
    }
    out = ROOT / "benchmarks" / "results" / "writeback.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
