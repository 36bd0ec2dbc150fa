"""What the product needs from Label Studio: one typed interface, its plain data, and the errors it raises.

:class:`LabelStudioAPI` lists exactly the operations the bridge (projects, tasks, ingestion), the loop and the
simulated annotator use. Two classes implement it: :class:`~active_learning.label_studio.adapter.LabelStudioClient`
(the real server through ``label-studio-sdk``; the only code that touches the SDK or HTTP) and
:class:`~active_learning.label_studio.fake.FakeLabelStudio` (in memory, for fast tests). Tasks and annotations are
plain dicts in Label Studio's JSON export format; projects and users are small frozen dataclasses.

The messages of every Label Studio error are made here, from an HTTP status and the server's answer
(:func:`server_error`), with the secrets masked before anything is shortened; the adapter decides which SDK and
transport failures map to which message, and the fake raises the same classes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from active_learning.errors import LabelStudioError

URL_VARIABLE = "LABEL_STUDIO_URL"
API_KEY_VARIABLE = "LABEL_STUDIO_API_KEY"
TOKEN_HINT = (
    "create a personal access token in Label Studio under Account & Settings > Personal Access Token "
    f"and pass it as `api_key`, set {API_KEY_VARIABLE}, or store it as the FiftyOne secret {API_KEY_VARIABLE}"
)
DETAIL_LIMIT = 600  # characters of a server's explanation kept in an error message


@dataclass(frozen=True)
class Project:
    """A Label Studio project as the bridge uses it (``label_config`` may be ``""`` in a listing)."""

    id: int
    title: str
    description: str = ""
    label_config: str = ""
    model_version: str = ""


@dataclass(frozen=True)
class User:
    """A Label Studio user."""

    id: int
    email: str
    username: str = ""


class LabelStudioAPI(Protocol):
    """The Label Studio operations of the product, returning plain data and raising ``LabelStudioError``.

    Every project-scoped call raises :class:`~active_learning.errors.ProjectDeletedError` for a project that no
    longer exists. Tasks are dicts ``{"id", "data", "predictions"?, "annotations"?}``; an annotation is
    ``{"id", "result", "was_cancelled", "completed_by", "created_at", "updated_at", "created_username"}``.
    """

    @property
    def url(self) -> str:
        """The address people open in the browser, without a trailing slash."""
        ...

    def secrets(self) -> list[str]:
        """What must never be printed of the credentials (:func:`secret_fragments`)."""
        ...

    def whoami(self) -> User:
        """The user whose key this is."""
        ...

    def list_users(self) -> list[User]:
        """The organization's users."""
        ...

    def get_project(self, project_id: int) -> Project:
        """One project, with its labeling config."""
        ...

    def find_projects(self, title: str) -> list[Project]:
        """Projects whose title contains ``title`` (the caller keeps the exact matches)."""
        ...

    def create_project(self, title: str, description: str, label_config: str) -> Project:
        """A new project."""
        ...

    def update_project(self, project_id: int, *, label_config: str | None = None,
                       model_version: str | None = None) -> None:
        """Change a project's labeling config or the model version whose predictions the labeling view shows."""
        ...

    def list_tasks(self, project_id: int, *, with_predictions: bool = False) -> list[dict[str, Any]]:
        """Every task of the project (``id`` and ``data``; ``predictions`` too when asked), oldest first."""
        ...

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create ``tasks`` (``data`` and optional ``predictions``) in ONE bulk import; their ids, in order."""
        ...

    def annotated_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """The tasks with at least one annotation (submitted or cancelled), with their annotations."""
        ...

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *, was_cancelled: bool = False,
                          completed_by: int | None = None, lead_time: float | None = None) -> int:
        """Annotate (or, with ``was_cancelled``, skip) a task as a person would; the annotation's id."""
        ...

    def local_storage_paths(self, project_id: int) -> list[str]:
        """The folders of the project's local-files import storages."""
        ...

    def create_local_storage(self, project_id: int, path: str, *, title: str, description: str,
                             regex_filter: str) -> None:
        """A local-files import storage on ``path`` that serves files by URL (never synced by us)."""
        ...

    def upload_files(self, project_id: int, files: Sequence[tuple[str, str]]) -> list[str]:
        """Upload ``(name, local path)`` files without making tasks; the stored names (``upload/<id>/<x>-<name>``)."""
        ...

    def read_file(self, url: str) -> bytes:
        """The bytes the server serves at ``url`` (a task's image address, relative or absolute)."""
        ...


# ------------------------------------------------------------------------------------------ secrets


def secret_fragments(*secrets: str | None) -> list[str]:
    """What must never be printed of these secrets: each one whole and, for a JWT, each of its segments."""
    fragments: set[str] = set()
    for secret in secrets:
        secret = (secret or "").strip()
        if not secret:
            continue
        fragments.add(secret)
        fragments.update(part for part in secret.split(".") if len(part) >= 8)
    return sorted(fragments, key=len, reverse=True)  # the whole token before its parts


def mask_secrets(text: str, fragments: list[str]) -> str:
    """``text`` with every fragment replaced by ``***``."""
    for fragment in fragments:
        text = text.replace(fragment, "***")
    return text


def shorten(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` with its blanks collapsed, cut after the last whole sentence that fits (or the last whole word)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind(": "))
    if end >= limit // 3:
        return head[: end + 1] + " [...]"
    return head.rsplit(" ", 1)[0] + " [...]"


def server_detail(body: Any, fragments: list[str]) -> str:
    """The server's explanation in an error answer (``detail``, validation errors or plain text), masked first and
    only then shortened, so a server that echoes the request cannot leak part of a token."""
    parts: list[str] = []
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            parts.append(body["detail"])
        if body.get("validation_errors"):
            parts.append(json.dumps(body["validation_errors"], ensure_ascii=False))
    elif isinstance(body, str) and not body.lstrip().startswith("<"):
        parts.append(body)
    return shorten(mask_secrets(" ".join(parts), fragments))


# ------------------------------------------------------------------------------------------ error messages

NotFound = Callable[[str], LabelStudioError]  # the reason ("HTTP 404: ...") -> the error a 404 means for a call


@dataclass(frozen=True)
class ErrorContext:
    """Who was asking, for the messages: the server's address, the kind of key, and the secrets to mask."""

    url: str
    token_kind: str
    secrets: tuple[str, ...] = ()


def server_error(status: int | None, body: Any, what: str, context: ErrorContext,
                 not_found: NotFound | None = None) -> LabelStudioError:
    """The ``LabelStudioError`` for an HTTP error answer to the call doing ``what``.

    Args:
        status: the HTTP status (a status below 400 means the answer was not the API's JSON).
        body: the answer's JSON or text; shown masked and shortened.
        what: the call, as in "while reading project 3".
        context: the server and the credentials.
        not_found: what a 404 means for this call (a deleted project, no API at the URL); a generic error if None.
    """
    url = context.url
    if status is None or status < 400:
        return not_the_api_error(url, what)
    detail = server_detail(body, list(context.secrets))
    reason = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        if "legacy" in detail.lower():
            return LabelStudioError(
                f"Label Studio at {url} no longer accepts legacy tokens for this organization ({reason}); "
                f"{TOKEN_HINT}, or ask an administrator to enable legacy tokens under Organization > API Tokens."
            )
        return LabelStudioError(f"Label Studio at {url} refused the {context.token_kind} while {what} ({reason}); "
                                f"{TOKEN_HINT}.")
    if status == 404 and not_found is not None:
        return not_found(reason)
    return LabelStudioError(f"Label Studio at {url} failed while {what} ({reason}).")


def no_api_error(url: str) -> NotFound:
    """What a 404 to the connection check means: the URL is not Label Studio's."""
    return lambda reason: LabelStudioError(
        f"There is no Label Studio API at {url} ({reason}): check {URL_VARIABLE} (the address you open in the "
        "browser) and that the server is Label Studio 1.23 or newer."
    )


def not_the_api_error(url: str, what: str, kind: str = "") -> LabelStudioError:
    """An answer that is not Label Studio's API (HTML, or JSON of another shape) where the API should be."""
    detail = f" ({kind})" if kind else ""
    return LabelStudioError(
        f"The server at {url} answered, but not like Label Studio's API, while {what}{detail}: check "
        f"{URL_VARIABLE} (the address you open in the browser)."
    )


def unreachable_error(url: str, what: str, error_name: str, timed_out: bool) -> LabelStudioError:
    """The server did not answer (refused connection, DNS, timeout)."""
    how = "did not answer in time" if timed_out else "could not be reached"
    return LabelStudioError(
        f"Label Studio at {url} {how} while {what} ({error_name}): is Label Studio running at {url}? "
        f"Start it with `scripts/labelstudio start`, or set {URL_VARIABLE} to its address."
    )
