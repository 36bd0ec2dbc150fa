"""A real Label Studio server for the tests, on 127.0.0.1 with a preset user, a legacy token and a PAT.

Label Studio lives in its own virtualenv (``CURATION_LS_VENV``, else ``<repo>/.lsvenv``, made by
``scripts/labelstudio install``) because its pins clash with FiftyOne's. The server gets a minimal environment, so
nothing from the developer's shell (``LABEL_STUDIO_*``, ``HOST``, ``USERNAME``, ...) leaks into it.

Tokens: the user is created at start with a preset legacy token (``LABEL_STUDIO_USER_TOKEN``), which Label Studio
1.23 accepts only when ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`` is set while the organization is created. The
personal access token (a JWT refresh token) is then made through the API (``POST api/token/``, the SDK's
``tokens.create``) with the legacy token. The first start takes about 45 s (database migrations); a restart on the
same data directory takes a few seconds and keeps the tokens (the JWT signing key lives in ``<data>/.env``).

Local files: the session server serves files under pytest's base temporary directory (``local_files_root``) at
``/data/local-files/?d=<path relative to it>`` (``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``), so images a test writes under ``tmp_path`` can be shown in tasks.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from services import free_port, stop_process, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_START_TIMEOUT = 300.0
USERNAME = "curation-tests@example.com"
_STARTED: list[subprocess.Popen] = []


class LabelStudioStartError(RuntimeError):
    """The test server did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class LabelStudioServer:
    """A running test server and the credentials of its preset user (tokens are hidden from the repr)."""

    url: str
    username: str
    password: str = field(repr=False)
    legacy_token: str = field(repr=False)
    personal_access_token: str = field(repr=False)
    process: subprocess.Popen = field(repr=False, compare=False)
    data_dir: Path
    log_path: Path
    local_files_root: Path | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def label_studio_venv() -> Path:
    """The virtualenv that holds Label Studio: ``CURATION_LS_VENV`` if set, else ``<repo>/.lsvenv``."""
    return Path(os.environ.get("CURATION_LS_VENV") or REPO_ROOT / ".lsvenv")


def label_studio_executable() -> Path | None:
    """The ``label-studio`` command of that virtualenv, or None when it is not installed."""
    exe = label_studio_venv() / "bin" / "label-studio"
    return exe if exe.is_file() else None


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def server_environment(
    data_dir: Path, username: str, password: str, legacy_token: str, local_files_root: Path | None = None
) -> dict[str, str]:
    """A minimal environment for the server: only what it needs, so the caller's shell cannot change it.

    With ``local_files_root``, the server serves files below it through local-files storage.
    """
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        # SECRET_KEY signs the JWTs (personal access tokens). Left unset, Label Studio generates one and appends it
        # to <data>/.env; its startup processes can race there and a restart then rejects every PAT. A key derived
        # from the data directory is the same across restarts and different per server.
        SECRET_KEY=hashlib.sha256(f"curation-test-{data_dir.resolve()}".encode()).hexdigest(),
        LABEL_STUDIO_USERNAME=username,
        LABEL_STUDIO_PASSWORD=password,
        LABEL_STUDIO_USER_TOKEN=legacy_token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        PYTHONUNBUFFERED="1",
    )
    if local_files_root is not None:
        env.update(
            LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
            LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(local_files_root),
        )
    return env


def _die_with_parent() -> None:
    """In the child (Linux): be sent SIGTERM when pytest dies without running its teardown (e.g. a timeout)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except Exception:  # not glibc: an interrupted session may leave the server behind
        pass


def _launch(exe: Path, port: int, data_dir: Path, log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start the server the way the README does, ``scripts/labelstudio start``, its output appended to ``log_path``.

    The script runs ``label-studio start`` (exec: the process is the server) from the virtualenv of ``exe``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(env, CURATION_LS_VENV=str(exe.parent.parent))
    root = env.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "scripts" / "labelstudio"), "start", "--port", str(port),
             "--data-dir", str(data_dir), *(["--document-root", root] if root else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    _STARTED.append(proc)
    return proc


def _wait_for_api(url: str, legacy_token: str, timeout: float) -> None:
    """Wait until the API answers an authenticated request (the port opens a moment before Django is ready)."""
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.api_error import ApiError

    client = LabelStudio(base_url=f"{url}/", api_key=legacy_token, timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.users.whoami(request_options={"max_retries": 0})
            return
        except ApiError as exc:
            if exc.status_code in (401, 403):  # up, but the preset token was not applied: waiting will not help
                raise RuntimeError(f"the preset legacy token was refused: HTTP {exc.status_code}, {exc.body}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API kept answering HTTP {exc.status_code}: {exc.body}") from None
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _create_personal_access_token(url: str, legacy_token: str) -> str:
    """A personal access token for the preset user, made through the API with the legacy token."""
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=f"{url}/", api_key=legacy_token, timeout=30)
    settings = client.jwt_settings.get()
    if not settings.api_tokens_enabled:  # the default in 1.23; turned on here should a release change it
        ttl_days = settings.api_token_ttl_days or 3650
        client.jwt_settings.update(api_tokens_enabled=True, legacy_api_tokens_enabled=True, api_token_ttl_days=ttl_days)
    return client.tokens.create().token


def _start(exe: Path, server: LabelStudioServer, timeout: float) -> subprocess.Popen:
    """Launch the server described by ``server`` and wait for its API, or stop it and raise with the log tail."""
    env = server_environment(
        server.data_dir, server.username, server.password, server.legacy_token, server.local_files_root
    )
    proc = _launch(exe, server.port, server.data_dir, server.log_path, env)
    started = time.monotonic()
    try:
        wait_for_port(server.port, timeout, proc, "Label Studio")
        _wait_for_api(server.url, server.legacy_token, timeout=max(30.0, timeout - (time.monotonic() - started)))
    except Exception as exc:
        stop_process(proc)
        raise LabelStudioStartError(
            f"Label Studio did not start at {server.url} ({exc}); last lines of {server.log_path}:\n"
            f"{log_tail(server.log_path)}"
        ) from None
    return proc


def start_label_studio(
    root: Path, timeout: float = FIRST_START_TIMEOUT, local_files_root: Path | None = None
) -> LabelStudioServer:
    """Start a fresh Label Studio in ``root`` on a free port and return it with a legacy token and a PAT.

    With ``local_files_root`` (an absolute directory), files below it can be served through local-files storage.

    Raises:
        FileNotFoundError: Label Studio is not installed (run ``scripts/labelstudio install``).
        LabelStudioStartError: it did not come up; the message carries the tail of ``root/label-studio.log``.
    """
    exe = label_studio_executable()
    if exe is None:
        raise FileNotFoundError(
            f"Label Studio is not installed in {label_studio_venv()}: run `scripts/labelstudio install` "
            "(or point CURATION_LS_VENV at a virtualenv with label-studio 1.23)."
        )
    port = free_port()
    pending = LabelStudioServer(
        url=f"http://127.0.0.1:{port}", username=USERNAME, password=secrets.token_urlsafe(16),
        legacy_token=secrets.token_hex(20),  # DRF keeps legacy tokens in a 40-character column
        personal_access_token="", process=None,  # type: ignore[arg-type]
        data_dir=root / "data", log_path=root / "label-studio.log",
        local_files_root=Path(os.path.abspath(local_files_root)) if local_files_root is not None else None,
    )
    started = time.monotonic()
    proc = _start(exe, pending, timeout)
    try:
        pat = _create_personal_access_token(pending.url, pending.legacy_token)
    except Exception as exc:
        stop_process(proc)
        raise LabelStudioStartError(
            f"Label Studio at {pending.url} did not give a personal access token ({type(exc).__name__}: "
            f"{str(exc)[-300:]}); last lines of {pending.log_path}:\n{log_tail(pending.log_path)}"
        ) from None
    with open(pending.log_path, "a") as log:
        log.write(f"\n[tests] Label Studio ready at {pending.url} in {time.monotonic() - started:.1f} s\n")
    return replace(pending, personal_access_token=pat, process=proc)


def stop_label_studio(server: LabelStudioServer) -> None:
    """Stop the server's process; its data directory stays, so ``restart_label_studio`` brings it back."""
    stop_process(server.process)


def restart_label_studio(server: LabelStudioServer, timeout: float = 60.0) -> LabelStudioServer:
    """Start ``server`` again on the same port and data directory: same URL, same user, same tokens.

    The returned record holds the new process; the old record's URL and tokens stay valid.
    """
    stop_label_studio(server)
    exe = label_studio_executable()
    assert exe is not None, "Label Studio disappeared from its virtualenv"
    return replace(server, process=_start(exe, server, timeout))


def stop_all_label_studio() -> None:
    """Stop every server this module started (the session's teardown)."""
    while _STARTED:
        stop_process(_STARTED.pop())


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """A real Label Studio for the whole session, started on first use, stopped at the end.

    Its data directory and log stay under pytest's temporary directory for diagnosis. It serves local files below
    pytest's base temporary directory, so every test's ``tmp_path`` is inside its local-files document root.
    """
    if label_studio_executable() is None:
        pytest.fail(
            f"Label Studio is not installed in {label_studio_venv()}: run `scripts/labelstudio install` "
            "(or set CURATION_LS_VENV to a virtualenv with label-studio 1.23).",
            pytrace=False,
        )
    try:
        server = start_label_studio(
            tmp_path_factory.mktemp("label-studio"), local_files_root=tmp_path_factory.getbasetemp()
        )
    except LabelStudioStartError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:  # failed outside the except block, so pytest shows the message alone
        pytest.fail(failure, pytrace=False)
    yield server
    stop_all_label_studio()


@dataclass(frozen=True)
class Backend:
    """A Label Studio for a test: the in-memory fake or the session's real server, with the root it serves
    local files from (the fake serves the same folder as the real one)."""

    name: str
    client: Any = field(repr=False)
    local_files_root: Path


def real_client(server: LabelStudioServer, timeout: float = 60) -> Any:
    """The product's adapter, connected to ``server`` with its personal access token."""
    from active_learning.label_studio.connection import LabelStudioSettings, connect

    return connect(LabelStudioSettings(url=server.url, api_key=server.personal_access_token, timeout=timeout))


def counting_imports(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the client's bulk task imports (one entry per call: the number of tasks)."""
    calls: list[int] = []
    original = client.import_tasks

    def spy(project_id: int, tasks: list) -> list[int]:
        calls.append(len(tasks))
        return original(project_id, tasks)

    monkeypatch.setattr(client, "import_tasks", spy)
    return calls


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.labelstudio)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """The same test against the in-memory fake and against the real server (``labelstudio``-marked)."""
    from active_learning.label_studio.fake import FakeLabelStudio

    if request.param == "fake":
        root = tmp_path_factory.getbasetemp()
        return Backend("fake", FakeLabelStudio(local_files_root=str(root)), root)
    server = request.getfixturevalue("label_studio")
    return Backend("real", real_client(server), server.local_files_root)


@pytest.fixture
def label_studio_down_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens: Label Studio that is down."""
    return f"http://127.0.0.1:{free_port()}"
