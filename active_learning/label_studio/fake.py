"""An in-memory Label Studio behind :class:`~active_learning.label_studio.api.LabelStudioAPI`, for fast tests.

It keeps what Label Studio 1.23 keeps and refuses what it refuses (``tests/test_label_studio_contract.py`` runs
the same assertions against it and the real server):

- ids count from 1 per kind (projects, tasks, annotations, users); lists are oldest first;
- a project stores its title, description, labeling config and model version; the first import with predictions
  sets an empty model version to the import's last one, and a version no prediction has is refused;
- an import refuses task data without the keys the config's object tags show (``$image``), and is all or nothing;
- annotations are stored as given (the server does not validate them), skipped ones with ``was_cancelled``, each
  with its annotator's id and its times, and read back as the JSON export gives them; an annotation can be
  changed later (its ``updated_at`` moves);
- deleting a project deletes its tasks, annotations, storages and uploads, and every later call for it raises the
  same :class:`~active_learning.errors.ProjectDeletedError` as the adapter;
- local files are served from ``local_files_root`` (``None``: serving is off) below a project's local-files
  storage, uploads from memory.
"""

from __future__ import annotations

import copy
import itertools
import os
import secrets
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from active_learning.errors import LabelStudioError, ProjectDeletedError
from active_learning.label_studio.api import ErrorContext, Project, User, server_error

OBJECT_TAGS = {"Image", "Text", "HyperText", "Audio", "Video", "TimeSeries", "Table", "Paragraphs"}
TITLE_LENGTH = (3, 50)


def object_tag_keys(label_config: str) -> set[str]:
    """The task data keys a labeling config's object tags show (``<Image value="$image"/>`` -> ``image``)."""
    root = ElementTree.fromstring(label_config)
    return {element.get("value", "")[1:] for element in root.iter()
            if element.tag in OBJECT_TAGS and element.get("value", "").startswith("$")}


class FakeLabelStudio:
    """Label Studio in memory: the protocol's operations plus those the tests use (``delete_project``,
    ``create_user``, ``update_annotation``, ``get_task``).

    Args:
        url: the address it pretends to run at (a loopback one makes ``media="auto"`` pick local files).
        local_files_root: its ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; None when local-files serving is off.
        email: the email of the user whose key this is.
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", *, local_files_root: str | None = None,
                 email: str = "annotator@example.com") -> None:
        self._url = url.rstrip("/")
        self.local_files_root = None if local_files_root is None else os.path.abspath(local_files_root)
        self._lock = threading.RLock()
        self._ids = {kind: itertools.count(1) for kind in ("project", "task", "annotation", "user")}
        self._projects: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, dict[str, Any]] = {}
        self._annotations: dict[int, dict[str, Any]] = {}
        self._users: dict[int, User] = {}
        self._storages: dict[int, list[str]] = {}
        self._uploads: dict[str, bytes] = {}
        self._last_time = datetime.now(timezone.utc)
        self._me = self.create_user(email, email.split("@")[0])

    def __repr__(self) -> str:
        return f"FakeLabelStudio({self._url!r}, {len(self._projects)} projects, {len(self._tasks)} tasks)"

    # ---------------------------------------------------------------------------------------- plumbing

    @property
    def url(self) -> str:
        """The address it pretends to run at."""
        return self._url

    def secrets(self) -> list[str]:
        """No key, nothing to mask."""
        return []

    def _error(self, status: int, detail: str, what: str) -> LabelStudioError:
        return server_error(status, {"detail": detail}, what, ErrorContext(self._url, "personal access token"))

    def _now(self) -> str:
        """Strictly increasing ISO timestamps, as the server's clock gives two calls."""
        self._last_time = max(datetime.now(timezone.utc), self._last_time + timedelta(microseconds=1))
        return self._last_time.isoformat().replace("+00:00", "Z")

    def _project(self, project_id: int) -> dict[str, Any]:
        if project_id not in self._projects:
            raise ProjectDeletedError(project_id)
        return self._projects[project_id]

    def _task(self, task_id: int, what: str) -> dict[str, Any]:
        if task_id not in self._tasks:
            raise self._error(404, "Not found.", what)
        return self._tasks[task_id]

    # ---------------------------------------------------------------------------------------- users

    def whoami(self) -> User:
        """The user whose key this is."""
        return self._me

    def list_users(self) -> list[User]:
        """The organization's users."""
        with self._lock:
            return list(self._users.values())

    def create_user(self, email: str, username: str) -> User:
        """A new user of the organization."""
        with self._lock:
            user = User(next(self._ids["user"]), email, username)
            self._users[user.id] = user
            return user

    # ---------------------------------------------------------------------------------------- projects

    def get_project(self, project_id: int) -> Project:
        """One project, with its labeling config."""
        with self._lock:
            return Project(**self._project(project_id))

    def find_projects(self, title: str) -> list[Project]:
        """Projects whose title contains ``title`` (case-insensitive, as the server filters)."""
        with self._lock:
            return [Project(**p) for p in self._projects.values() if title.lower() in p["title"].lower()]

    def create_project(self, title: str, description: str, label_config: str) -> Project:
        """A new project; the server refuses a title outside 3-50 characters and a config that is not XML."""
        what = f"creating project {title!r}"
        if not TITLE_LENGTH[0] <= len(title) <= TITLE_LENGTH[1]:
            raise self._error(400, f"title: Ensure this field has {TITLE_LENGTH[0]}-{TITLE_LENGTH[1]} characters.",
                              what)
        try:
            ElementTree.fromstring(label_config)
        except ElementTree.ParseError:
            raise self._error(400, "label_config: the labeling config is not valid XML.", what) from None
        with self._lock:
            project = {"id": next(self._ids["project"]), "title": title, "description": description,
                       "label_config": label_config, "model_version": ""}
            self._projects[project["id"]] = project
            self._storages[project["id"]] = []
            return Project(**project)

    def update_project(self, project_id: int, *, label_config: str | None = None,
                       model_version: str | None = None) -> None:
        """Change the labeling config or the model version (which some prediction of the project must have)."""
        with self._lock:
            project = self._project(project_id)
            if model_version is not None and model_version != project["model_version"]:
                versions = {p["model_version"] for task in self._project_tasks(project_id)
                            for p in task["predictions"]}
                if model_version and model_version not in versions:
                    raise self._error(400, "model_version: Model version doesn't exist either as live model or as "
                                      "static predictions.", f"changing the model version of project {project_id}")
                project["model_version"] = model_version
            if label_config is not None:
                project["label_config"] = label_config

    def delete_project(self, project_id: int) -> None:
        """Delete a project with its tasks, annotations, storages and uploads."""
        with self._lock:
            self._project(project_id)
            for task in self._project_tasks(project_id):
                for annotation in task["annotations"]:
                    del self._annotations[annotation["id"]]
                del self._tasks[task["id"]]
            del self._projects[project_id], self._storages[project_id]
            for name in [n for n in self._uploads if n.startswith(f"upload/{project_id}/")]:
                del self._uploads[name]

    # ---------------------------------------------------------------------------------------- tasks

    def _project_tasks(self, project_id: int) -> list[dict[str, Any]]:
        return [task for task in self._tasks.values() if task["project"] == project_id]

    def list_tasks(self, project_id: int, *, with_predictions: bool = False) -> list[dict[str, Any]]:
        """Every task of the project (``id`` and ``data``; ``predictions`` too when asked), oldest first."""
        with self._lock:
            self._project(project_id)
            keys = ("id", "data", "predictions") if with_predictions else ("id", "data")
            return [copy.deepcopy({k: task[k] for k in keys}) for task in self._project_tasks(project_id)]

    def get_task(self, task_id: int) -> dict[str, Any]:
        """One task with its data and predictions."""
        with self._lock:
            task = self._task(task_id, f"reading task {task_id}")
            return copy.deepcopy({k: task[k] for k in ("id", "data", "predictions")})

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create the tasks in one import (all or none); their ids, in order."""
        what = f"importing {len(tasks)} tasks into project {project_id}"
        with self._lock:
            project = self._project(project_id)
            required = object_tag_keys(project["label_config"])
            for task in tasks:
                missing = sorted(required - set(task.get("data") or {}))
                if missing:
                    raise self._error(400, f'"{missing[0]}" key is expected in task data', what)
            ids = []
            for task in tasks:
                stored = {"id": next(self._ids["task"]), "project": project_id,
                          "data": copy.deepcopy(dict(task["data"])), "predictions": [], "annotations": []}
                for prediction in task.get("predictions") or []:
                    stored["predictions"].append({"model_version": prediction.get("model_version", "undefined"),
                                                  "score": prediction.get("score"),
                                                  "result": copy.deepcopy(prediction["result"])})
                self._tasks[stored["id"]] = stored
                for annotation in task.get("annotations") or []:
                    self._add_annotation(stored, annotation.get("result") or [],
                                         bool(annotation.get("was_cancelled")), self._me.id, None)
                ids.append(stored["id"])
            versions = [p["model_version"] for task in ids for p in self._tasks[task]["predictions"]]
            if versions and not project["model_version"]:
                project["model_version"] = versions[-1]
            return ids

    def annotated_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """The tasks with at least one annotation (submitted or cancelled), as the JSON export gives them."""
        with self._lock:
            self._project(project_id)
            return [copy.deepcopy({k: task[k] for k in ("id", "data", "predictions", "annotations")})
                    for task in self._project_tasks(project_id) if task["annotations"]]

    # ---------------------------------------------------------------------------------------- annotations

    def _add_annotation(self, task: dict[str, Any], result: list[dict[str, Any]], was_cancelled: bool,
                        completed_by: int, lead_time: float | None) -> int:
        user = self._users[completed_by]
        when = self._now()
        annotation = {"id": next(self._ids["annotation"]), "task": task["id"], "project": task["project"],
                      "result": copy.deepcopy(result), "was_cancelled": was_cancelled, "completed_by": user.id,
                      "created_at": when, "updated_at": when, "lead_time": lead_time}
        task["annotations"].append(annotation)
        self._annotations[annotation["id"]] = annotation
        return annotation["id"]

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *, was_cancelled: bool = False,
                          completed_by: int | None = None, lead_time: float | None = None) -> int:
        """Annotate (or skip) a task, stored as given; the annotation's id."""
        what = f"annotating task {task_id}"
        with self._lock:
            task = self._task(task_id, what)
            user = self._me.id if completed_by is None else completed_by
            if user not in self._users:
                raise self._error(400, f"completed_by: Invalid pk \"{user}\" - object does not exist.", what)
            return self._add_annotation(task, result, was_cancelled, user, lead_time)

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> None:
        """Change an annotation's result (its ``updated_at`` moves)."""
        with self._lock:
            if annotation_id not in self._annotations:
                raise self._error(404, "Not found.", f"changing annotation {annotation_id}")
            annotation = self._annotations[annotation_id]
            annotation["result"], annotation["updated_at"] = copy.deepcopy(result), self._now()

    # ---------------------------------------------------------------------------------------- files

    def local_storage_paths(self, project_id: int) -> list[str]:
        """The folders of the project's local-files import storages."""
        with self._lock:
            self._project(project_id)
            return list(self._storages[project_id])

    def create_local_storage(self, project_id: int, path: str, *, title: str, description: str,
                             regex_filter: str) -> None:
        """A local-files storage; refused unless serving is on and ``path`` is an existing folder below the root."""
        what = f"creating a local-files storage on {path} for project {project_id}"
        with self._lock:
            self._project(project_id)
            root = self.local_files_root
            folder = Path(os.path.normpath(path))
            if not folder.exists():
                raise self._error(400, f'Absolute local path "{path}" does not exist', what)
            if root is None or Path(root) not in folder.parents:
                raise self._error(400, f'Absolute local path "{path}" must be a subdirectory of '
                                  f'LOCAL_FILES_DOCUMENT_ROOT="{root}"', what)
            self._storages[project_id].append(str(folder))

    def upload_files(self, project_id: int, files: Sequence[tuple[str, str]]) -> list[str]:
        """Keep the files' bytes under ``upload/<project>/<8 hex>-<name>``; those names."""
        with self._lock:
            self._project(project_id)
            stored = []
            for name, path in files:
                key = f"upload/{project_id}/{secrets.token_hex(4)}-{name}"
                self._uploads[key] = Path(path).read_bytes()
                stored.append(key)
            return stored

    def read_file(self, url: str) -> bytes:
        """A served file: an upload, or a local file below a project's local-files storage."""
        what = f"reading {url}"
        parts = urlsplit(url)
        path = parts.path
        prefix = urlsplit(self._url).path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix):]
        with self._lock:
            if path.startswith("/data/upload/") and path[len("/data/"):] in self._uploads:
                return self._uploads[path[len("/data/"):]]
            if path.rstrip("/") == "/data/local-files":
                if self.local_files_root is None:
                    raise self._error(403, "Serving local files can be dangerous, so it's disabled by default.",
                                      what)
                relative = os.path.normpath(parse_qs(parts.query).get("d", [""])[0]).lstrip("/")
                full = os.path.join(self.local_files_root, relative)
                folder = os.path.dirname(full)
                allowed = any(folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)
                              for roots in self._storages.values() for root in roots)
                if allowed and os.path.isfile(full):
                    return Path(full).read_bytes()
            raise self._error(404, "", what)
