"""The Label Studio bridge: config, projects, images, bulk push, validation, majority vote and ingestion.

Pure functions are tested alone (with hypothesis for the invariants). Everything else runs twice with the same
assertions (``backend``): against the in-memory fake (fast, no server) and against the real Label Studio 1.23 server
of the session (``labelstudio``-marked), always with the test session's real MongoDB, so the fake cannot drift from
the server the loop really talks to.
"""

from __future__ import annotations

import base64
import json
import time
import traceback
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from labelstudio_server import Backend, LabelStudioServer, backend, counting_imports, real_client  # noqa: F401

from active_learning.errors import DataError, LabelStudioError, ProjectDeletedError
from active_learning.label_studio import ingest as ingest_module
from active_learning.label_studio import media
from active_learning.label_studio.adapter import LabelStudioClient
from active_learning.label_studio.completed import CompletedTask, Vote, fetch_completed, majority
from active_learning.label_studio.config import (ChoicesConfig, labeling_config, parse_labeling_config,
                                                 validate_annotation)
from active_learning.label_studio.connection import LabelStudioSettings
from active_learning.label_studio.ingest import PROVENANCE_FIELD, ingest
from active_learning.label_studio.media import local_files_url
from active_learning.label_studio.projects import ensure_project, project_marker
from active_learning.label_studio.tasks import TaskSpec, push_round_tasks, push_tasks, task_payload, task_specs
from active_learning.store.label_history import HISTORY_FIELD, REVIEW_STATUS_FIELD, queue_for_review

CLASSES = ["T-shirt/top", "Trouser", "a & b <c>", 'say "hi"', "it's"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def choice(label: str, from_name: str = "label", to_name: str = "image") -> list[dict]:
    return [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]


def full_error_text(error: BaseException) -> str:
    """Everything a traceback of ``error`` would print, causes included."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error)


def unique_title(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------- pure logic


def test_labeling_config_escapes_xml_and_round_trips() -> None:
    config = labeling_config(CLASSES)
    ElementTree.fromstring(config)  # well-formed
    assert "a &amp; b &lt;c&gt;" in config and "T-shirt/top" in config
    parsed = parse_labeling_config(config)
    assert parsed == ChoicesConfig("label", "image", tuple(CLASSES))
    assert parse_labeling_config(labeling_config(["x"], "cls", "img"), "cls").to_name == "img"


_class_name = st.text(
    st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"), max_codepoint=0x2FFF), min_size=1, max_size=20
).filter(str.strip)


@given(st.lists(_class_name, min_size=1, max_size=8, unique=True))
def test_any_class_names_round_trip_through_the_config(classes: list[str]) -> None:
    assert parse_labeling_config(labeling_config(classes)).classes == tuple(classes)


@pytest.mark.parametrize("classes", [[], ["a", "a"], ["a", " "]], ids=["none", "repeated", "blank"])
def test_unusable_class_lists_are_refused(classes: list[str]) -> None:
    with pytest.raises(DataError):
        labeling_config(classes)


def test_bad_tag_names_and_configs_are_refused() -> None:
    with pytest.raises(DataError, match="identifier"):
        labeling_config(["a"], from_name='x" onload="y')
    with pytest.raises(LabelStudioError, match="not valid XML"):
        parse_labeling_config("<View>")
    with pytest.raises(LabelStudioError, match="no Choices tag"):
        parse_labeling_config('<View><Image name="image" value="$image"/></View>')


def test_valid_annotations_give_their_class() -> None:
    assert validate_annotation(choice("a & b <c>"), CLASSES) == "a & b <c>"
    assert validate_annotation(choice("it's", "cls", "img"), CLASSES, "cls", "img") == "it's"


@pytest.mark.parametrize(
    "result, reason",
    [
        ([], "empty result"),
        (None, "empty result"),
        (choice("Bag"), "class 'Bag' is not in the labeling config"),
        (choice("Trouser", from_name="other"), "unexpected from_name 'other'"),
        (choice("Trouser", to_name="video"), "to_name 'video', expected 'image'"),
        (choice("Trouser") + choice("it's"), "2 results for 'label', expected 1"),
        ([{**choice("Trouser")[0], "value": {"choices": ["Trouser", "it's"]}}], "2 choices, expected 1"),
        ([{**choice("Trouser")[0], "value": {"choices": []}}], "0 choices, expected 1"),
        ([{**choice("Trouser")[0], "type": "labels"}], "type 'labels', expected 'choices'"),
        (["not a region"], "malformed result"),
    ],
)
def test_invalid_annotations_raise_with_a_countable_reason(result: object, reason: str) -> None:
    with pytest.raises(DataError) as caught:
        validate_annotation(result, CLASSES)
    assert str(caught.value) == reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@given(_json)
def test_validation_raises_only_data_errors(result: object) -> None:
    try:
        label = validate_annotation(result, CLASSES)
    except DataError:
        return
    assert label in CLASSES


def _vote(annotation_id: int, label: str, minute: int) -> Vote:
    when = f"2026-01-01T00:{minute:02d}:00+00:00"
    return Vote(annotation_id, label, annotation_id, f"user{annotation_id}@example.com", when, when)


def test_majority_vote_and_ties_go_to_the_earliest_vote() -> None:
    assert majority([_vote(1, "a", 1), _vote(2, "b", 2), _vote(3, "b", 3)]) == ("b", pytest.approx(2 / 3))
    assert majority([_vote(1, "a", 5), _vote(2, "b", 2)]) == ("b", 0.5)  # b was voted first
    assert majority([_vote(7, "a", 1)]) == ("a", 1.0)
    with pytest.raises(DataError):
        majority([])


@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=9))
def test_majority_label_has_the_most_votes(labels: list[str]) -> None:
    votes = [_vote(i, label, i) for i, label in enumerate(labels)]
    label, agreement = majority(votes)
    assert labels.count(label) == max(labels.count(x) for x in labels)
    assert agreement == labels.count(label) / len(labels)


def test_local_files_urls_are_relative_to_the_document_root(tmp_path: Path) -> None:
    image = tmp_path / "a b" / "x&y.png"
    url = local_files_url(str(image), str(tmp_path))
    assert url == "/data/local-files/?d=a%20b/x%26y.png"
    assert local_files_url(str(image), str(tmp_path), "/ls").startswith("/ls/data/local-files/")
    with pytest.raises(DataError, match="document root"):
        local_files_url("/elsewhere/x.png", str(tmp_path))


def test_media_is_local_files_for_a_loopback_server_and_upload_otherwise() -> None:
    for url, expected in [("http://127.0.0.1:8080/", "local-files"), ("http://localhost:9/", "local-files"),
                          ("https://ls.example.com/", "upload"), ("http://10.0.0.7:8080/", "upload")]:
        client = LabelStudioClient(LabelStudioSettings(url=url, api_key="0123456789abcdef0123456789abcdef01234567"))
        assert media.resolve_media(client, "auto") == expected
        assert media.resolve_media(client, "upload") == "upload"
    with pytest.raises(DataError, match="media"):
        media.resolve_media(client, "ftp")


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def client(backend: Backend):
    return backend.client


@pytest.fixture
def root(backend: Backend) -> str:
    """The folder the backend serves local files from."""
    return str(backend.local_files_root)


def write_pngs(folder: Path, count: int) -> list[Path]:
    """``count`` small distinct PNG files in ``folder/images`` (a space and an ampersand in the folder name)."""
    from PIL import Image

    images = folder / "images & more"
    images.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = images / f"img {i:04d}.png"
        Image.new("RGB", (12, 12), ((i * 37) % 256, (i * 11) % 256, 200)).save(path)
        paths.append(path)
    return paths


def make_dataset(name: str, folder: Path, count: int):
    """A dataset of real PNGs: ``ground_truth`` on even samples, a model prediction on every sample."""
    import fiftyone as fo

    dataset = fo.Dataset(name)
    dataset.default_classes = list(CLASSES)
    samples = []
    for i, path in enumerate(write_pngs(folder, count)):
        sample = fo.Sample(filepath=str(path))
        if i % 2 == 0:
            sample["ground_truth"] = fo.Classification(label=CLASSES[i % len(CLASSES)])
        sample["model_prediction"] = fo.Classification(label=CLASSES[(i + 1) % len(CLASSES)],
                                                       confidence=round(0.5 + (i % 5) / 10, 2))
        samples.append(sample)
    dataset.add_samples(samples)
    if "ground_truth" not in dataset.get_field_schema():
        dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    return dataset


def titled(client, title: str) -> list[int]:
    """The ids of the projects titled exactly ``title``."""
    return [p.id for p in client.find_projects(title) if p.title == title]


# ------------------------------------------------------------------------------------- projects


def test_ensure_project_creates_once_then_reuses(client, dataset_name: str) -> None:
    title = unique_title("reuse")
    first = ensure_project(client, title, CLASSES, dataset_name)
    assert ensure_project(client, title, list(reversed(CLASSES)), dataset_name) == first  # order does not matter
    assert ensure_project(client, title, CLASSES, dataset_name, project_id=first) == first
    assert titled(client, title) == [first]
    project = client.get_project(first)
    assert project_marker(dataset_name) in project.description
    assert parse_labeling_config(project.label_config).classes == tuple(CLASSES)


def test_ensure_project_refuses_other_classes_and_foreign_projects(client, dataset_name: str) -> None:
    title = unique_title("classes")
    project_id = ensure_project(client, title, CLASSES, dataset_name)
    with pytest.raises(LabelStudioError, match=r"other classes.*missing there: \['Bag'\].*labeling interface"):
        ensure_project(client, title, CLASSES + ["Bag"], dataset_name)
    with pytest.raises(LabelStudioError, match="not made for dataset 'another'"):
        ensure_project(client, title, CLASSES, "another", project_id=project_id)
    foreign = unique_title("foreign")
    client.create_project(foreign, "", labeling_config(CLASSES))
    with pytest.raises(LabelStudioError, match="not made for dataset.*choose another title"):
        ensure_project(client, foreign, CLASSES, dataset_name)
    assert len(titled(client, foreign)) == 1
    with pytest.raises(DataError, match="3-50 characters"):
        ensure_project(client, "x" * 51, CLASSES, dataset_name)


def test_a_project_deleted_behind_our_back_is_an_error_until_new_project(
    client, dataset_name: str, tmp_path: Path, root: str
) -> None:
    title = unique_title("deleted")
    dataset = make_dataset(dataset_name, tmp_path, 2)
    project_id = ensure_project(client, title, CLASSES, dataset_name)
    client.delete_project(project_id)

    with pytest.raises(ProjectDeletedError, match=f"project {project_id} for dataset .* was deleted.*"
                                                  r"`new_project=True`") as deleted:
        ensure_project(client, title, CLASSES, dataset_name, project_id=project_id)
    assert deleted.value.project_id == project_id and deleted.value.dataset_name == dataset_name
    specs = task_specs(dataset, round_index=0, model_version="m0")
    with pytest.raises(ProjectDeletedError, match="was deleted"):
        push_tasks(client, project_id, specs, document_root=root)
    with pytest.raises(ProjectDeletedError, match="was deleted"):
        fetch_completed(client, project_id)
    assert not titled(client, title)  # nothing was recreated silently

    recreated = ensure_project(client, title, CLASSES, dataset_name, project_id=project_id, new_project=True)
    assert recreated != project_id
    assert ensure_project(client, title, CLASSES, dataset_name) == recreated
    assert ensure_project(client, title, CLASSES, dataset_name, project_id=project_id, new_project=True) != project_id
    assert titled(client, title) == [recreated]


# ------------------------------------------------------------------------------------- pushing


def test_push_is_one_bulk_import_with_predictions_and_never_duplicates(
    client, dataset_name: str, tmp_path: Path, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 12)
    project_id = ensure_project(client, unique_title("push"), CLASSES, dataset_name)
    imports = counting_imports(client, monkeypatch)
    specs = task_specs(dataset, round_index=3, model_version="resnet18-r3")

    first = push_tasks(client, project_id, specs[:10], media="local-files", document_root=root)
    assert imports == [10]
    assert set(first) == {spec.sample_id for spec in specs[:10]} and len(set(first.values())) == 10

    tasks = {t["id"]: t for t in client.list_tasks(project_id, with_predictions=True)}
    assert set(tasks) == set(first.values())
    for spec in specs[:10]:
        task = tasks[first[spec.sample_id]]
        assert task["data"]["sample_id"] == spec.sample_id and task["data"]["round"] == 3
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "resnet18-r3"
        assert prediction["score"] == pytest.approx(spec.score)
        assert prediction["result"] == choice(spec.predicted_label)
    assert client.get_project(project_id).model_version == "resnet18-r3"

    again = push_tasks(client, project_id, specs[:10], media="local-files", document_root=root)
    assert again == first and imports == [10]  # nothing pushed, no import call

    next_round = specs[:10] + [replace(spec, round_index=4, model_version="resnet18-r4") for spec in specs[10:]]
    more = push_tasks(client, project_id, next_round, media="local-files", document_root=root)
    assert imports == [10, 2]
    assert client.get_project(project_id).model_version == "resnet18-r4"  # the labeling view shows round 4's
    assert {k: more[k] for k in first} == first and len(set(more.values())) == 12
    assert len(client.list_tasks(project_id)) == 12

    # the image of a pushed task is served to whoever holds the token, byte for byte
    task = client.get_task(more[specs[0].sample_id])
    assert task["data"]["image"].startswith("/data/local-files/?d=")
    served = client.read_file(task["data"]["image"])
    assert served.startswith(PNG_MAGIC) and served == Path(specs[0].filepath).read_bytes()
    assert len(client.local_storage_paths(project_id)) == 1  # created once, reused by the later pushes


def test_upload_serves_copies_for_a_remote_server(
    client, dataset_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 5)
    project_id = ensure_project(client, unique_title("upload"), CLASSES, dataset_name)
    monkeypatch.setattr(media, "UPLOAD_BATCH_FILES", 2)  # several upload batches, still one task import
    imports = counting_imports(client, monkeypatch)
    specs = task_specs(dataset, round_index=1, model_version="m1")
    task_ids = push_tasks(client, project_id, specs, media="upload")
    assert imports == [5]
    for spec in specs:
        url = client.get_task(task_ids[spec.sample_id])["data"]["image"]
        assert url.startswith(f"/data/upload/{project_id}/")
        assert client.read_file(url) == Path(spec.filepath).read_bytes()
    assert push_tasks(client, project_id, specs, media="upload") == task_ids and imports == [5]
    assert not client.local_storage_paths(project_id)


def test_images_the_server_cannot_serve_fail_the_push_before_any_task(
    client, dataset_name: str, tmp_path: Path
) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 3)
    project_id = ensure_project(client, unique_title("unserved"), CLASSES, dataset_name)
    specs = task_specs(dataset, round_index=0)
    with pytest.raises(DataError, match="not below Label Studio's local-files document root"):
        push_tasks(client, project_id, specs, media="local-files", document_root=str(tmp_path / "elsewhere"))
    # "/" is not the server's document root: the storage is accepted, but the files are not found there
    with pytest.raises(LabelStudioError) as raised:
        push_tasks(client, project_id, specs, media="local-files", document_root="/")
    message = str(raised.value)
    for fix in ("does not serve the images", "scripts/labelstudio start", "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED",
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "`media='upload'`"):
        assert fix in message, (fix, message)
    assert "--media" not in message, "a library message names the setting, not the CLI flag"
    assert message.endswith(").") and "[...]" not in message, "the message ends with a whole sentence"
    assert not client.list_tasks(project_id)
    bad = [TaskSpec(specs[0].sample_id, specs[0].filepath, 0, predicted_label="Bag")]
    with pytest.raises(DataError, match=r"Predicted classes \['Bag'\]"):
        push_tasks(client, project_id, bad, media="upload")

    # media "auto" on this local server: it cannot serve these files, so they are uploaded, and the result says so
    result = push_round_tasks(client, project_id, specs, media="auto", document_root="/")
    assert result.media == "upload" and result.pushed == 3 and "uploaded" in result.note
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in result.note
    image = client.get_task(result.task_ids[specs[0].sample_id])["data"]["image"]
    assert "/data/upload/" in image
    assert client.read_file(image) == Path(specs[0].filepath).read_bytes()


def test_every_task_shows_its_note_and_an_old_project_gets_the_note_line(
    client, dataset_name: str, tmp_path: Path, root: str
) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 2)
    title = unique_title("note")
    old_config = labeling_config(CLASSES).replace('  <Header value="$note" size="6"/>\n', "")
    assert "$note" not in old_config
    description = f"made before notes\n{project_marker(dataset_name)}"
    old = client.create_project(title, description, old_config)
    assert ensure_project(client, title, CLASSES, dataset_name) == old.id
    upgraded = client.get_project(old.id).label_config
    assert '<Header value="$note"' in upgraded
    assert parse_labeling_config(upgraded).classes == tuple(CLASSES), "same choices, same order"

    ids, paths = dataset.values(["id", "filepath"])
    specs = [TaskSpec(ids[0], paths[0], 0, predicted_label="Trouser", score=0.9, model_version="al_round_000",
                      note="New sample. Pre-selected: 'Trouser' (90%)."),
             TaskSpec(ids[1], paths[1], 0)]
    result = push_round_tasks(client, old.id, specs, document_root=root)
    assert result.pushed == 2 and result.with_prediction == 1 and result.media == "local-files"
    first, second = (client.get_task(result.task_ids[i]) for i in ids)
    assert first["data"]["note"] == "New sample. Pre-selected: 'Trouser' (90%)."
    assert second["data"]["note"] == "" and not second["predictions"], "every task has the key the config shows"


def test_a_sample_pushed_again_in_a_later_round_gets_a_new_task_whose_label_wins(
    client, dataset_name: str, tmp_path: Path, root: str
) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 2)
    project_id = ensure_project(client, unique_title("again"), CLASSES, dataset_name)
    round0 = task_specs(dataset, round_index=0)
    first = push_tasks(client, project_id, round0, document_root=root)
    assert push_tasks(client, project_id, round0, document_root=root) == first, "one task per sample and round"
    sample = round0[0].sample_id
    client.create_annotation(first[sample], choice("Trouser"))
    report = ingest(dataset, fetch_completed(client, project_id), "ground_truth", 0, project_id)
    assert report.new == 1

    # round 2 sends the same sample for review: a new task; until it is annotated the old label stays
    again = push_tasks(client, project_id, [replace(round0[0], round_index=2)], document_root=root)
    assert again[sample] != first[sample]
    assert ingest(dataset, fetch_completed(client, project_id), "ground_truth", 2, project_id).new == 0
    client.create_annotation(again[sample], choice("it's"))
    report = ingest(dataset, fetch_completed(client, project_id), "ground_truth", 2, project_id)
    assert report.new == 1 and report.changed == 1
    dataset.reload()
    assert dataset[sample].ground_truth.label == "it's"
    assert dataset[sample][PROVENANCE_FIELD]["task_id"] == again[sample]
    assert [(h["old"], h["new"]) for h in dataset[sample][HISTORY_FIELD]] == [
        ("T-shirt/top", "Trouser"), ("Trouser", "it's")], "both human labels are kept"


# ------------------------------------------------------------------------------------- annotations and ingest


def snapshot(dataset) -> list:
    fields = ["id", "ground_truth.label", HISTORY_FIELD, PROVENANCE_FIELD, REVIEW_STATUS_FIELD]
    schema = dataset.get_field_schema()
    return dataset.values([f for f in fields if f.split(".")[0] in schema])


def test_annotate_fetch_and_ingest_with_provenance_idempotently(
    client, dataset_name: str, tmp_path: Path, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 9)
    ids = dataset.values("id")
    queue_for_review(dataset, ids[:4], reason="label error suggestion")
    project_id = ensure_project(client, unique_title("ingest"), CLASSES, dataset_name)
    task_ids = push_tasks(client, project_id, task_specs(dataset, round_index=2, model_version="m2"),
                          document_root=root)
    task = [task_ids[i] for i in ids]
    me = client.whoami()
    tag = uuid.uuid4().hex[:6]
    ann2 = client.create_user(f"ann2-{tag}@example.com", f"ann2-{tag}")
    ann3 = client.create_user(f"ann3-{tag}@example.com", f"ann3-{tag}")

    # 0: one person relabels a human label (T-shirt/top -> Trouser)
    a0 = client.create_annotation(task[0], choice("Trouser"))
    # 1: three people disagree 2:1
    b = [client.create_annotation(task[1], choice("a & b <c>"), completed_by=me.id),
         client.create_annotation(task[1], choice("Trouser"), completed_by=ann2.id),
         client.create_annotation(task[1], choice("a & b <c>"), completed_by=ann3.id)]
    # 2: skipped
    client.create_annotation(task[2], [], was_cancelled=True)
    # 3: a class outside the config (the server stores it: it does not validate)
    bad = client.create_annotation(task[3], choice("Bag"))
    # 4: confirms the existing human label
    client.create_annotation(task[4], choice(dataset[ids[4]].ground_truth.label))
    # 5: a 1:1 tie: the earlier vote wins; plus one skip
    t5 = [client.create_annotation(task[5], choice("it's"), completed_by=ann2.id),
          client.create_annotation(task[5], choice('say "hi"'), completed_by=ann3.id)]
    client.create_annotation(task[5], [], was_cancelled=True, completed_by=me.id)
    # 6, 7, 8: not annotated
    before = dataset.values("ground_truth.label")

    completed = fetch_completed(client, project_id)
    assert sorted(t.task_id for t in completed) == sorted([task[0], task[1], task[4], task[5]])
    assert [(a.task_id, a.annotation_id, a.reason) for a in completed.invalid] == [
        (task[3], bad, "class 'Bag' is not in the labeling config")]
    assert completed.cancelled_annotations == 2 and completed.skipped_tasks == 1
    assert completed.skipped_task_ids == (task[2],), "the skipped task is named, so its round can return it"
    assert completed.unresolved_tasks == 1 and completed.foreign_tasks == 0
    by_task = {t.task_id: t for t in completed}
    assert by_task[task[1]].label == "a & b <c>" and by_task[task[1]].agreement == pytest.approx(2 / 3)
    assert by_task[task[5]].label == "it's" and by_task[task[5]].agreement == 0.5 and by_task[task[5]].cancelled == 1

    if isinstance(client, LabelStudioClient):  # Label Studio Enterprise has no synchronous export: the task list
        from label_studio_sdk.core.api_error import ApiError

        with monkeypatch.context() as patch:
            def no_export(*args, **kwargs):
                raise ApiError(status_code=404, body={"detail": "use the async export API"})

            patch.setattr(client.sdk.projects.exports, "download_sync", no_export)
            assert fetch_completed(client, project_id) == completed

    report = ingest(dataset, completed, "ground_truth", round_index=2, project_id=project_id)
    assert (report.new, report.changed, report.confirmed, report.unchanged) == (4, 3, 1, 0)
    assert report.invalid == 1 and report.invalid_reasons == {"class 'Bag' is not in the labeling config": 1}
    assert [(a.sample_id, a.annotation_id) for a in report.invalid_annotations] == [(ids[3], bad)]
    assert report.cancelled == 2 and report.skipped_tasks == 1 and report.missing_samples == 0
    assert report.marked_done == 2  # samples 0 and 1 were queued; 2 and 3 were not ingested

    labels = dataset.values("ground_truth.label")
    assert labels[0] == "Trouser" and labels[1] == "a & b <c>" and labels[5] == "it's"
    assert labels[4] == before[4]
    assert [labels[i] for i in (2, 3, 6, 7, 8)] == [before[i] for i in (2, 3, 6, 7, 8)]

    s0, s1 = dataset[ids[0]], dataset[ids[1]]
    (entry,) = s0[HISTORY_FIELD]
    assert entry["old"] == "T-shirt/top" and entry["new"] == "Trouser" and entry["source"] == "label_studio"
    assert entry["who"] == me.email
    assert s0[PROVENANCE_FIELD]["previous_label"] == "T-shirt/top"
    assert s0[PROVENANCE_FIELD]["annotation_ids"] == [a0]
    prov = s1[PROVENANCE_FIELD]
    assert prov["project_id"] == project_id and prov["task_id"] == task[1] and prov["round"] == 2
    assert prov["annotation_ids"] == b
    assert prov["annotator_ids"] == [me.id, ann2.id, ann3.id]
    assert prov["annotator_emails"] == [me.email, ann2.email, ann3.email]
    assert prov["agreement"] == pytest.approx(2 / 3) and prov["num_votes"] == 3
    assert prov["previous_label"] is None and prov["completed_at"] and prov["ingested_at"]
    assert s1[HISTORY_FIELD][0]["who"] == f"{me.email}, {ann2.email}, {ann3.email}"
    assert dataset[ids[5]][PROVENANCE_FIELD]["annotation_ids"] == t5
    assert dataset[ids[4]][HISTORY_FIELD] in (None, [])  # confirmed: no change, but provenance
    assert dataset[ids[4]][PROVENANCE_FIELD]["label"] == before[4]
    statuses = dataset.values(REVIEW_STATUS_FIELD)
    assert statuses[:4] == ["done", "done", "queued", "queued"]
    for i in (2, 3, 6, 7, 8):
        assert dataset[ids[i]][PROVENANCE_FIELD] is None

    # the same annotations again: nothing changes
    state = snapshot(dataset)
    again = ingest(dataset, fetch_completed(client, project_id), "ground_truth", round_index=2,
                   project_id=project_id)
    assert (again.new, again.changed, again.unchanged, again.marked_done) == (0, 0, 4, 0)
    assert snapshot(dataset) == state

    # an annotator corrects an annotation: only that sample is ingested again, the history keeps both
    client.update_annotation(a0, choice("it's"))
    third = ingest(dataset, fetch_completed(client, project_id), "ground_truth", round_index=3,
                   project_id=project_id)
    assert (third.new, third.changed, third.unchanged) == (1, 1, 3)
    s0 = dataset[ids[0]]
    assert s0.ground_truth.label == "it's" and [h["new"] for h in s0[HISTORY_FIELD]] == ["Trouser", "it's"]
    assert s0[PROVENANCE_FIELD]["previous_label"] == "Trouser" and s0[PROVENANCE_FIELD]["round"] == 3


def test_a_label_changed_while_ingesting_waits_for_the_next_ingest(dataset_name: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer relabels a sample between the ingest's read and its bulk write: that sample is not written
    (its history would name the wrong old label) and not reported; the next ingest takes it, once."""
    from active_learning.store.label_history import set_labels, write_sample_updates

    dataset = make_dataset(dataset_name, tmp_path, 4)
    ids = dataset.values("id")
    stamp = "2026-01-01T00:00:00+00:00"
    tasks = [CompletedTask(task_id=10 + n, sample_id=sample_id, round_index=0, label="Trouser", agreement=1.0,
                           votes=(Vote(20 + n, "Trouser", 1, "a@example.com", stamp, stamp),))
             for n, sample_id in enumerate(ids)]

    def meanwhile(*args, **kwargs):
        monkeypatch.undo()
        set_labels(dataset, {ids[0]: "it's"}, source="panel", user="bob")  # the App's accept, say
        return write_sample_updates(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "write_sample_updates", meanwhile)
    report = ingest(dataset, tasks, "ground_truth", 0, 3)
    assert (report.new, report.changed, report.confirmed) == (3, 3, 0)
    assert dataset[ids[0]].ground_truth.label == "it's" and dataset[ids[0]][PROVENANCE_FIELD] is None
    again = ingest(dataset, tasks, "ground_truth", 0, 3)
    assert (again.new, again.changed, again.unchanged) == (1, 1, 3)
    history = [(h["old"], h["new"], h["source"]) for h in dataset[ids[0]][HISTORY_FIELD]]
    assert history == [("T-shirt/top", "it's", "panel"), ("it's", "Trouser", "label_studio")]
    assert dataset[ids[0]][PROVENANCE_FIELD]["previous_label"] == "it's"


def test_ingest_reports_samples_that_left_the_dataset(client, dataset_name: str, tmp_path: Path) -> None:
    dataset = make_dataset(dataset_name, tmp_path, 3)
    project_id = ensure_project(client, unique_title("missing"), CLASSES, dataset_name)
    task_ids = push_tasks(client, project_id, task_specs(dataset, round_index=0), media="upload")
    ids = dataset.values("id")
    for sample_id in ids:
        client.create_annotation(task_ids[sample_id], choice("Trouser"))
    dataset.delete_samples([ids[0]])
    report = ingest(dataset, fetch_completed(client, project_id), "ground_truth", 0, project_id)
    assert report.new == 2 and report.missing_samples == 1
    with pytest.raises(DataError, match="no field 'nope'"):
        ingest(dataset, [], "nope", 0, project_id)


# ------------------------------------------------------------------------------------- failures (the real adapter)


def _segment(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def forged_pat() -> str:
    expires = int((datetime.now(timezone.utc) + timedelta(days=30)).timestamp())
    claims = {"token_type": "refresh", "exp": expires, "jti": "0123abcd", "user_id": "1"}
    return f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


@pytest.mark.labelstudio
@pytest.mark.parametrize("wrong_key", ["0123456789abcdef0123456789abcdef0badc0de", forged_pat()],
                         ids=["legacy", "pat"])
def test_a_wrong_token_is_a_label_studio_error_without_the_token(
    label_studio: LabelStudioServer, dataset_name: str, wrong_key: str
) -> None:
    client = LabelStudioClient(LabelStudioSettings(url=label_studio.url, api_key=wrong_key, timeout=10))
    for call in (lambda: ensure_project(client, unique_title("token"), CLASSES, dataset_name),
                 lambda: push_tasks(client, 1, [], media="upload"),
                 lambda: fetch_completed(client, 1)):
        with pytest.raises(LabelStudioError, match="refused the (legacy token|personal access token) while "
                                                   ".*HTTP 401") as caught:
            call()
        assert wrong_key not in full_error_text(caught.value)


@pytest.mark.parametrize("key", ["0123456789abcdef0123456789abcdef01234567", forged_pat()], ids=["legacy", "pat"])
def test_a_server_that_is_down_is_a_label_studio_error(label_studio_down_url: str, dataset_name: str,
                                                        key: str) -> None:
    client = LabelStudioClient(LabelStudioSettings(url=label_studio_down_url, api_key=key, timeout=10))
    started = time.monotonic()
    for call in (lambda: ensure_project(client, unique_title("down"), CLASSES, dataset_name),
                 lambda: push_tasks(client, 1, [], media="upload"),
                 lambda: fetch_completed(client, 1)):
        with pytest.raises(LabelStudioError, match=f"is Label Studio running at {label_studio_down_url}") as caught:
            call()
        assert key not in full_error_text(caught.value)
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------------------------- 1,000 tasks


@pytest.mark.labelstudio
def test_timing_of_a_thousand_tasks(
    label_studio: LabelStudioServer, dataset_name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Measures (prints, does not assert) pushing 1,000 tasks and fetching + ingesting 1,000 annotations."""
    client = real_client(label_studio)
    count = 1000
    dataset = make_dataset(dataset_name, tmp_path, count)
    project_id = ensure_project(client, unique_title("thousand"), CLASSES, dataset_name)
    specs = task_specs(dataset, round_index=0, model_version="m0")
    root = str(label_studio.local_files_root)

    started = time.perf_counter()
    task_ids = push_tasks(client, project_id, specs, document_root=root)
    push_seconds = time.perf_counter() - started
    started = time.perf_counter()
    push_tasks(client, project_id, specs, document_root=root)
    repush_seconds = time.perf_counter() - started

    # Label Studio Community has no bulk annotation call and takes ~0.35 s per annotation, so the 1,000
    # annotations are set up by importing the same tasks, annotated, into a second project (one call).
    annotated_id = ensure_project(client, unique_title("thousand annotated"), CLASSES, dataset_name)
    config = parse_labeling_config(labeling_config(CLASSES))
    payload = [{**task_payload(spec, local_files_url(spec.filepath, root), config),
                "annotations": [{"result": choice(CLASSES[i % len(CLASSES)])}]} for i, spec in enumerate(specs)]
    client.import_tasks(annotated_id, payload)

    started = time.perf_counter()
    completed = fetch_completed(client, annotated_id)
    fetch_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = ingest(dataset, completed, "ground_truth", 0, annotated_id)
    ingest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = ingest(dataset, fetch_completed(client, annotated_id), "ground_truth", 0, annotated_id)
    reingest_seconds = time.perf_counter() - started

    assert len(task_ids) == count and len(completed) == count
    assert report.new == count and again.new == 0
    figures = {
        "tasks": count, "push_s": round(push_seconds, 2), "repush_noop_s": round(repush_seconds, 2),
        "fetch_s": round(fetch_seconds, 2),
        "ingest_s": round(ingest_seconds, 2), "fetch_and_reingest_noop_s": round(reingest_seconds, 2),
    }
    with capsys.disabled():
        print(f"\nLabel Studio bridge, {count} tasks: {json.dumps(figures)}")
