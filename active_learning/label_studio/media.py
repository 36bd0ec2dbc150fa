"""How a task's image reaches Label Studio: served from this machine's files, or uploaded (``media``).

- ``"local-files"``: the server reads the files from this machine's disk. It must run with
  ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to a folder
  above the images; tasks point at ``/data/local-files/?d=<path relative to the root>``, and a local-files import
  storage on the images' common folder grants access (it is never synced: its filter matches no file).
- ``"upload"``: the files are uploaded to the server (for a server on another machine); tasks point at the copies.
- ``"auto"`` (the default) picks local files for a server on a loopback address and uploads otherwise, and also
  when that local server does not serve these files (serving off, or the images outside its document root): the
  push result's ``note`` says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from active_learning.errors import DataError, LabelStudioError, LocalFilesNotServedError

if TYPE_CHECKING:
    from active_learning.label_studio.api import LabelStudioAPI
    from active_learning.label_studio.tasks import TaskSpec

logger = logging.getLogger(__name__)

LOCAL_FILES_ROOT_VARIABLE = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
LOCAL_FILES_SERVING_VARIABLE = "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"
UPLOAD_HINT = "or upload the images instead (`media='upload'`)"
SERVING_HINT = (
    f"start Label Studio with `scripts/labelstudio start` (it enables local files), or set "
    f"{LOCAL_FILES_SERVING_VARIABLE}=true and {LOCAL_FILES_ROOT_VARIABLE}=<a folder above the images> for the "
    f"server, and the same {LOCAL_FILES_ROOT_VARIABLE} here"
)
MEDIA_MODES = ("auto", "local-files", "upload")
STORAGE_TITLE = "fiftyone-curation images"
STORAGE_DESCRIPTION = "Serves the images of fiftyone-curation tasks; never sync it (its filter matches no file)."
NEVER_MATCHES = "(?!)"  # the storage's file filter: a sync of it imports nothing
UPLOAD_BATCH_FILES = 100  # Django's DATA_UPLOAD_MAX_NUMBER_FILES default in Label Studio
UPLOAD_BATCH_BYTES = 64 * 1024 * 1024
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine."""
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def resolve_media(client: LabelStudioAPI, media: str) -> str:
    """``"local-files"`` or ``"upload"``: ``auto`` means local files for a server on this machine."""
    if media not in MEDIA_MODES:
        raise DataError(f"media must be one of {MEDIA_MODES}, not {media!r}.")
    if media != "auto":
        return media
    return "local-files" if is_loopback(client.url) else "upload"


def url_prefix(client: LabelStudioAPI) -> str:
    """The path under which Label Studio runs (behind a reverse proxy), or ``""``."""
    return urlsplit(client.url).path.rstrip("/")


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


def ensure_local_storage(client: LabelStudioAPI, project_id: int, folder: str) -> None:
    """A local-files import storage of the project on ``folder`` or a folder above it: what lets LS serve files."""
    for path in client.local_storage_paths(project_id):
        root = os.path.normpath(path)
        if folder == root or folder.startswith(root.rstrip(os.sep) + os.sep):
            return
    client.create_local_storage(project_id, folder, title=STORAGE_TITLE, description=STORAGE_DESCRIPTION,
                                regex_filter=NEVER_MATCHES)


def check_served(client: LabelStudioAPI, url: str) -> None:
    """Fetch one served image, so broken image links fail the push before any task exists."""
    try:
        client.read_file(url)
    except LabelStudioError as error:
        raise LocalFilesNotServedError(
            f"Label Studio at {client.url} does not serve the images from this machine's files: "
            f"{SERVING_HINT}; {UPLOAD_HINT}. The server said: {error}"
        ) from None


def local_files_urls(
    client: LabelStudioAPI, project_id: int, specs: Sequence[TaskSpec], document_root: str | None
) -> list[str]:
    """The local-files addresses of the specs' images, once the project may serve them and serves the first."""
    root = document_root or os.environ.get(LOCAL_FILES_ROOT_VARIABLE) or os.sep
    prefix = url_prefix(client)
    urls = [local_files_url(spec.filepath, root, prefix) for spec in specs]
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(spec.filepath)) for spec in specs])
    if os.path.abspath(folder) == os.path.abspath(root):
        raise DataError(
            f"The images' common folder {folder} is Label Studio's local-files document root itself, which Label "
            f"Studio refuses to serve: set {LOCAL_FILES_ROOT_VARIABLE} one folder higher (for the server and "
            f"here); {UPLOAD_HINT}."
        )
    ensure_local_storage(client, project_id, folder)
    check_served(client, urls[0])
    return urls


def upload_batches(specs: Sequence[TaskSpec]) -> Iterable[list[TaskSpec]]:
    """The specs in batches the server accepts in one upload (file count and bytes)."""
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


def uploaded_urls(client: LabelStudioAPI, project_id: int, specs: Sequence[TaskSpec]) -> list[str]:
    """Upload the images (no tasks are made) and return their URLs on the server, in the order of ``specs``.

    Each file is uploaded under the name ``<sample id><extension>``; the server prefixes a random 8-character
    stem and a dash, which is how the copies are matched back to samples.
    """
    missing = [spec.filepath for spec in specs if not os.path.isfile(spec.filepath)]
    if missing:
        raise DataError(f"{len(missing)} image files do not exist, e.g. {missing[0]}; nothing was pushed.")
    by_name: dict[str, str] = {}
    prefix = url_prefix(client)
    for batch in upload_batches(specs):
        files = [(f"{spec.sample_id}{Path(spec.filepath).suffix.lower()}", spec.filepath) for spec in batch]
        for stored in client.upload_files(project_id, files):
            stem = Path(stored).stem
            by_name[stem.split("-", 1)[1] if "-" in stem else stem] = f"{prefix}/data/{stored}"
    lost = [spec.sample_id for spec in specs if spec.sample_id not in by_name]
    if lost:
        raise LabelStudioError(
            f"Label Studio at {client.url} did not keep {len(lost)} uploaded images (e.g. of sample "
            f"{lost[0]}); nothing was pushed. Look at the server's log."
        )
    return [by_name[spec.sample_id] for spec in specs]


def image_urls(client: LabelStudioAPI, project_id: int, specs: Sequence[TaskSpec], media: str,
               document_root: str | None) -> tuple[list[str], str, str]:
    """The specs' image addresses: (urls, the media used, a note on why it differs from the one asked for).

    With ``media="auto"`` a local server that does not serve these files (serving off, or the images outside its
    document root) gets them uploaded instead.
    """
    resolved = resolve_media(client, media)
    if resolved == "local-files":
        try:
            return local_files_urls(client, project_id, specs, document_root), resolved, ""
        except (LocalFilesNotServedError, DataError) as error:  # not served, or not below its root
            if media != "auto":
                raise
            note = f"the images were uploaded: {error}"
            logger.warning("Label Studio does not serve local files; uploading the images instead")
        return uploaded_urls(client, project_id, specs), "upload", note
    return uploaded_urls(client, project_id, specs), resolved, ""
