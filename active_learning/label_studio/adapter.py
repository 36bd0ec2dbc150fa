"""The real Label Studio behind :class:`~active_learning.label_studio.api.LabelStudioAPI`: the only code of the
product that imports ``label-studio-sdk`` or ``httpx`` or reaches into the SDK.

:class:`LabelStudioClient` turns each operation into one SDK call (or, for the two things the SDK has no call for,
uploading files without making tasks and fetching a served file, one request with the SDK's HTTP client and
authentication headers) and returns plain data. Every failure goes through one translator (:meth:`_call`): an
HTTP error answer becomes :func:`~active_learning.label_studio.api.server_error` (a 404 of a project-scoped call
is :class:`~active_learning.errors.ProjectDeletedError`), a transport failure "is Label Studio running?", and an
answer that is not the API's JSON says so. The API key and the access token the SDK obtained for a personal access
token are masked in every message, and no exception is chained (tracebacks would carry the response's headers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pydantic
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from active_learning.errors import LabelStudioError, ProjectDeletedError
from active_learning.label_studio.api import (ErrorContext, NotFound, Project, User, no_api_error,
                                              not_the_api_error, secret_fragments, server_error, unreachable_error)

try:  # label-studio-sdk 2.1+: a response of an unexpected shape
    from label_studio_sdk.core.parse_error import ParsingError
except ImportError:  # pragma: no cover - older 2.x raise pydantic's ValidationError instead
    class ParsingError(Exception):  # type: ignore[no-redef]
        """Never raised: stands in for the SDK's ``ParsingError`` where it does not exist."""

if TYPE_CHECKING:
    from active_learning.label_studio.connection import LabelStudioSettings

logger = logging.getLogger(__name__)

TASK_PAGE_SIZE = 1000
CONNECTION_CHECK = "checking the connection"
NOT_JSON = (ParsingError, pydantic.ValidationError, json.JSONDecodeError)
ANNOTATED_QUERY = json.dumps({"filters": {"conjunction": "or", "items": [
    {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0},
    {"filter": "filter:tasks:cancelled_annotations", "operator": "greater", "type": "Number", "value": 0},
]}})
T = TypeVar("T")


def absolute_url(server_url: str, url: str) -> str:
    """A task's file address (``/data/...``, relative to the server's origin) as a full URL."""
    if urlsplit(url).scheme:
        return url
    parts = urlsplit(server_url)
    return f"{parts.scheme}://{parts.netloc}/{url.lstrip('/')}"


def deleted_project(project_id: int) -> NotFound:
    """What a 404 to a project-scoped call means."""
    return lambda reason: ProjectDeletedError(project_id)


def _project(raw: Any) -> Project:
    return Project(id=int(raw.id), title=raw.title or "", description=raw.description or "",
                   label_config=getattr(raw, "label_config", None) or "",
                   model_version=getattr(raw, "model_version", None) or "")


def _user(raw: Any) -> User:
    return User(id=int(raw.id), email=raw.email or "", username=getattr(raw, "username", None) or "")


def _prediction(raw: Any) -> dict[str, Any]:
    return {"model_version": raw.model_version, "score": raw.score, "result": raw.result}


class LabelStudioClient:
    """:class:`~active_learning.label_studio.api.LabelStudioAPI` on a real server, through ``label-studio-sdk``.

    Made by :func:`active_learning.label_studio.connection.connect`, which also checks the key with one call.
    Beyond the protocol it has a few calls the tests and tools use (``delete_project``, ``create_user``,
    ``update_annotation``, ``get_task``), and ``sdk``, the SDK client itself, for anything else.
    """

    def __init__(self, settings: LabelStudioSettings) -> None:
        self.settings = settings
        # A trailing slash keeps a path prefix (a reverse proxy's /labelstudio) when the SDK joins
        # api/token/refresh/ with urljoin; its other requests strip it. The SDK refuses an expired PAT here.
        self.sdk: LabelStudio = self._call("reading the API key", lambda: LabelStudio(
            base_url=f"{settings.url}/", api_key=settings.api_key, timeout=settings.timeout))

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.settings!r})"

    @property
    def url(self) -> str:
        """The address people open in the browser, without a trailing slash."""
        return self.settings.url

    def secrets(self) -> list[str]:
        """The API key and the access token the SDK obtained for a personal access token (its token client holds
        them), as fragments to mask."""
        tokens = getattr(getattr(getattr(self, "sdk", None), "_client_wrapper", None), "_tokens_client", None)
        return secret_fragments(self.settings.api_key, str(getattr(tokens, "_access_token", "") or ""))

    # ---------------------------------------------------------------------------------------- the translator

    def _call(self, what: str, function: Callable[[], T], not_found: NotFound | None = None) -> T:
        """Run one SDK call (or a pager's iteration), turning every known failure into ``LabelStudioError``."""
        try:
            return function()
        except ApiError as error:  # no chaining: tracebacks would carry the response's headers
            raise self._answer_error(what, error.status_code, error.body, not_found) from None
        except httpx.TransportError as error:
            raise unreachable_error(self.url, what, type(error).__name__,
                                    isinstance(error, httpx.TimeoutException)) from None
        except NOT_JSON as error:  # HTML or JSON of another shape where the API should be
            raise not_the_api_error(self.url, what, type(error).__name__) from None

    def _answer_error(self, what: str, status: int | None, body: Any,
                      not_found: NotFound | None = None) -> LabelStudioError:
        context = ErrorContext(self.url, self.settings.token_kind, tuple(self.secrets()))
        return server_error(status, body, what, context, not_found)

    def _http(self, what: str, method: str, path: str, not_found: NotFound | None = None,
              **kwargs: Any) -> httpx.Response:
        """A request the SDK has no call for, with the SDK's HTTP client and authentication headers.

        ``path`` is an API path below the server's address (``api/...``) or a full URL.
        """
        wrapper = self.sdk._client_wrapper
        url = path if urlsplit(path).scheme else f"{self.url}/{path.lstrip('/')}"

        def send() -> httpx.Response:
            headers = {"Authorization": wrapper.get_headers()["Authorization"]}  # may refresh a PAT's access token
            timeout = wrapper.get_timeout() or 60
            return wrapper.httpx_client.httpx_client.request(method, url, headers=headers, timeout=timeout, **kwargs)

        response = self._call(what, send)
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except json.JSONDecodeError:
                body = response.text
            raise self._answer_error(what, response.status_code, body, not_found)
        return response

    # ---------------------------------------------------------------------------------------- users

    def check_connection(self) -> User:
        """The current user, asked once without retries: the check that the server is Label Studio and takes the key."""
        options = {"max_retries": 0, "timeout_in_seconds": self.settings.timeout}
        return _user(self._call(CONNECTION_CHECK, lambda: self.sdk.users.whoami(request_options=options),
                                no_api_error(self.url)))

    def whoami(self) -> User:
        """The user whose key this is."""
        return _user(self._call("reading the current user", self.sdk.users.whoami))

    def list_users(self) -> list[User]:
        """The organization's users (those with an id and an email)."""
        users = self._call("listing users", lambda: list(self.sdk.users.list()))
        return [_user(user) for user in users if user.id is not None and user.email]

    def create_user(self, email: str, username: str) -> User:
        """A new user of the organization (for tests: a second annotator)."""
        return _user(self._call(f"creating user {email}",
                                lambda: self.sdk.users.create(email=email, username=username)))

    # ---------------------------------------------------------------------------------------- projects

    def get_project(self, project_id: int) -> Project:
        """One project, with its labeling config."""
        return _project(self._call(f"reading project {project_id}", lambda: self.sdk.projects.get(id=project_id),
                                   deleted_project(project_id)))

    def find_projects(self, title: str) -> list[Project]:
        """Projects whose title contains ``title``."""
        listed = self._call(f"looking for project {title!r}", lambda: list(self.sdk.projects.list(title=title)))
        return [_project(project) for project in listed]

    def create_project(self, title: str, description: str, label_config: str) -> Project:
        """A new project."""
        return _project(self._call(
            f"creating project {title!r}",
            lambda: self.sdk.projects.create(title=title, description=description, label_config=label_config)))

    def update_project(self, project_id: int, *, label_config: str | None = None,
                       model_version: str | None = None) -> None:
        """Change a project's labeling config or its model version."""
        changes = {k: v for k, v in (("label_config", label_config), ("model_version", model_version)) if v is not None}
        what = f"changing the {' and '.join(k.replace('_', ' ') for k in changes)} of project {project_id}"
        self._call(what, lambda: self.sdk.projects.update(id=project_id, **changes), deleted_project(project_id))

    def delete_project(self, project_id: int) -> None:
        """Delete a project and its tasks (for tests: someone deletes it behind the loop's back)."""
        self._call(f"deleting project {project_id}", lambda: self.sdk.projects.delete(id=project_id),
                   deleted_project(project_id))

    # ---------------------------------------------------------------------------------------- tasks

    def list_tasks(self, project_id: int, *, with_predictions: bool = False) -> list[dict[str, Any]]:
        """Every task of the project (``id`` and ``data``; ``predictions`` too when asked), oldest first."""
        options: dict[str, Any] = {"fields": "all"} if with_predictions else {"include": "id,data"}
        tasks = self._call(f"listing the tasks of project {project_id}",
                           lambda: list(self.sdk.tasks.list(project=project_id, page_size=TASK_PAGE_SIZE, **options)),
                           deleted_project(project_id))
        listed = []
        for task in sorted(tasks, key=lambda t: t.id):
            item: dict[str, Any] = {"id": int(task.id), "data": dict(task.data or {})}
            if with_predictions:
                item["predictions"] = [_prediction(p) for p in task.predictions or []]
            listed.append(item)
        return listed

    def get_task(self, task_id: int) -> dict[str, Any]:
        """One task with its data and predictions."""
        task = self._call(f"reading task {task_id}", lambda: self.sdk.tasks.get(id=task_id))
        return {"id": int(task.id), "data": dict(task.data or {}),
                "predictions": [_prediction(p) for p in task.predictions or []]}

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create ``tasks`` in ONE bulk import; their ids, in order."""
        response = self._call(
            f"importing {len(tasks)} tasks into project {project_id}",
            lambda: self.sdk.projects.import_tasks(id=project_id, request=list(tasks), return_task_ids=True),
            deleted_project(project_id))
        return [int(task_id) for task_id in getattr(response, "task_ids", None) or []]

    def annotated_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """The tasks with at least one annotation (submitted or cancelled), as export dicts.

        Uses the synchronous JSON export (one request; 3x faster than the task list for 1,000 tasks). Label Studio
        Enterprise answers it with 404: then the Data Manager's task list, filtered to annotated tasks, is read.
        """

        def export() -> list[dict[str, Any]] | None:
            try:
                chunks = self.sdk.projects.exports.download_sync(id=project_id, export_type="JSON")
                return json.loads(b"".join(chunks))
            except ApiError as error:
                if error.status_code == 404:
                    return None
                raise

        tasks = self._call(f"exporting the annotations of project {project_id}", export)
        if tasks is not None:
            return [task for task in tasks if task.get("annotations")]
        logger.debug("No synchronous export in this Label Studio: reading the task list of project %s", project_id)
        listed = self._call(
            f"reading the annotated tasks of project {project_id}",
            # no ``include``: with it the server lists annotations as bare ids
            lambda: list(self.sdk.tasks.list(project=project_id, fields="all", query=ANNOTATED_QUERY,
                                             page_size=TASK_PAGE_SIZE)),
            deleted_project(project_id),
        )
        return [task.model_dump(mode="python") for task in listed]

    # ---------------------------------------------------------------------------------------- annotations

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *, was_cancelled: bool = False,
                          completed_by: int | None = None, lead_time: float | None = None) -> int:
        """Annotate (or skip) a task; the annotation's id."""
        options = {k: v for k, v in (("completed_by", completed_by), ("lead_time", lead_time)) if v is not None}
        if was_cancelled:
            options["was_cancelled"] = True
        created = self._call(f"annotating task {task_id}",
                             lambda: self.sdk.annotations.create(task_id, result=result, **options))
        return int(created.id)

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> None:
        """Change an annotation's result, as an annotator correcting it does."""
        self._call(f"changing annotation {annotation_id}",
                   lambda: self.sdk.annotations.update(annotation_id, result=result))

    # ---------------------------------------------------------------------------------------- files

    def local_storage_paths(self, project_id: int) -> list[str]:
        """The folders of the project's local-files import storages."""
        storages = self._call(f"listing the local storages of project {project_id}",
                              lambda: list(self.sdk.import_storage.local.list(project=project_id)),
                              deleted_project(project_id))
        return [storage.path for storage in storages if storage.path]

    def create_local_storage(self, project_id: int, path: str, *, title: str, description: str,
                             regex_filter: str) -> None:
        """A local-files import storage on ``path`` that serves its files by URL."""
        self._call(
            f"creating a local-files storage on {path} for project {project_id}",
            lambda: self.sdk.import_storage.local.create(project=project_id, path=path, title=title,
                                                         use_blob_urls=True, regex_filter=regex_filter,
                                                         description=description),
            deleted_project(project_id),
        )

    def upload_files(self, project_id: int, files: Sequence[tuple[str, str]]) -> list[str]:
        """Upload ``(name, local path)`` files to the project without making tasks; their stored names."""
        with ExitStack() as stack:
            parts = [(f"file{i}", (name, stack.enter_context(open(path, "rb"))))
                     for i, (name, path) in enumerate(files)]
            response = self._http(f"uploading {len(files)} files to project {project_id}", "POST",
                                  f"api/projects/{project_id}/import", deleted_project(project_id),
                                  params={"commit_to_project": "false"}, files=parts)
        ids = response.json().get("file_upload_ids") or []
        listed = self._http(f"listing the uploaded files of project {project_id}", "GET",
                            f"api/projects/{project_id}/file-uploads", deleted_project(project_id),
                            params={"ids": json.dumps(ids)}).json()
        return [str(upload["file"]) for upload in listed]

    def read_file(self, url: str) -> bytes:
        """The bytes the server serves at ``url`` (a task's image address)."""
        return self._http(f"reading {url}", "GET", absolute_url(self.url, url)).content
