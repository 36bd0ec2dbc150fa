"""The contract of ``LabelStudioAPI``: the same assertions against the in-memory fake and the real server.

Each test runs twice (``backend``): on :class:`~active_learning.label_studio.fake.FakeLabelStudio`, and on the
session's real Label Studio 1.23 through the adapter (``labelstudio``-marked). What the loop's unit tests take for
granted of the fake (ids, stored configs, predictions and model versions, annotations with their annotators and
times, refusals, deleted projects, served files) is checked here to be what the server does.
"""

from __future__ import annotations

import inspect
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from labelstudio_server import Backend, backend  # noqa: F401 - the fixture

from active_learning.errors import LabelStudioError, ProjectDeletedError
from active_learning.label_studio.api import LabelStudioAPI
from active_learning.label_studio.config import labeling_config
from active_learning.label_studio.media import local_files_url

CLASSES = ["cat", "dog"]


def choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]


def new_project(client: LabelStudioAPI, description: str = "contract") -> int:
    return client.create_project(f"contract {uuid.uuid4().hex[:8]}", description, labeling_config(CLASSES)).id


def task(n: int, version: str | None = None) -> dict:
    payload: dict = {"data": {"image": f"/data/upload/x/{n}.png", "note": f"n{n}", "sample_id": f"s{n}", "round": 0}}
    if version is not None:
        payload["predictions"] = [{"model_version": version, "score": 0.5 + n / 100, "result": choice("dog")}]
    return payload


def when(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def test_the_adapter_and_the_fake_offer_every_operation_with_the_same_signature() -> None:
    from active_learning.label_studio.adapter import LabelStudioClient
    from active_learning.label_studio.fake import FakeLabelStudio

    operations = [name for name in vars(LabelStudioAPI) if not name.startswith("_")]
    assert {"get_project", "import_tasks", "annotated_tasks", "create_annotation", "read_file"} <= set(operations)
    for name in operations:
        wanted = getattr(LabelStudioAPI, name)
        for implementation in (LabelStudioClient, FakeLabelStudio):
            offered = getattr(implementation, name)
            if isinstance(wanted, property):
                assert isinstance(offered, property), (implementation.__name__, name)
            else:
                assert inspect.signature(offered) == inspect.signature(wanted), (implementation.__name__, name)


def test_projects_keep_what_they_are_given(backend: Backend) -> None:
    client = backend.client
    title = f"contract {uuid.uuid4().hex[:8]}"
    created = client.create_project(title, "a description\n[marker]", labeling_config(CLASSES))
    later = new_project(client)
    assert later > created.id, "ids grow"
    project = client.get_project(created.id)
    assert (project.id, project.title, project.description) == (created.id, title, "a description\n[marker]")
    assert project.label_config == labeling_config(CLASSES) and project.model_version == ""
    assert [p.id for p in client.find_projects(title) if p.title == title] == [created.id]
    assert created.id in [p.id for p in client.find_projects(title[:12])], "a title filter matches a part"
    changed = labeling_config(["cat", "dog", "bird"])
    client.update_project(created.id, label_config=changed)
    assert client.get_project(created.id).label_config == changed
    with pytest.raises(LabelStudioError, match="HTTP 400"):
        client.create_project("x" * 51, "", labeling_config(CLASSES))


def test_tasks_are_imported_in_one_call_with_predictions_and_the_project_shows_the_last_version(
    backend: Backend,
) -> None:
    client = backend.client
    project_id = new_project(client)
    ids = client.import_tasks(project_id, [task(1, "m-a"), task(2, "m-b"), task(3)])
    assert len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3
    assert client.get_project(project_id).model_version == "m-b", "an empty model version becomes the import's last"
    listed = client.list_tasks(project_id)
    assert [t["id"] for t in listed] == ids and all(set(t) == {"id", "data"} for t in listed)
    assert [t["data"] for t in listed] == [task(n)["data"] for n in (1, 2, 3)]
    full = client.list_tasks(project_id, with_predictions=True)
    assert [[p["model_version"] for p in t["predictions"]] for t in full] == [["m-a"], ["m-b"], []]
    (prediction,) = full[0]["predictions"]
    assert prediction["score"] == pytest.approx(0.51) and prediction["result"] == choice("dog")
    assert client.get_task(ids[1])["predictions"][0]["model_version"] == "m-b"

    client.import_tasks(project_id, [task(4, "m-c")])
    assert client.get_project(project_id).model_version == "m-b", "a set model version stays"
    client.update_project(project_id, model_version="m-c")
    assert client.get_project(project_id).model_version == "m-c"
    with pytest.raises(LabelStudioError, match="HTTP 400"):
        client.update_project(project_id, model_version="never-predicted")


def test_an_import_without_the_configs_data_is_refused_whole(backend: Backend) -> None:
    client = backend.client
    project_id = new_project(client)
    broken = {"data": {"note": "no image", "sample_id": "s9", "round": 0}}
    with pytest.raises(LabelStudioError, match="HTTP 400.*image"):
        client.import_tasks(project_id, [task(1), broken])
    assert client.list_tasks(project_id) == []


def test_annotations_are_stored_as_given_with_annotators_and_times(backend: Backend) -> None:
    client = backend.client
    project_id = new_project(client)
    first, second, untouched = client.import_tasks(project_id, [task(1), task(2), task(3)])
    me = client.whoami()
    tag = uuid.uuid4().hex[:6]
    other = client.create_user(f"other-{tag}@example.com", f"other-{tag}")
    assert other.email in [u.email for u in client.list_users()] and me.id in [u.id for u in client.list_users()]

    mine = client.create_annotation(first, choice("cat"), lead_time=1.0)
    foreign = client.create_annotation(first, choice("not a class"), completed_by=other.id)
    skipped = client.create_annotation(second, [], was_cancelled=True)
    assert mine < foreign < skipped

    annotated = {t["id"]: t for t in client.annotated_tasks(project_id)}
    assert set(annotated) == {first, second}, "unannotated tasks are left out; skipped ones are in"
    assert annotated[first]["data"]["sample_id"] == "s1"
    by_id = {a["id"]: a for t in annotated.values() for a in t["annotations"]}
    assert by_id[mine]["result"] == choice("cat") and not by_id[mine]["was_cancelled"]
    assert by_id[foreign]["result"] == choice("not a class"), "the server does not validate results"
    assert by_id[skipped]["was_cancelled"] and by_id[skipped]["result"] == []
    assert [by_id[i]["completed_by"] for i in (mine, foreign, skipped)] == [me.id, other.id, me.id], "user ids"
    assert when(by_id[mine]["created_at"]) <= when(by_id[foreign]["created_at"])

    before = by_id[mine]["updated_at"]
    client.update_annotation(mine, choice("dog"))
    changed = next(a for t in client.annotated_tasks(project_id) for a in t["annotations"] if a["id"] == mine)
    assert changed["result"] == choice("dog") and when(changed["updated_at"]) > when(before)
    assert untouched not in {t["id"] for t in client.annotated_tasks(project_id)}


def test_a_deleted_project_is_the_same_error_everywhere(backend: Backend, tmp_path: Path) -> None:
    client = backend.client
    project_id = new_project(client)
    (task_id,) = client.import_tasks(project_id, [task(1, "m")])
    client.delete_project(project_id)
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    calls = {
        "get_project": lambda: client.get_project(project_id),
        "update_project": lambda: client.update_project(project_id, label_config=labeling_config(CLASSES)),
        "import_tasks": lambda: client.import_tasks(project_id, [task(2)]),
        "list_tasks": lambda: client.list_tasks(project_id),
        "annotated_tasks": lambda: client.annotated_tasks(project_id),
        "local_storage_paths": lambda: client.local_storage_paths(project_id),
        "upload_files": lambda: client.upload_files(project_id, [("x.png", str(image))]),
    }
    for name, call in calls.items():
        with pytest.raises(ProjectDeletedError, match=f"project {project_id} was deleted") as raised:
            call()
        assert raised.value.project_id == project_id, name
    with pytest.raises(LabelStudioError, match="HTTP 404"):
        client.create_annotation(task_id, choice("cat"))


def test_files_are_served_from_uploads_and_from_local_files_below_a_storage(backend: Backend) -> None:
    client = backend.client
    project_id = new_project(client)
    folder = Path(backend.local_files_root) / f"contract-{uuid.uuid4().hex[:8]}" / "images"
    folder.mkdir(parents=True)
    image = folder / "a b&c.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes)

    (stored,) = client.upload_files(project_id, [("sample1.png", str(image))])
    assert stored.startswith(f"upload/{project_id}/") and stored.endswith("-sample1.png")
    assert client.read_file(f"/data/{stored}") == image.read_bytes()

    url = local_files_url(str(image), str(backend.local_files_root))
    with pytest.raises(LabelStudioError, match="HTTP 404"):
        client.read_file(url)  # no storage grants it yet
    assert client.local_storage_paths(project_id) == []
    client.create_local_storage(project_id, str(folder), title="t", description="d", regex_filter="(?!)")
    assert client.local_storage_paths(project_id) == [str(folder)]
    assert client.read_file(url) == image.read_bytes()
    assert client.read_file(f"{client.url}{url}") == image.read_bytes(), "an absolute address works too"
    with pytest.raises(LabelStudioError, match="HTTP 400"):
        client.create_local_storage(project_id, str(folder / "missing"), title="t", description="d",
                                    regex_filter="(?!)")
