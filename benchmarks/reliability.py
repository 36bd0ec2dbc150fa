"""Reliability report: kill -9 at named points and at times, the bad-input table, replica-set failovers, tokens.

Everything runs on the real components, on an isolated bundled mongod started here (127.0.0.1, its own data
directory) and real files under a temporary folder:

- **kill points**: the real ``curation`` CLI (or a library call in a subprocess) killed with SIGKILL at a named
  pause point (``active_learning.store.faults``) or after a delay in the middle of its work (an import, a K-fold, a
  label-errors, bias or drift write), then rerun to the end. After each rerun: the dataset has every sample once,
  every file it names exists, no staging dataset, folder or import journal is left, the recorded checkpoint loads
  with its hash, and every label change is in the history once. ``lost`` and ``duplicated`` count what is not.
- **bad inputs**: the table of ``tests/test_bad_input.py`` (imports and options) plus Label Studio settings, each
  through the real CLI: exit code 2 with ``error:``, no traceback, nothing written. ``tracebacks`` and
  ``silent_wrong`` (exit 0, or something written) count what is not.
- **replica set**: ``tests/test_replica_set.py``'s 3-member set; the primary killed during an import and a bulk
  label write.
- **tokens**: ``tests/test_secrets_echo.py``'s echoing server; ``token_chars_printed`` is the longest run of a
  token's secret characters found in any message or traceback.

Writes benchmarks/results/reliability.json and prints it as the last line.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

if sys.path and _Path(sys.path[0]).resolve() == _Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/active_learning.py must not shadow the active_learning package

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))
CURATION = str(Path(sys.executable).with_name("curation"))
PAUSE_SECONDS = "600"

RELABEL = """
import sys
import fiftyone as fo
from active_learning.store.label_history import set_labels
dataset = fo.load_dataset(sys.argv[1])
classes = dataset.default_classes
new = {i: classes[int(i[-6:], 16) % len(classes)] for i in dataset.values("id")}  # the same target every run
print("changed", set_labels(dataset, new, "ground_truth", why="reliability"), flush=True)
"""


def run(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def killed_run(args: list[str], env: dict[str, str], tmp: Path, pause_at: str | None, delay: float | None) -> str:
    """Start ``args``, SIGKILL it at the pause point (or after ``delay`` s); how it ended ('killed', 'finished')."""
    marker = tmp / f"marker-{time.monotonic_ns()}"
    extra = {"CURATION_TEST_PAUSE_AT": pause_at, "CURATION_TEST_PAUSE_MARKER": str(marker),
             "CURATION_TEST_PAUSE_SECONDS": PAUSE_SECONDS} if pause_at else {}
    proc = subprocess.Popen(args, env=dict(env, **extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + (600 if pause_at else float(delay))
    while time.monotonic() < deadline and proc.poll() is None and not (pause_at and marker.exists()):
        time.sleep(0.05)
    if proc.poll() is not None:
        return "finished"  # the work ended before the kill: counted as a kill point not reached
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return "killed"


def dataset_state(name: str) -> dict:
    """What an invariant check needs, read in a fresh process (the killed writer's connection is gone)."""
    script = f"""
import json, os
import fiftyone as fo
import fiftyone.core.odm as foo
name = {name!r}
out = {{"exists": fo.dataset_exists(name)}}
out["staging"] = [n for n in fo.list_datasets() if ".staging-" in n or ".replaced-" in n]
out["journals"] = foo.get_db_conn()["curation_import_journal"].count_documents({{}})
if out["exists"]:
    ds = fo.load_dataset(name)
    paths = ds.values("filepath")
    out.update(n=len(ds), unique=len(set(ds.values("id"))), files=sum(os.path.isfile(p) for p in paths),
               labels=sum(v is not None for v in ds.values("ground_truth.label")))
    media = {{os.path.dirname(p) for p in paths}}
    parents = {{os.path.dirname(m) for m in media}}
    out["staging_folders"] = [e for p in parents if os.path.isdir(p) for e in os.listdir(p)
                              if e.startswith((".staging-", ".replaced-"))]
    schema = ds.get_field_schema()
    out["history"] = ([len(h or []) for h in ds.values("label_history")] if "label_history" in schema else [])
    classes = ds.default_classes
    out["off_target"] = sum(label != classes[int(i[-6:], 16) % len(classes)]
                            for i, label in zip(*ds.values(["id", "ground_truth.label"])))
    if "curation_model" in ds.list_runs():
        from active_learning.model.outputs import load_model
        try:
            load_model(ds)
            out["checkpoint"] = "ok"
        except Exception as error:
            out["checkpoint"] = f"{{type(error).__name__}}: {{error}}"
print(json.dumps(out))
"""
    result = run([sys.executable, "-c", script], os.environ.copy(), timeout=300)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def check(state: dict, size: int, want_checkpoint: bool = False, history: int | None = None) -> tuple[int, int]:
    """(lost, duplicated) of one rerun's end state."""
    if not state["exists"]:
        return size, 0
    lost = max(size - state["unique"], 0) + (state["n"] - state["files"]) + (state["unique"] - state["labels"])
    duplicated = max(state["n"] - size, 0) + len(state["staging"]) + len(state["staging_folders"]) + state["journals"]
    if want_checkpoint and state.get("checkpoint") != "ok":
        lost += 1
    if history is not None:  # a label write: every sample on its target label, at most one history entry each
        duplicated += sum(max(h - history, 0) for h in state["history"])
        lost += state["off_target"]
    return lost, duplicated


def kill_matrix(env: dict[str, str], tmp: Path, idx: Path) -> dict:
    size = 1797
    def imp(name: str) -> list[str]:
        return [CURATION, "import", "--name", name]

    errors = [CURATION, "label-errors", "rel"]
    over = [CURATION, "import", "--name", "rel", "--data", str(idx), "--max-per-split", "150", "--overwrite"]
    back = [CURATION, "import", "--name", "rel", "--overwrite"]
    model = [CURATION, "model", "rel", "--epochs", "1", "--folds", "2", "--tta-px", "0"]
    relabel = [sys.executable, "-c", RELABEL, "rel"]
    drift = [CURATION, "drift", "rel", "--reference", "tag:train", "--target", "tag:test", "--permutations", "50"]
    cases = [
        # (what, dataset, command, pause point or None, delay, rerun, expected size, checkpoint?, history entries)
        ("import (new) at 0.5 s", "rel-a", imp("rel-a"), None, 0.5, imp("rel-a"), size, False, None),
        ("import (new) at 1.5 s", "rel-b", imp("rel-b"), None, 1.5, imp("rel-b"), size, False, None),
        ("import (new) at 3 s", "rel-c", imp("rel-c"), None, 3.0, imp("rel-c"), size, False, None),
        ("import (new) at import:before-swap", "rel-d", imp("rel-d"), "import:before-swap", None, imp("rel-d"), size,
         False, None),
        ("import --overwrite at import:before-swap", "rel", over, "import:before-swap", None, imp("rel"), size,
         False, None),
        # killed in the middle of the swap, the next import finishes it: the new data (300 samples) is in place
        ("import --overwrite at import:mid-swap", "rel", over, "import:mid-swap", None, over, 300, False, None),
        ("import --overwrite at 1 s", "rel", over, None, 1.0, over, 300, False, None),
        ("import --overwrite at 2 s", "rel", back, None, 2.0, back, size, False, None),
        ("model at 2 s", "rel", model, None, 2.0, model, size, True, None),
        ("model at 6 s", "rel", model, None, 6.0, model, size, True, None),
        ("model at 12 s", "rel", model, None, 12.0, model, size, True, None),
        ("model at model:after-checkpoint-save", "rel", model, "model:after-checkpoint-save", None, model, size,
         True, None),
        ("label-errors at 1 s", "rel", errors, None, 1.0, errors, size, True, None),
        ("label-errors at 3 s", "rel", errors, None, 3.0, errors, size, True, None),
        ("bias at 3 s", "rel", [CURATION, "bias", "rel"], None, 3.0, [CURATION, "bias", "rel"], size, True, None),
        ("drift at 3 s", "rel", drift, None, 3.0, drift, size, True, None),
        ("check near_duplicates at 2 s", "rel", [CURATION, "check", "rel", "near_duplicates"], None, 2.0,
         [CURATION, "check", "rel", "near_duplicates"], size, True, None),
        ("label write at labels:before-bulk-write", "rel", relabel, "labels:before-bulk-write", None, relabel, size,
         True, 1),
        ("label write at labels:after-bulk-write", "rel", relabel, "labels:after-bulk-write", None, relabel, size,
         True, 1),
        ("label write at 1 s", "rel", relabel, None, 1.0, relabel, size, True, 1),
        ("model at 20 s", "rel", model, None, 20.0, model, size, True, None),
        ("import --overwrite at 0.5 s (back to the digits)", "rel", back, None, 0.5, back, size, False, None),
    ]
    rows = []
    for what, name, command, point, delay, rerun, expected, want_ckpt, history in cases:
        if history is not None:  # a label write starts from the digits' own labels and no history
            run(back, env)
            run(model, env)
        ended = killed_run(command, env, tmp, point, delay)
        time.sleep(0.3)
        again = run(rerun, env)
        state = dataset_state(name)
        lost, duplicated = check(state, expected, want_ckpt, history)
        recovered = again.returncode == 0 and lost == 0 and duplicated == 0
        rows.append({"kill": what, "ended": ended, "rerun_exit": again.returncode, "lost": lost,
                     "duplicated": duplicated, "recovered": recovered,
                     **({"rerun_error": again.stderr[-600:]} if again.returncode else {})})
        print(json.dumps(rows[-1]), flush=True)
    killed = [r for r in rows if r["ended"] == "killed"]
    return {"kill_points": len(killed), "kill_points_recovered": sum(r["recovered"] for r in killed),
            "kill_points_not_reached": [r["kill"] for r in rows if r["ended"] != "killed"],
            "lost": sum(r["lost"] for r in rows), "duplicated": sum(r["duplicated"] for r in rows),
            "kills": rows}


def bad_inputs(env: dict[str, str], tmp: Path) -> dict:
    import fiftyone as fo
    from test_bad_input import BAD_IMPORTS, BAD_OPTIONS

    cases: list[tuple[str, list[str]]] = []
    for case, (build, name, _) in sorted(BAD_IMPORTS.items()):
        folder = tmp / "bad" / case
        folder.mkdir(parents=True)
        cases.append((case, ["import", "--name", "bad-input" if name is None else name, *build(folder)]))
    cases += [(case, argv) for case, (argv, _, _) in sorted(BAD_OPTIONS.items())]
    cases += [
        ("ls-url-not-http", ["al", "init", "rel", "--ls-url", "ftp://x"]),
        ("ls-url-ends-in-api", ["al", "init", "rel", "--ls-url", "http://127.0.0.1:9/api"]),
        ("ls-server-down", ["al", "round", "rel", "--ls-url", "http://127.0.0.1:9"]),
    ]
    rows = []
    for case, argv in cases:
        before = sorted(fo.list_datasets())
        result = run([CURATION, *argv], dict(env, LABEL_STUDIO_API_KEY="0" * 40))
        after = sorted(fo.list_datasets())
        traceback = "Traceback" in result.stderr or "Traceback" in result.stdout
        silent = result.returncode == 0 or after != before
        rows.append({"case": case, "exit": result.returncode, "traceback": traceback, "silent_wrong": silent,
                     "message": " ".join(result.stderr.split())[-240:]})
    return {"bad_inputs": len(rows), "tracebacks": sum(r["traceback"] for r in rows),
            "silent_wrong": sum(r["silent_wrong"] for r in rows),
            "bad_input_failures": [r for r in rows if r["traceback"] or r["silent_wrong"] or r["exit"] != 2]}


def replica_set(env: dict[str, str], tmp: Path) -> dict:
    from test_replica_set import QUERY, RELABEL as RS_RELABEL, ReplicaSet

    members = ReplicaSet(tmp / "rs")
    failovers, lost = 0, 0
    try:
        rs_env = dict(env, FIFTYONE_DATABASE_URI=members.uri, FIFTYONE_DEFAULT_DATASET_DIR=str(tmp / "rs-datasets"))
        for what, args, point in (
            ("import", [CURATION, "import", "--name", "rs"], "import:before-swap"),
            ("label write", [sys.executable, "-c", RS_RELABEL, "rs"], "labels:before-bulk-write"),
        ):
            marker = tmp / f"rs-{what.replace(' ', '-')}"
            proc = subprocess.Popen(args, env=dict(rs_env, CURATION_TEST_PAUSE_AT=point,
                                                   CURATION_TEST_PAUSE_MARKER=str(marker),
                                                   CURATION_TEST_PAUSE_SECONDS="8"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while not marker.exists() and proc.poll() is None:
                time.sleep(0.1)
            killed = members.kill_primary()
            ok = proc.wait(600) == 0
            failovers += members.primary() != killed
            state = json.loads(run([sys.executable, "-c", QUERY, "rs"], rs_env).stdout.strip().splitlines()[-1])
            lost += (0 if ok else 1) + (1797 - state["n"]) + (state["n"] - state["files"])
            if what == "label write":
                lost += sum(1 for h in state["history"] if h != 1)
            members.start(killed)
    finally:
        members.stop()
    return {"replica_set_failovers": failovers, "replica_set_lost": lost}


def tokens() -> dict:
    import traceback

    import test_secrets_echo as echo
    from active_learning.errors import LabelStudioError
    from active_learning.label_studio.connection import LabelStudioSettings, connect
    from active_learning.label_studio.projects import ensure_project

    handler = type("EchoHandler", (echo.Echo,), {"access": echo._token("access"), "whoami_ok": False})
    server = echo.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    longest = 0
    try:
        for whoami_ok, key in ((False, echo._token("refresh")), (True, echo._token("refresh")), (True, "f" * 40)):
            handler.whoami_ok = whoami_ok
            try:
                client = connect(LabelStudioSettings(url=url, api_key=key))
                ensure_project(client, "echo project", ["a", "b"], "echo")
            except LabelStudioError as error:
                text = "".join(traceback.format_exception(type(error), error, error.__traceback__)) + str(error)
                for secret in (key, handler.access):
                    parts = secret.split(".")[1:] if secret.count(".") == 2 else [secret]
                    for part in parts:
                        for run_length in range(len(part), 0, -1):
                            if any(part[i:i + run_length] in text for i in range(len(part) - run_length + 1)):
                                longest = max(longest, run_length)
                                break
    finally:
        server.shutdown()
    # a run of up to 4 characters occurs by chance in any long text (e.g. 'eyJ0'): count what exceeds chance
    return {"token_chars_printed": longest if longest > 4 else 0, "token_longest_common_run": longest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(RESULTS / "reliability.json"))
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: kills,bad,rs,tokens")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    from services import free_port, start_mongod, stop_process

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        mongod = start_mongod(tmp / "mongo", port)
        os.environ.update(FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}", FIFTYONE_DO_NOT_TRACK="true",
                          FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DATABASE_ADMIN="true",
                          FIFTYONE_DEFAULT_DATASET_DIR=str(tmp / "datasets"), CURATION_LEASE_SECONDS="5",
                          OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
        env = os.environ.copy()
        result: dict = {}
        try:
            idx = ROOT.parent / "shared" / "data" / "fashion-mnist"
            if "kills" not in skip:
                result.update(kill_matrix(env, tmp, idx))
            if "bad" not in skip:
                result.update(bad_inputs(env, tmp))
            if "rs" not in skip:
                result.update(replica_set(env, tmp))
            if "tokens" not in skip:
                result.update(tokens())
        finally:
            stop_process(mongod)
    result["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
