"""The Label Studio bridge: projects, images, tasks with pre-annotations, and ingestion of finished annotations.

Every step is idempotent, so the active-learning loop can rerun any of them after a crash:

- ``ensure_project`` finds the project by its stable title and a marker in its description naming the dataset, or
  by the id the loop stored; it never makes a second project for the same dataset and title, and a stored project
  that was deleted in Label Studio is an error unless ``new_project=True``.
- ``push_tasks`` sends every new sample in ONE bulk import with the model's prediction as pre-annotation; samples
  already in the project (found by ``data.sample_id``) are not pushed again.
- ``fetch_completed`` reads only annotated tasks, validates every annotation against the labeling config (the
  server does not), and resolves several annotations of a task by majority vote.
- ``ingest`` writes each sample's label, its ``label_history`` entry (the old label is kept), its provenance in
  ``ls_provenance`` and its review status in one document update, all in one bulk write
  (:func:`active_learning.label_history.write_sample_updates`), so a crash leaves no half-ingested sample;
  ingesting the same annotations again changes nothing.

Images reach Label Studio in one of two ways (``media``):

- ``"local-files"``: the server reads the files from this machine's disk. It must run with
  ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to a folder
  above the images; tasks point at ``/data/local-files/?d=<path relative to the root>``, and a local-files import
  storage on the images' common folder grants access (it is never synced: its filter matches no file).
- ``"upload"``: the files are uploaded to the server (for a server on another machine); tasks point at the copies.
- ``"auto"`` (the default) picks local files for a server on a loopback address and uploads otherwise, and also
  when that local server does not serve these files (serving off, or the images outside its document root): the
  push result's ``note`` says so.

Label Studio is reached only through ``label-studio-sdk`` 2.x; the two things it has no call for (uploading files
without creating tasks, fetching a served file) use the SDK client's own HTTP client and authentication headers.
Errors from the server become :class:`~active_learning.errors.LabelStudioError`; the API key never appears in them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import quoteattr

import httpx
from bson import ObjectId
from label_studio_sdk.core.api_error import ApiError

from active_learning.errors import DataError, LabelStudioError
from active_learning.label_history import (REVIEW_STATUS_FIELD, SampleUpdate, check_classes, history_entry,
                                            new_change_id, write_sample_updates)
from active_learning.label_studio import TOKEN_HINT, URL_VARIABLE, client_secrets, server_detail
from active_learning.runs import now_utc
from active_learning.views import check_label_field, get_classes

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

logger = logging.getLogger(__name__)

PROVENANCE_FIELD = "ls_provenance"
IMAGE_KEY = "image"
SAMPLE_ID_KEY = "sample_id"
ROUND_KEY = "round"
FILENAME_KEY = "filename"
NOTE_KEY = "note"  # what the annotator should know: the model's guess, or why a labeled sample is back for review
MARKER = "[fiftyone-curation]"
LOCAL_FILES_ROOT_VARIABLE = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
LOCAL_FILES_SERVING_VARIABLE = "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"
UPLOAD_HINT = "or upload the images instead (media 'upload': `curation al init DATASET --media upload`)"
SERVING_HINT = (
    f"start Label Studio with `scripts/labelstudio start` (it enables local files), or set "
    f"{LOCAL_FILES_SERVING_VARIABLE}=true and {LOCAL_FILES_ROOT_VARIABLE}=<a folder above the images> for the "
    f"server, and the same {LOCAL_FILES_ROOT_VARIABLE} here"
)
MEDIA_MODES = ("auto", "local-files", "upload")
STORAGE_TITLE = "fiftyone-curation images"
NEVER_MATCHES = "(?!)"  # the storage's file filter: a sync of it imports nothing
TITLE_LENGTH = (3, 50)  # Label Studio's limits on project titles
UPLOAD_BATCH_FILES = 100  # Django's DATA_UPLOAD_MAX_NUMBER_FILES default in Label Studio
UPLOAD_BATCH_BYTES = 64 * 1024 * 1024
TASK_PAGE_SIZE = 1000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
_T = TypeVar("_T")


# ------------------------------------------------------------------------------------------ labeling config


@dataclass(frozen=True)
class ChoicesConfig:
    """The single-choice classification part of a labeling config."""

    from_name: str
    to_name: str
    classes: tuple[str, ...]


def labeling_config(classes: Sequence[str], from_name: str = "label", to_name: str = "image") -> str:
    """A labeling config showing the image ``$image`` with one radio choice per class (XML-escaped).

    Raises:
        DataError: no classes, an empty or repeated class, or a tag name that is not a simple identifier.
    """
    classes = [str(name) for name in classes]
    if not classes:
        raise DataError("The dataset has no classes to label: set dataset.default_classes or the field's classes.")
    if any(not name.strip() for name in classes):
        raise DataError("A class name is empty: give every class a name before labeling in Label Studio.")
    repeated = sorted(name for name, count in Counter(classes).items() if count > 1)
    if repeated:
        raise DataError(f"Classes {repeated[:5]} appear more than once in the class list.")
    for tag_name in (from_name, to_name):
        if not _NAME.match(tag_name):
            raise DataError(f"Tag name {tag_name!r} must be a simple identifier such as 'label' or 'image'.")
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in classes)
    return (
        "<View>\n"
        f"  <Header value=\"${NOTE_KEY}\" size=\"6\"/>\n"
        f"  <Image name={quoteattr(to_name)} value=\"${IMAGE_KEY}\" maxWidth=\"480px\"/>\n"
        f"  <Choices name={quoteattr(from_name)} toName={quoteattr(to_name)} choice=\"single-radio\" "
        "showInLine=\"true\" required=\"true\">\n"
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def parse_labeling_config(config: str, from_name: str | None = None) -> ChoicesConfig:
    """The ``Choices`` tag of a labeling config (the one named ``from_name`` when given) and its class values.

    Raises:
        LabelStudioError: the config is not XML or has no such ``Choices`` tag.
    """
    try:
        root = ElementTree.fromstring(config or "")
    except ElementTree.ParseError as error:
        raise LabelStudioError(f"The project's labeling config is not valid XML ({error}).") from None
    for element in root.iter("Choices"):
        name = element.get("name")
        if from_name is not None and name != from_name:
            continue
        classes = tuple(choice.get("value", choice.text or "") for choice in element.iter("Choice"))
        return ChoicesConfig(from_name=name or "", to_name=element.get("toName", ""), classes=classes)
    wanted = f" named {from_name!r}" if from_name else ""
    raise LabelStudioError(
        f"The project's labeling config has no Choices tag{wanted}: it was not made by this library "
        "(labeling_config) or was edited; restore it or use a new project."
    )


def project_marker(dataset_name: str) -> str:
    """The line in a project's description that says which dataset it labels."""
    return f"{MARKER} dataset={json.dumps(dataset_name)}"


# ------------------------------------------------------------------------------------------ errors and calls


def _server_url(client: LabelStudio) -> str:
    """The address the client talks to, without a trailing slash."""
    return client._client_wrapper.get_base_url().rstrip("/")


def _api_error(client: LabelStudio, what: str, error: ApiError) -> LabelStudioError:
    url = _server_url(client)
    detail = server_detail(error.body, client_secrets(client))
    reason = f"HTTP {error.status_code}" + (f": {detail}" if detail else "")
    if error.status_code in (401, 403):
        return LabelStudioError(f"Label Studio at {url} refused the API key while {what} ({reason}); {TOKEN_HINT}.")
    return LabelStudioError(f"Label Studio at {url} failed while {what} ({reason}).")


def _transport_error(client: LabelStudio, what: str, error: Exception) -> LabelStudioError:
    url = _server_url(client)
    how = "did not answer in time" if isinstance(error, httpx.TimeoutException) else "could not be reached"
    return LabelStudioError(
        f"Label Studio at {url} {how} while {what} ({type(error).__name__}): is Label Studio running at {url}? "
        f"Start it with `scripts/labelstudio start`, or set {URL_VARIABLE} to its address."
    )


def _call(client: LabelStudio, what: str, function: Callable[[], _T]) -> _T:
    """Run one SDK call (or a pager's iteration), turning every known failure into ``LabelStudioError``."""
    try:
        return function()
    except ApiError as error:  # no chaining: tracebacks would carry the response's headers
        raise _api_error(client, what, error) from None
    except httpx.TransportError as error:
        raise _transport_error(client, what, error) from None
    except ValueError as error:  # HTML or other non-JSON where the API should be (json and pydantic errors)
        raise LabelStudioError(
            f"The server at {_server_url(client)} answered, but not like Label Studio's API, while {what} "
            f"({type(error).__name__}): check {URL_VARIABLE}."
        ) from None


def absolute_url(client: LabelStudio, url: str) -> str:
    """A task's image address (``/data/...``, relative to the server's origin) as a full URL."""
    if urlsplit(url).scheme:
        return url
    parts = urlsplit(_server_url(client))
    return f"{parts.scheme}://{parts.netloc}/{url.lstrip('/')}"


def _http(client: LabelStudio, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request the SDK has no call for, sent with the client's HTTP client and authentication headers.

    ``path`` is an API path below the server's address (``api/...``) or a full URL.
    """
    wrapper = client._client_wrapper
    url = path if urlsplit(path).scheme else f"{_server_url(client)}/{path.lstrip('/')}"

    def send() -> httpx.Response:
        headers = {"Authorization": wrapper.get_headers()["Authorization"]}  # may refresh a PAT's access token
        timeout = wrapper.get_timeout() or 60
        return wrapper.httpx_client.httpx_client.request(method, url, headers=headers, timeout=timeout, **kwargs)

    response = _call(client, what, send)
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise _api_error(client, what, ApiError(status_code=response.status_code, body=body))
    return response


class ProjectDeletedError(LabelStudioError):
    """The project the loop stored no longer exists in Label Studio (someone deleted it)."""

    def __init__(self, project_id: int, dataset_name: str | None = None) -> None:
        dataset = f" for dataset {dataset_name!r}" if dataset_name else ""
        super().__init__(
            f"Label Studio project {project_id}{dataset} was deleted in Label Studio. The labels already ingested "
            "are kept in the dataset; to go on in a fresh project, rerun with --new-project (new_project=True in "
            "ensure_project), then push the samples again."
        )
        self.project_id = project_id


def _get_project(client: LabelStudio, project_id: int, dataset_name: str | None = None) -> Any:
    """The project ``project_id``.

    Raises:
        ProjectDeletedError: the server answers 404 for it.
        LabelStudioError: any other failure.
    """

    def get() -> Any:
        try:
            return client.projects.get(id=project_id)
        except ApiError as error:
            if error.status_code == 404:
                raise ProjectDeletedError(project_id, dataset_name) from None
            raise

    return _call(client, f"reading project {project_id}", get)


# ------------------------------------------------------------------------------------------ projects


def _class_difference(project_classes: Iterable[str], classes: Iterable[str]) -> str:
    project_set, wanted = set(project_classes), set(classes)
    parts = []
    if wanted - project_set:
        parts.append(f"missing there: {sorted(wanted - project_set)[:10]}")
    if project_set - wanted:
        parts.append(f"not in the dataset: {sorted(project_set - wanted)[:10]}")
    return "; ".join(parts)


def _check_project(project: Any, classes: Sequence[str], dataset_name: str, from_name: str) -> None:
    """Raise unless ``project`` was made for ``dataset_name`` and offers exactly ``classes``."""
    if project_marker(dataset_name) not in (project.description or ""):
        raise LabelStudioError(
            f"Label Studio project {project.id} ({project.title!r}) was not made for dataset {dataset_name!r} "
            "(its description lacks the marker line): pass the right project id, or another title."
        )
    config = parse_labeling_config(project.label_config or "", from_name)
    if set(config.classes) != set(classes):
        raise LabelStudioError(
            f"Label Studio project {project.id} ({project.title!r}) labels other classes than dataset "
            f"{dataset_name!r} ({_class_difference(config.classes, classes)}). Edit its labeling interface to "
            f"the dataset's classes (labeling_config gives the XML), or use a new project title."
        )


def _add_note(client: LabelStudio, project: Any, from_name: str, to_name: str) -> None:
    """Give a project made before task notes existed the note line above the image (same classes, same order)."""
    config = project.label_config or ""
    if f"${NOTE_KEY}" in config:
        return
    classes = parse_labeling_config(config, from_name).classes
    _call(client, f"adding the task note to the labeling config of project {project.id}",
          lambda: client.projects.update(id=project.id, label_config=labeling_config(classes, from_name, to_name)))


def ensure_project(
    client: LabelStudio,
    title: str,
    classes: Sequence[str],
    dataset_name: str,
    *,
    project_id: int | None = None,
    new_project: bool = False,
    from_name: str = "label",
    to_name: str = "image",
) -> int:
    """The id of the project that labels ``dataset_name``: the stored one, the one found by title, or a new one.

    Args:
        client: a connected client (:func:`active_learning.label_studio.connect`).
        title: the project's stable title (3-50 characters), e.g. ``"curation: mnist"``.
        classes: the dataset's class list; the project's choices must be the same set.
        dataset_name: written into the description as a marker, and checked on reuse.
        project_id: the id the loop stored before, if any; it must still exist unless ``new_project``.
        new_project: when the stored project was deleted, create a fresh one instead of raising.
        from_name: the name of the Choices tag.
        to_name: the name of the Image tag.

    Raises:
        ProjectDeletedError: the stored project was deleted and ``new_project`` is False.
        LabelStudioError: a project with this title is not ours or labels other classes, several projects
            match, or the server fails.
        DataError: the title or the classes cannot be used.
    """
    title = (title or "").strip()
    if not TITLE_LENGTH[0] <= len(title) <= TITLE_LENGTH[1]:
        raise DataError(f"A Label Studio project title must have {TITLE_LENGTH[0]}-{TITLE_LENGTH[1]} characters, "
                        f"not {len(title)}: {title!r}.")
    config = labeling_config(classes, from_name, to_name)
    if project_id is not None:
        try:
            project = _get_project(client, project_id, dataset_name)
        except ProjectDeletedError:
            if not new_project:
                raise
            logger.warning("Label Studio project %s was deleted; creating a new one", project_id)
        else:
            _check_project(project, classes, dataset_name, from_name)
            _add_note(client, project, from_name, to_name)
            return int(project.id)
    marker = project_marker(dataset_name)
    listed = _call(client, f"looking for project {title!r}", lambda: list(client.projects.list(title=title)))
    same_title = [p for p in listed if (p.title or "").strip() == title]
    ours = [p for p in same_title if marker in (p.description or "")]
    if len(ours) > 1:
        raise LabelStudioError(
            f"Label Studio has {len(ours)} projects titled {title!r} for dataset {dataset_name!r} "
            f"(ids {sorted(p.id for p in ours)}): delete the extra ones or pass the project id to use."
        )
    if ours:
        project = _get_project(client, ours[0].id, dataset_name)  # the list omits the labeling config
        _check_project(project, classes, dataset_name, from_name)
        _add_note(client, project, from_name, to_name)
        return int(project.id)
    if same_title:
        raise LabelStudioError(
            f"Label Studio already has a project titled {title!r} (id {same_title[0].id}) that was not made for "
            f"dataset {dataset_name!r}: choose another title."
        )
    description = f"Labels for the FiftyOne dataset {dataset_name!r}, managed by fiftyone-curation.\n{marker}"
    created = _call(
        client, f"creating project {title!r}",
        lambda: client.projects.create(title=title, description=description, label_config=config),
    )
    logger.info("Created Label Studio project %s (%r) for dataset %r", created.id, title, dataset_name)
    return int(created.id)


# ------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class TaskSpec:
    """One sample to label: its id, image file, round, and the model's prediction shown as pre-annotation."""

    sample_id: str
    filepath: str
    round_index: int
    predicted_label: str | None = None
    score: float | None = None
    model_version: str | None = None
    note: str = ""


def task_specs(
    view, round_index: int, prediction_field: str | None = "model_prediction", model_version: str | None = None
) -> list[TaskSpec]:
    """The samples of a FiftyOne view as tasks, with the label and confidence of ``prediction_field`` if present."""
    ids, paths = view.values(["id", "filepath"])
    labels: list[Any] = [None] * len(ids)
    scores: list[Any] = [None] * len(ids)
    if prediction_field and prediction_field in view.get_field_schema():
        labels, scores = view.values([f"{prediction_field}.label", f"{prediction_field}.confidence"])
    return [
        TaskSpec(sample_id=i, filepath=p, round_index=round_index, predicted_label=label,
                 score=None if score is None else float(score), model_version=model_version if label else None)
        for i, p, label, score in zip(ids, paths, labels, scores)
    ]


def _choice_result(label: str, config: ChoicesConfig) -> list[dict[str, Any]]:
    return [{"from_name": config.from_name, "to_name": config.to_name, "type": "choices",
             "value": {"choices": [label]}}]


def task_payload(spec: TaskSpec, image_url: str, config: ChoicesConfig) -> dict[str, Any]:
    """The import payload of one task: data (image, sample id, round, file name) and the prediction, if any."""
    payload: dict[str, Any] = {
        "data": {
            IMAGE_KEY: image_url,
            SAMPLE_ID_KEY: spec.sample_id,
            ROUND_KEY: int(spec.round_index),
            FILENAME_KEY: os.path.basename(spec.filepath),
            NOTE_KEY: spec.note,
        }
    }
    if spec.predicted_label is not None:
        prediction: dict[str, Any] = {
            "model_version": spec.model_version or "unknown",
            "result": _choice_result(spec.predicted_label, config),
        }
        if spec.score is not None:
            prediction["score"] = float(spec.score)
        payload["predictions"] = [prediction]
    return payload


def existing_tasks(client: LabelStudio, project_id: int) -> dict[tuple[str, int | None], int]:
    """(sample id, round) -> task id of the project's tasks that carry a sample id (the oldest task wins).

    A sample has at most one task per round; a later round may push it again (a skipped task returned to the pool,
    a labeled sample queued for review).
    """
    tasks = _call(
        client, f"listing the tasks of project {project_id}",
        lambda: list(client.tasks.list(project=project_id, include="id,data", page_size=TASK_PAGE_SIZE)),
    )
    found: dict[tuple[str, int | None], int] = {}
    for task in sorted(tasks, key=lambda t: t.id):
        data = task.data or {}
        sample_id, round_index = data.get(SAMPLE_ID_KEY), data.get(ROUND_KEY)
        if sample_id is not None:
            key = (str(sample_id), None if round_index is None else int(round_index))
            found.setdefault(key, int(task.id))
    return found


def project_url(client: LabelStudio, project_id: int) -> str:
    """The address of the project's task list in the browser."""
    return f"{_server_url(client)}/projects/{int(project_id)}/data"


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def resolve_media(client: LabelStudio, media: str) -> str:
    """``"local-files"`` or ``"upload"``: ``auto`` means local files for a server on this machine."""
    if media not in MEDIA_MODES:
        raise DataError(f"media must be one of {MEDIA_MODES}, not {media!r}.")
    if media != "auto":
        return media
    return "local-files" if _is_loopback(_server_url(client)) else "upload"


def _url_prefix(client: LabelStudio) -> str:
    """The path under which Label Studio runs (behind a reverse proxy), or ``""``."""
    return urlsplit(_server_url(client)).path.rstrip("/")


def local_files_url(filepath: str, document_root: str, prefix: str = "") -> str:
    """The ``/data/local-files/?d=...`` address of ``filepath`` for a server with this document root.

    Raises:
        DataError: the file is not below the document root.
    """
    path, root = os.path.abspath(filepath), os.path.abspath(document_root)
    if os.path.commonpath([path, root]) != root or path == root:
        raise DataError(
            f"{path} is not below Label Studio's local-files document root {root} ({LOCAL_FILES_ROOT_VARIABLE}): "
            f"{SERVING_HINT}; {UPLOAD_HINT}."
        )
    return f"{prefix}/data/local-files/?d={quote(os.path.relpath(path, root))}"


def _ensure_local_storage(client: LabelStudio, project_id: int, folder: str) -> None:
    """A local-files import storage of the project on ``folder`` or a folder above it: what lets LS serve files."""
    storages = _call(
        client, f"listing the local storages of project {project_id}",
        lambda: list(client.import_storage.local.list(project=project_id)),
    )
    for storage in storages:
        root = os.path.normpath(storage.path or "")
        if root and (folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)):
            return
    _call(
        client, f"creating a local-files storage on {folder} for project {project_id}",
        lambda: client.import_storage.local.create(
            project=project_id, path=folder, title=STORAGE_TITLE, use_blob_urls=True, regex_filter=NEVER_MATCHES,
            description="Serves the images of fiftyone-curation tasks; never sync it (its filter matches no file).",
        ),
    )


class LocalFilesNotServedError(LabelStudioError):
    """Label Studio does not serve this machine's image files (local-files serving off, or another root)."""


def _check_served(client: LabelStudio, url: str, filepath: str) -> None:
    """Fetch one served image, so broken image links fail the push before any task exists."""
    try:
        response = _http(client, f"checking that it serves {filepath}", "GET", absolute_url(client, url))
    except LabelStudioError as error:
        raise LocalFilesNotServedError(
            f"Label Studio at {_server_url(client)} does not serve the images from this machine's files: "
            f"{SERVING_HINT}; {UPLOAD_HINT}. The server said: {error}"
        ) from None
    response.close()


def _local_files_urls(
    client: LabelStudio, project_id: int, specs: Sequence[TaskSpec], document_root: str | None
) -> list[str]:
    root = document_root or os.environ.get(LOCAL_FILES_ROOT_VARIABLE) or os.sep
    prefix = _url_prefix(client)
    urls = [local_files_url(spec.filepath, root, prefix) for spec in specs]
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(spec.filepath)) for spec in specs])
    if os.path.abspath(folder) == os.path.abspath(root):
        raise DataError(
            f"The images' common folder {folder} is Label Studio's local-files document root itself, which Label "
            f"Studio refuses to serve: set {LOCAL_FILES_ROOT_VARIABLE} one folder higher (for the server and "
            f"here); {UPLOAD_HINT}."
        )
    _ensure_local_storage(client, project_id, folder)
    _check_served(client, urls[0], specs[0].filepath)
    return urls


def _upload_batches(specs: Sequence[TaskSpec]) -> Iterable[list[TaskSpec]]:
    batch: list[TaskSpec] = []
    size = 0
    for spec in specs:
        file_size = os.path.getsize(spec.filepath)
        if batch and (len(batch) >= UPLOAD_BATCH_FILES or size + file_size > UPLOAD_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(spec)
        size += file_size
    if batch:
        yield batch


def _uploaded_urls(client: LabelStudio, project_id: int, specs: Sequence[TaskSpec]) -> list[str]:
    """Upload the images (no tasks are made) and return their URLs on the server, in the order of ``specs``.

    Each file is uploaded under the name ``<sample id><extension>``; the server prefixes a random 8-character
    stem and a dash, which is how the copies are matched back to samples.
    """
    missing = [spec.filepath for spec in specs if not os.path.isfile(spec.filepath)]
    if missing:
        raise DataError(f"{len(missing)} image files do not exist, e.g. {missing[0]}; nothing was pushed.")
    by_name: dict[str, str] = {}
    prefix = _url_prefix(client)
    for batch in _upload_batches(specs):
        handles = [open(spec.filepath, "rb") for spec in batch]
        try:
            files = [
                (f"file{i}", (f"{spec.sample_id}{Path(spec.filepath).suffix.lower()}", handle))
                for i, (spec, handle) in enumerate(zip(batch, handles))
            ]
            response = _http(
                client, f"uploading {len(batch)} images to project {project_id}", "POST",
                f"api/projects/{project_id}/import", params={"commit_to_project": "false"}, files=files,
            )
        finally:
            for handle in handles:
                handle.close()
        ids = response.json().get("file_upload_ids") or []
        listed = _http(
            client, f"listing the uploaded images of project {project_id}", "GET",
            f"api/projects/{project_id}/file-uploads", params={"ids": json.dumps(ids)},
        ).json()
        for upload in listed:
            stem = Path(str(upload["file"])).stem
            by_name[stem.split("-", 1)[1] if "-" in stem else stem] = f"{prefix}/data/{upload['file']}"
    lost = [spec.sample_id for spec in specs if spec.sample_id not in by_name]
    if lost:
        raise LabelStudioError(
            f"Label Studio at {_server_url(client)} did not keep {len(lost)} uploaded images (e.g. of sample "
            f"{lost[0]}); nothing was pushed. Look at the server's log."
        )
    return [by_name[spec.sample_id] for spec in specs]


def _set_model_version(client: LabelStudio, project: Any, specs: Sequence[TaskSpec]) -> None:
    """Make the newest model version the project's, so the labeling view shows its predictions.

    Label Studio shows only the predictions of the project's model version; the first import sets it, a later
    round's version must be set (after its predictions exist: the server refuses unknown versions).
    """
    versions = [spec.model_version or "unknown" for spec in specs if spec.predicted_label is not None]
    if not versions or not project.model_version or project.model_version == versions[-1]:
        return
    _call(
        client, f"setting the model version of project {project.id}",
        lambda: client.projects.update(id=project.id, model_version=versions[-1]),
    )


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_round_tasks` did.

    Attributes:
        task_ids: sample id -> task id, for every sample given.
        pushed: tasks created now (the others were already in the project).
        with_prediction: of the samples given, those whose task carries a pre-annotation.
        media: how the new tasks' images reach Label Studio (``local-files`` or ``upload``).
        note: why the media differs from the one asked for, or ``""``.
    """

    task_ids: dict[str, int]
    pushed: int = 0
    with_prediction: int = 0
    media: str = ""
    note: str = ""


def push_tasks(
    client: LabelStudio,
    project_id: int,
    samples: Sequence[TaskSpec],
    *,
    media: str = "auto",
    document_root: str | None = None,
) -> dict[str, int]:
    """:func:`push_round_tasks`, returning only sample id -> task id."""
    return push_round_tasks(client, project_id, samples, media=media, document_root=document_root).task_ids


def push_round_tasks(
    client: LabelStudio,
    project_id: int,
    samples: Sequence[TaskSpec],
    *,
    media: str = "auto",
    document_root: str | None = None,
) -> PushResult:
    """Create a task for every sample not yet in the project for its round, in ONE bulk import, with its prediction.

    Idempotent: a sample that already has a task of the same round keeps it and is not pushed again.

    Args:
        client: a connected client.
        project_id: from :func:`ensure_project`.
        samples: the samples to label; the prediction (label, score, model version) becomes the pre-annotation and
            the note is shown above the image.
        media: ``"local-files"``, ``"upload"`` or ``"auto"`` (see the module's docstring). With ``auto``, a local
            server that does not serve local files gets the images uploaded instead, and the result says so.
        document_root: Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT`` for local files; defaults to the
            ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` variable here, else ``/`` (the server's default).

    Raises:
        DataError: a predicted class that the project does not offer, a missing image, an image outside the
            local-files document root.
        LabelStudioError: the project was deleted, the images cannot be served, or the server fails.
    """
    resolved = resolve_media(client, media)
    project = _get_project(client, project_id)
    config = parse_labeling_config(project.label_config or "")
    unique: dict[tuple[str, int], TaskSpec] = {}
    for spec in samples:
        unique.setdefault((spec.sample_id, int(spec.round_index)), spec)
    specs = list(unique.values())
    offered = set(config.classes)
    unknown = sorted({s.predicted_label for s in specs if s.predicted_label is not None} - offered)
    if unknown:
        raise DataError(
            f"Predicted classes {unknown[:5]} are not choices of Label Studio project {project_id}; nothing was "
            "pushed. The model and the project must use the dataset's class list."
        )
    task_ids = existing_tasks(client, project_id)
    new = [spec for spec in specs if (spec.sample_id, int(spec.round_index)) not in task_ids]
    note = ""
    if new:
        urls: list[str] = []
        if resolved == "local-files":
            try:
                urls = _local_files_urls(client, project_id, new, document_root)
            except (LocalFilesNotServedError, DataError) as error:  # not served, or not below its root
                if media != "auto":
                    raise
                resolved = "upload"
                note = f"the images were uploaded: {error}"
                logger.warning("Label Studio does not serve local files; uploading the images instead")
        if resolved == "upload":
            urls = _uploaded_urls(client, project_id, new)
        payload = [task_payload(spec, url, config) for spec, url in zip(new, urls)]
        response = _call(
            client, f"importing {len(new)} tasks into project {project_id}",
            lambda: client.projects.import_tasks(id=project_id, request=payload, return_task_ids=True),
        )
        created = list(getattr(response, "task_ids", None) or [])
        if len(created) != len(new):
            raise LabelStudioError(
                f"Label Studio imported {len(created)} of {len(new)} tasks into project {project_id}: push again "
                "(samples already there are skipped) and look at the server's log."
            )
        task_ids.update({(spec.sample_id, int(spec.round_index)): int(task_id)
                         for spec, task_id in zip(new, created)})
        _set_model_version(client, project, new)
        logger.info("Pushed %d tasks to Label Studio project %s (%d already there)", len(new), project_id,
                    len(specs) - len(new))
    return PushResult(
        task_ids={spec.sample_id: task_ids[(spec.sample_id, int(spec.round_index))] for spec in specs},
        pushed=len(new), with_prediction=sum(spec.predicted_label is not None for spec in specs), media=resolved,
        note=note,
    )


# ------------------------------------------------------------------------------------------ annotations


def validate_annotation(
    result: Any, config_classes: Sequence[str], from_name: str = "label", to_name: str = "image"
) -> str:
    """The one class an annotation's ``result`` chooses, checked against the labeling config.

    Raises:
        DataError: an empty result, a region of another tag, a wrong target, not exactly one choice, or a class
            outside the config. The message is the reason, short enough to count.
    """
    if not isinstance(result, list) or not result:
        raise DataError("empty result")
    regions = [region for region in result if isinstance(region, dict)]
    if len(regions) != len(result):
        raise DataError("malformed result")
    others = sorted({str(region.get("from_name")) for region in regions if region.get("from_name") != from_name})
    if others:
        raise DataError(f"unexpected from_name {others[0]!r}")
    if len(regions) != 1:
        raise DataError(f"{len(regions)} results for {from_name!r}, expected 1")
    region = regions[0]
    if region.get("to_name") != to_name:
        raise DataError(f"to_name {region.get('to_name')!r}, expected {to_name!r}")
    if region.get("type", "choices") != "choices":
        raise DataError(f"type {region.get('type')!r}, expected 'choices'")
    choices = (region.get("value") or {}).get("choices") if isinstance(region.get("value"), dict) else None
    if not isinstance(choices, list) or len(choices) != 1:
        count = len(choices) if isinstance(choices, list) else 0
        raise DataError(f"{count} choices, expected 1")
    label = choices[0]
    if not isinstance(label, str) or label not in set(config_classes):
        raise DataError(f"class {label!r} is not in the labeling config")
    return label


@dataclass(frozen=True)
class Vote:
    """One valid, submitted annotation of a task."""

    annotation_id: int
    label: str
    annotator_id: int | None
    annotator_email: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class InvalidAnnotation:
    """An annotation that does not fit the labeling config: reported, never ingested."""

    task_id: int
    annotation_id: int
    sample_id: str | None
    reason: str


@dataclass(frozen=True)
class CompletedTask:
    """A task with at least one valid submitted annotation, resolved to one label.

    Attributes:
        label: the majority label; a tie goes to the tied label whose first vote is the earliest.
        agreement: the share of the valid votes that chose ``label`` (1.0 for a single annotation).
        votes: the valid submitted annotations, oldest first.
        cancelled: how many annotations of the task were skipped (cancelled).
        invalid: the task's annotations that do not fit the config.
    """

    task_id: int
    sample_id: str
    round_index: int | None
    label: str
    agreement: float
    votes: tuple[Vote, ...]
    cancelled: int = 0
    invalid: tuple[InvalidAnnotation, ...] = ()

    @property
    def annotation_ids(self) -> list[int]:
        return [vote.annotation_id for vote in self.votes]

    @property
    def completed_at(self) -> str:
        """When the last vote was submitted or updated (ISO 8601)."""
        return max(vote.updated_at or vote.created_at for vote in self.votes)

    @property
    def fingerprint(self) -> str:
        """Which annotations, in which version, made this label: equal fingerprints mean nothing new to ingest."""
        return ",".join(f"{vote.annotation_id}@{vote.updated_at}" for vote in self.votes)


@dataclass(frozen=True)
class CompletedTasks(Sequence[CompletedTask]):
    """The completed tasks of a project (a sequence of them) and what was left out, counted.

    Attributes:
        tasks: the tasks resolved to a label.
        invalid: every annotation that does not fit the config, from all tasks.
        cancelled_annotations: skipped (cancelled) annotations, from all tasks.
        skipped_tasks: tasks whose annotations are all cancelled.
        unresolved_tasks: tasks with submitted annotations, none of them valid.
        foreign_tasks: annotated tasks without a sample id (not made by ``push_tasks``).
        skipped_task_ids: the ids of the skipped tasks.
    """

    tasks: tuple[CompletedTask, ...] = ()
    invalid: tuple[InvalidAnnotation, ...] = ()
    cancelled_annotations: int = 0
    skipped_tasks: int = 0
    unresolved_tasks: int = 0
    foreign_tasks: int = 0
    skipped_task_ids: tuple[int, ...] = ()

    def __getitem__(self, index):  # type: ignore[override]
        return self.tasks[index]

    def __len__(self) -> int:
        return len(self.tasks)


def _iso(value: Any) -> str:
    """A server timestamp (datetime or ISO string) as ISO 8601 in UTC, the same whichever way it was read."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.isoformat()
    return str(value or "")


def majority(votes: Sequence[Vote]) -> tuple[str, float]:
    """The majority label of ``votes`` and its share; ties go to the tied label voted first (earliest vote)."""
    if not votes:
        raise DataError("no votes to resolve")
    ordered = sorted(votes, key=lambda vote: (vote.created_at, vote.annotation_id))
    counts = Counter(vote.label for vote in ordered)
    best = max(counts.values())
    label = next(vote.label for vote in ordered if counts[vote.label] == best)
    return label, best / len(ordered)


def resolve_task(
    task: Mapping[str, Any], config: ChoicesConfig, emails: Mapping[int, str] | None = None
) -> tuple[CompletedTask | None, list[InvalidAnnotation], int]:
    """One task's annotations -> (the completed task or None, its invalid annotations, its cancelled count)."""
    emails = emails or {}
    task_id = int(task["id"])
    data = task.get("data") or {}
    sample_id = data.get(SAMPLE_ID_KEY)
    sample_id = None if sample_id is None else str(sample_id)
    votes: list[Vote] = []
    invalid: list[InvalidAnnotation] = []
    cancelled = 0
    for annotation in task.get("annotations") or []:
        if annotation.get("was_cancelled"):
            cancelled += 1
            continue
        annotation_id = int(annotation["id"])
        try:
            label = validate_annotation(annotation.get("result"), config.classes, config.from_name, config.to_name)
        except DataError as error:
            invalid.append(InvalidAnnotation(task_id, annotation_id, sample_id, str(error)))
            continue
        annotator = annotation.get("completed_by")
        if isinstance(annotator, dict):  # some serializers expand the user
            annotator_id, email = annotator.get("id"), annotator.get("email")
        else:
            annotator_id, email = annotator, None
        if email is None and annotator_id is not None:
            email = emails.get(int(annotator_id)) or _email_from_username(annotation.get("created_username"))
        votes.append(Vote(annotation_id, label, None if annotator_id is None else int(annotator_id), email,
                          _iso(annotation.get("created_at")), _iso(annotation.get("updated_at"))))
    if not votes or sample_id is None:
        return None, invalid, cancelled
    votes.sort(key=lambda vote: (vote.created_at, vote.annotation_id))
    label, agreement = majority(votes)
    round_index = data.get(ROUND_KEY)
    completed = CompletedTask(
        task_id=task_id, sample_id=sample_id, round_index=None if round_index is None else int(round_index),
        label=label, agreement=agreement, votes=tuple(votes), cancelled=cancelled, invalid=tuple(invalid),
    )
    return completed, invalid, cancelled


def _email_from_username(created_username: Any) -> str | None:
    """Label Studio's ``created_username`` is ``" <email>, <id>"``; the email part, if it looks like one."""
    text = str(created_username or "").strip()
    email = text.rsplit(",", 1)[0].strip() if "," in text else text
    return email if "@" in email else None


def _annotator_emails(client: LabelStudio) -> dict[int, str]:
    """User id -> email for the organization, or nothing when this key may not list users."""
    try:
        users = _call(client, "listing users", lambda: list(client.users.list()))
    except LabelStudioError as error:
        logger.debug("Cannot list Label Studio users: %s", error)
        return {}
    return {int(user.id): user.email for user in users if user.id is not None and user.email}


_ANNOTATED_QUERY = json.dumps({"filters": {"conjunction": "or", "items": [
    {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0},
    {"filter": "filter:tasks:cancelled_annotations", "operator": "greater", "type": "Number", "value": 0},
]}})


def annotated_tasks(client: LabelStudio, project_id: int) -> list[dict[str, Any]]:
    """The project's tasks with at least one annotation (submitted or cancelled), as plain dicts.

    Uses the synchronous JSON export (one request; 3x faster than the task list for 1,000 tasks). Label Studio
    Enterprise answers it with 404: then the Data Manager's task list, filtered to annotated tasks, is read.
    """

    def export() -> list[dict[str, Any]] | None:
        try:
            chunks = client.projects.exports.download_sync(id=project_id, export_type="JSON")
            return json.loads(b"".join(chunks))
        except ApiError as error:
            if error.status_code == 404:
                return None
            raise

    tasks = _call(client, f"exporting the annotations of project {project_id}", export)
    if tasks is not None:
        return [task for task in tasks if task.get("annotations")]
    logger.debug("No synchronous export in this Label Studio: reading the task list of project %s", project_id)
    listed = _call(
        client, f"reading the annotated tasks of project {project_id}",
        # no ``include``: with it the server lists annotations as bare ids
        lambda: list(client.tasks.list(project=project_id, fields="all", query=_ANNOTATED_QUERY,
                                       page_size=TASK_PAGE_SIZE)),
    )
    return [task.model_dump(mode="python") for task in listed]


def fetch_completed(client: LabelStudio, project_id: int) -> CompletedTasks:
    """The project's tasks that have annotations, validated and resolved by majority vote.

    Only annotated or skipped tasks are read (:func:`annotated_tasks`; a half-annotated project is normal).
    Submitted annotations are validated against the project's labeling config; invalid ones are listed with their
    reason, cancelled ones counted. A task with several valid annotations gets the majority label, ties going to
    the tied label voted first, and the agreement (share of votes for it).

    Returns:
        A sequence of :class:`CompletedTask` that also carries the invalid annotations and the counts of
        cancelled annotations, skipped, unresolved and foreign tasks (:class:`CompletedTasks`).

    Raises:
        LabelStudioError: the project was deleted or the server fails.
    """
    project = _get_project(client, project_id)
    config = parse_labeling_config(project.label_config or "")
    tasks = annotated_tasks(client, project_id)
    emails = _annotator_emails(client) if tasks else {}
    completed: list[CompletedTask] = []
    invalid: list[InvalidAnnotation] = []
    cancelled_total = unresolved = foreign = 0
    skipped: list[int] = []
    for raw in sorted(tasks, key=lambda t: int(t["id"])):
        resolved, task_invalid, cancelled = resolve_task(raw, config, emails)
        invalid.extend(task_invalid)
        cancelled_total += cancelled
        if resolved is not None:
            completed.append(resolved)
        elif (raw.get("data") or {}).get(SAMPLE_ID_KEY) is None and len(raw.get("annotations") or []) > cancelled:
            foreign += 1
        elif task_invalid:
            unresolved += 1
        elif cancelled:
            skipped.append(int(raw["id"]))
    return CompletedTasks(tuple(completed), tuple(invalid), cancelled_total, len(skipped), unresolved, foreign,
                          tuple(skipped))


# ------------------------------------------------------------------------------------------ ingestion


@dataclass(frozen=True)
class IngestReport:
    """What ``ingest`` did.

    Attributes:
        new: samples whose Label Studio annotations were ingested now (provenance written).
        changed: of those, samples whose label changed (the old label is in ``label_history``).
        confirmed: of those, samples whose label already was the annotated one.
        unchanged: samples already ingested from the same annotations: left alone.
        invalid: annotations that do not fit the labeling config or the dataset's classes: not ingested.
        invalid_reasons: reason -> count.
        invalid_annotations: each invalid annotation with its task, sample and reason.
        cancelled: skipped (cancelled) annotations.
        skipped_tasks: tasks with only cancelled annotations.
        missing_samples: completed tasks whose sample is not in the dataset.
        marked_done: review-queue samples set to ``done``.
    """

    new: int = 0
    changed: int = 0
    confirmed: int = 0
    unchanged: int = 0
    invalid: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    invalid_annotations: tuple[InvalidAnnotation, ...] = ()
    cancelled: int = 0
    skipped_tasks: int = 0
    missing_samples: int = 0
    marked_done: int = 0


def provenance(task: CompletedTask, project_id: int, round_index: int, previous_label: str | None) -> dict:
    """The ``ls_provenance`` value for a sample labeled by ``task``."""
    return {
        "project_id": int(project_id),
        "task_id": task.task_id,
        "round": int(round_index),
        "pushed_round": task.round_index,
        "label": task.label,
        "previous_label": previous_label,
        "agreement": float(task.agreement),
        "num_votes": len(task.votes),
        "annotation_ids": task.annotation_ids,
        "annotator_ids": [vote.annotator_id for vote in task.votes],
        "annotator_emails": [vote.annotator_email for vote in task.votes],
        "votes": [vote.label for vote in task.votes],
        "completed_at": task.completed_at,
        "cancelled": task.cancelled,
        "invalid": len(task.invalid),
        "fingerprint": task.fingerprint,
        "ingested_at": now_utc(),
    }


def _already_ingested(current: Any, task: CompletedTask, project_id: int) -> bool:
    return (
        isinstance(current, dict)
        and current.get("project_id") == int(project_id)
        and current.get("task_id") == task.task_id
        and current.get("fingerprint") == task.fingerprint
    )


def _who(task: CompletedTask) -> str:
    names = [vote.annotator_email or f"user {vote.annotator_id}" for vote in task.votes]
    return ", ".join(dict.fromkeys(names)) or "label-studio"


def ingest(
    dataset,
    completed: Sequence[CompletedTask],
    label_field: str,
    round_index: int,
    project_id: int,
) -> IngestReport:
    """Write the annotated labels into ``label_field``, keeping the old ones, with provenance per sample.

    Every change keeps the old label in ``label_history`` (``source="label_studio"``, ``who`` the annotators; one
    ``change`` id for the whole ingest). ``ls_provenance`` records the project, task, annotation ids, annotators,
    completion time, agreement, previous label and round. A sample already ingested from the same annotations
    (same task, same annotation ids and versions) is left alone, so a second ingest changes nothing, and neither
    does it undo a later manual edit. Ingested samples in the review queue become ``done``. Each sample's label,
    history entry, provenance and review status are one document update, and all of them one bulk write: after
    a crash (kill -9 included) every sample is ingested whole or not at all, and the rerun ingests the rest once.

    Args:
        dataset: the FiftyOne dataset.
        completed: from :func:`fetch_completed` (its counts of invalid and cancelled annotations are reported).
        label_field: the Classification field to write.
        round_index: the active-learning round doing the ingest.
        project_id: the Label Studio project the tasks come from.

    Raises:
        DataError: ``label_field`` is not a Classification field of the dataset.
    """
    check_label_field(dataset, label_field)
    invalid = list(getattr(completed, "invalid", None) or [a for task in completed for a in task.invalid])
    reasons = Counter(annotation.reason for annotation in invalid)
    cancelled = getattr(completed, "cancelled_annotations", None)
    if cancelled is None:
        cancelled = sum(task.cancelled for task in completed)
    by_sample: dict[str, CompletedTask] = {}
    for task in sorted(completed, key=lambda t: t.task_id, reverse=True):
        by_sample.setdefault(task.sample_id, task)  # a sample pushed again (review, skip): its newest task counts
    schema = dataset.get_field_schema()
    ids = [sample_id for sample_id in by_sample if ObjectId.is_valid(sample_id)]
    view = dataset.select(ids)
    columns = ["id", f"{label_field}.label"] + [name for name in (PROVENANCE_FIELD, REVIEW_STATUS_FIELD)
                                                 if name in schema]
    values = dict(zip(columns, view.values(columns))) if ids else {name: [] for name in columns}
    present = values["id"]
    current_label = dict(zip(present, values[f"{label_field}.label"]))
    current_provenance = dict(zip(present, values.get(PROVENANCE_FIELD, [None] * len(present))))
    status = dict(zip(present, values.get(REVIEW_STATUS_FIELD, [None] * len(present))))
    known_classes = set(get_classes(dataset, label_field))

    unchanged = 0
    todo: list[CompletedTask] = []
    for sample_id in present:
        task = by_sample[sample_id]
        if _already_ingested(current_provenance[sample_id], task, project_id):
            unchanged += 1
        elif known_classes and task.label not in known_classes:
            reason = f"class {task.label!r} is not in the class list of {label_field!r}"
            reasons[reason] += len(task.votes)
            invalid.extend(InvalidAnnotation(task.task_id, vote.annotation_id, sample_id, reason)
                           for vote in task.votes)
        else:
            todo.append(task)

    # One document update per sample (label, history entry, provenance, review status), all in one bulk write: a
    # crash leaves each sample fully ingested or untouched, and a rerun skips the ingested ones by fingerprint.
    check_classes(dataset, label_field, {task.label for task in todo if task.label != current_label[task.sample_id]})
    change, when = new_change_id(), now_utc()
    why = f"Label Studio project {project_id}, round {round_index}"
    updates = []
    for task in todo:
        old = current_label[task.sample_id]
        fields: dict[str, Any] = {PROVENANCE_FIELD: provenance(task, project_id, round_index, old)}
        if status.get(task.sample_id) in ("queued", "pushed"):
            fields[REVIEW_STATUS_FIELD] = "done"
        entry = None if old == task.label else history_entry(label_field, old, task.label, _who(task), when, why,
                                                              "label_studio", change)
        updates.append(SampleUpdate(task.sample_id, expected_label=old, new_label=task.label if entry else None,
                                    history_entry=entry, fields=fields))
    applied = write_sample_updates(dataset, label_field, updates)
    if applied < len(updates):  # labels changed by another writer meanwhile: those samples wait for the next ingest
        written = dict(zip(*dataset.select([u.sample_id for u in updates]).values(["id", PROVENANCE_FIELD])))
        updates = [u for u in updates if _already_ingested(written.get(u.sample_id), by_sample[u.sample_id],
                                                           project_id)]
        logger.warning("%d samples changed while being ingested; the next ingest takes them.", len(todo) - applied)
    changed = sum(1 for update in updates if update.new_label is not None)
    done = [update.sample_id for update in updates if REVIEW_STATUS_FIELD in update.fields]
    report = IngestReport(
        new=len(updates), changed=changed, confirmed=len(updates) - changed, unchanged=unchanged,
        invalid=len(invalid), invalid_reasons=dict(reasons), invalid_annotations=tuple(invalid),
        cancelled=int(cancelled),
        skipped_tasks=int(getattr(completed, "skipped_tasks", 0)), missing_samples=len(by_sample) - len(present),
        marked_done=len(done),
    )
    logger.info("Ingested Label Studio project %s into %s.%s: %s", project_id, dataset.name, label_field, report)
    return report

