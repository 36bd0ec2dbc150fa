"""Session fixtures: an isolated real MongoDB (FiftyOne's bundled mongod) started before fiftyone is imported.

Every FiftyOne process joins a FiftyOne mongod already running on the machine, so the test session starts its own
mongod on a free port with its own data directory and points FiftyOne at it with ``FIFTYONE_DATABASE_URI``
(the same path users take for an external MongoDB). Subprocesses (CLI, App) inherit the environment.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ARTIFACTS = REPO_ROOT / "test-artifacts"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import free_port, start_mongod, stop_process  # noqa: E402
from labelstudio_server import label_studio, label_studio_down_url  # noqa: E402,F401

_SESSION: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CURATION_TEST_MONGO_STARTED"):
        return
    root = Path(tempfile.mkdtemp(prefix="curation-tests-"))
    port = free_port()
    proc = start_mongod(root / "mongo", port)
    _SESSION.update(root=root, mongod=proc)
    # atexit runs last-registered first: registered before fiftyone is imported, this runs after FiftyOne's own
    # exit cleanup (which talks to the database); stopping mongod earlier makes that cleanup wait 30 s.
    atexit.register(_stop_mongod)
    os.environ.update(
        CURATION_TEST_MONGO_STARTED="1",
        FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}",
        FIFTYONE_DATABASE_DIR=str(root / "fiftyone-db-unused"),
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
        FIFTYONE_DATABASE_ADMIN="true",
        FIFTYONE_DEFAULT_DATASET_DIR=str(root / "datasets"),
        FIFTYONE_PLUGINS_DIR=str(root / "plugins"),
        FIFTYONE_OPERATOR_TIMEOUT="600",
        CURATION_HOME=str(root / "curation"),
    )
    (root / "plugins").mkdir()
    # FiftyOne finds the plugin when the checkout (or a link to it) sits under FIFTYONE_PLUGINS_DIR.
    (root / "plugins" / "fiftyone-curation").symlink_to(REPO_ROOT)
    ARTIFACTS.mkdir(exist_ok=True)


def _stop_mongod() -> None:
    proc = _SESSION.get("mongod")
    if proc is not None:
        stop_process(proc)  # type: ignore[arg-type]
    root = _SESSION.get("root")
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline real datasets beside the checkout (``../shared/data``)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests need ../shared/data beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_root() -> Path:
    return Path(_SESSION["root"])  # type: ignore[arg-type]


@pytest.fixture
def dataset_name(request: pytest.FixtureRequest) -> str:
    """A unique dataset name, deleted after the test."""
    import fiftyone as fo

    # a valid dataset name: the importer refuses path separators (a parametrized id may hold an operator's URI)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", f"test-{request.node.name}")[:60].strip("-")
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    yield name
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture
def cli_env() -> dict[str, str]:
    """The environment for running the ``curation`` console script in a subprocess."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``curation`` console script and capture its output."""
    exe = Path(sys.executable).with_name("curation")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: with one thread they avoid OpenMP waits that make them ~10x slower
    when other processes hold the cores. Restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
