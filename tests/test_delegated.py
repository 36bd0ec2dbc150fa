"""Heavy operators run as FiftyOne delegated operations: queued in MongoDB, executed by a separate worker process.

The worker is what ``fiftyone delegated launch`` runs in a loop (``DelegatedOperationService.execute_queued_
operations``), started here as its own process with the session's environment (MongoDB URI, plugins dir), so the
operation, its parameters and its results travel through the database only.
"""

from __future__ import annotations

import subprocess
import sys

from test_bias import shapes  # noqa: F401  (fixture)
from test_drift_report import standard  # noqa: F401  (fixture)

PLUGIN = "@curation/fiftyone-curation"
WORKER = ("import sys; import fiftyone.operators.delegated as food; "
          "food.DelegatedOperationService().execute_queued_operations(dataset_name=sys.argv[1], limit=1, log=True)")


def _queue_and_work(operator: str, dataset, params: dict, env: dict, cwd) -> object:
    """Queue ``operator`` as a delegated operation, run one worker process, return the finished operation."""
    import fiftyone.operators as foo
    import fiftyone.operators.delegated as food

    queued = foo.execute_operator(f"{PLUGIN}/{operator}", ctx={"dataset": dataset.name, "params": params},
                                  request_delegation=True)
    assert queued.error is None, queued.error
    assert queued.delegated, "the executor queued the operation instead of running it"
    service = food.DelegatedOperationService()
    (operation,) = service.list_operations(dataset_name=dataset.name)
    assert operation.run_state == "queued"
    worker = subprocess.run([sys.executable, "-c", WORKER, dataset.name], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert worker.returncode == 0, worker.stderr[-3000:]
    done = service.get(operation.id)
    assert done.run_state == "completed", (done.run_state, done.run_state and worker.stderr[-3000:])
    return done


def test_compute_drift_runs_in_a_delegated_worker(standard, cli_env, tmp_path) -> None:  # noqa: F811
    from curation_checks.drift.report import RUN_KEY, load_drift_report

    params = {"reference": "tag:reference", "target": "batch:batch_id", "n_permutations": 50, "fill": False}
    assert RUN_KEY not in standard.list_runs()
    done = _queue_and_work("compute_drift", standard, params, cli_env, tmp_path)
    assert done.run_state == "completed"
    assert set(done.result.result["drifted"]) == {"10", "2"}
    standard.reload()
    report = load_drift_report(standard)
    assert [b.name for b in report.batches] == ["1", "2", "3", "10"] and report.n_permutations == 50
    assert len(standard.exists("drift_ood_score")) == 600


def test_compute_bias_runs_in_a_delegated_worker(shapes, cli_env, tmp_path) -> None:  # noqa: F811
    from curation_checks.bias.report import RUN_KEY, load_bias_report

    assert RUN_KEY not in shapes.list_runs()
    done = _queue_and_work("compute_bias", shapes, {"label_field": "ground_truth"}, cli_env, tmp_path)
    assert done.result.result["num_scored"] == 220
    shapes.reload()
    report = load_bias_report(shapes)
    assert report.num_scored == 220 and report.slices.slices[0].field == "image_brightness"
    assert len(shapes.exists("image_brightness")) == 240
