"""The connection layer: settings, token shapes, and ``connect`` against a real Label Studio 1.23 server."""

from __future__ import annotations

import base64
import json
import logging
import time
import traceback
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from labelstudio_server import LabelStudioServer, restart_label_studio, stop_label_studio

from active_learning.label_studio import connection as ls
from active_learning.errors import LabelStudioError
from active_learning.label_studio.connection import (
    LabelStudioSettings,
    check_token_shape,
    connect,
    is_jwt,
    jwt_claims,
    resolve_settings,
    token_kind,
)

IMAGE_CHOICES = """<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices>
</View>"""
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _segment(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def make_jwt(claims: dict, signature: str = "c2lnbmF0dXJlLW5vdC1jaGVja2Vk") -> str:
    """A JWT-shaped token with ``claims`` and a made-up signature."""
    return f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}.{signature}"


def refresh_claims(expires: datetime) -> dict:
    return {"token_type": "refresh", "exp": int(expires.timestamp()), "jti": "0123abcd", "user_id": "1"}


def full_error_text(error: BaseException) -> str:
    """Everything a traceback of ``error`` would print, causes included."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error)


# ---------------------------------------------------------------------------------------------- pure logic


def test_jwt_detection_tells_pats_from_legacy_tokens() -> None:
    pat = make_jwt(refresh_claims(NOW + timedelta(days=1)))
    assert is_jwt(pat) and token_kind(pat) == ls.PAT
    assert jwt_claims(pat)["token_type"] == "refresh"
    for legacy in ("0123456789abcdef0123456789abcdef01234567", "a.b.c", "x..y", "", pat.rsplit(".", 1)[0]):
        assert not is_jwt(legacy)
        assert token_kind(legacy) == ls.LEGACY


@given(st.text())
def test_jwt_claims_never_raises(text: str) -> None:
    claims = jwt_claims(text)
    assert claims is None or isinstance(claims, dict)


@given(st.text())
def test_check_token_shape_raises_only_label_studio_errors(text: str) -> None:
    try:
        check_token_shape(text, now=NOW)
    except LabelStudioError:
        pass


@pytest.mark.parametrize(
    "token, expected",
    [
        (make_jwt(refresh_claims(NOW - timedelta(days=1))), "expired"),
        (make_jwt({**refresh_claims(NOW + timedelta(days=1)), "token_type": "access"}), "access token"),
        (make_jwt({"token_type": "refresh"}), "no expiry"),
        (make_jwt(refresh_claims(NOW + timedelta(days=1))).rsplit(".", 1)[0], "shortened"),
    ],
    ids=["expired", "access-token", "no-expiry", "truncated"],
)
def test_unusable_token_shapes_are_refused_without_echoing_the_token(token: str, expected: str) -> None:
    with pytest.raises(LabelStudioError, match=expected) as caught:
        check_token_shape(token, now=NOW)
    assert token not in full_error_text(caught.value)
    assert "personal access token" in str(caught.value)


def test_usable_token_shapes_pass() -> None:
    check_token_shape(make_jwt(refresh_claims(NOW + timedelta(days=1))), now=NOW)
    check_token_shape("0123456789abcdef0123456789abcdef01234567", now=NOW)


@pytest.mark.parametrize("key", ["legacy-secret-0123456789", make_jwt(refresh_claims(NOW + timedelta(days=9)))])
def test_settings_repr_and_str_hide_the_key(key: str) -> None:
    settings = LabelStudioSettings(url="http://127.0.0.1:8080/", api_key=key)
    for text in (repr(settings), str(settings), f"{settings}", repr([settings]), repr({"s": settings})):
        assert key not in text
        assert "hidden" in text and "http://127.0.0.1:8080" in text
    assert settings.api_key == key


def test_the_adapter_hides_the_key_and_masks_it() -> None:
    from active_learning.label_studio.adapter import LabelStudioClient

    key = make_jwt(refresh_claims(datetime.now(timezone.utc) + timedelta(days=9)))
    client = LabelStudioClient(LabelStudioSettings(url="http://127.0.0.1:8080/", api_key=key))
    assert client.url == "http://127.0.0.1:8080" and key not in repr(client) and "hidden" in repr(client)
    assert key in client.secrets() and all(part in client.secrets() for part in key.split(".")[1:])
    expired = make_jwt(refresh_claims(datetime.now(timezone.utc) - timedelta(days=1)))
    with pytest.raises(LabelStudioError, match="refused the personal access token.*expired") as caught:
        LabelStudioClient(LabelStudioSettings(url="http://127.0.0.1:8080/", api_key=expired))
    assert expired not in full_error_text(caught.value)


def test_settings_normalise_the_url_and_the_key() -> None:
    settings = LabelStudioSettings(url="  http://127.0.0.1:8080///  ", api_key="  abc123\n")
    assert settings.url == "http://127.0.0.1:8080"
    assert settings.api_key == "abc123"
    assert LabelStudioSettings(url="https://ls.example/proxy/ls/", api_key="k").url == "https://ls.example/proxy/ls"


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://host", "http://", "http://127.0.0.1:8080/api", ""])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(LabelStudioError, match="Label Studio URL"):
        LabelStudioSettings(url=url, api_key="k")


def test_empty_key_is_refused() -> None:
    with pytest.raises(LabelStudioError, match="personal access token"):
        LabelStudioSettings(url="http://127.0.0.1:8080", api_key="  ")


class FakeSecret:
    def __init__(self, value: str) -> None:
        self.value = value


class FakeSecretsManager:
    """Stands in for FiftyOne Enterprise's secrets manager."""

    values: dict[str, str] = {}

    def get_sync(self, key: str, **kwargs: object) -> FakeSecret | None:
        return FakeSecret(self.values[key]) if key in self.values else None


class BrokenSecretsManager:
    def get_sync(self, key: str, **kwargs: object) -> None:
        raise ConnectionError("secrets service unreachable")


@pytest.fixture
def no_label_studio_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No LABEL_STUDIO_* variables, and a FiftyOne secrets manager with no secrets."""
    import fiftyone.internal.secrets as fo_secrets

    monkeypatch.delenv(ls.URL_VARIABLE, raising=False)
    monkeypatch.delenv(ls.API_KEY_VARIABLE, raising=False)
    monkeypatch.setattr(FakeSecretsManager, "values", {})
    monkeypatch.setattr(fo_secrets, "SecretsManager", FakeSecretsManager, raising=False)
    return monkeypatch


def test_resolution_order_is_arguments_environment_secrets(no_label_studio_env: pytest.MonkeyPatch) -> None:
    FakeSecretsManager.values = {ls.URL_VARIABLE: "http://fiftyone-secret:1", ls.API_KEY_VARIABLE: "from-fiftyone"}
    assert resolve_settings().url == "http://fiftyone-secret:1"
    assert resolve_settings().api_key == "from-fiftyone"

    ctx_secrets = {ls.URL_VARIABLE: "http://ctx-secret:2", ls.API_KEY_VARIABLE: "from-ctx"}
    assert resolve_settings(secrets=ctx_secrets).api_key == "from-ctx"

    no_label_studio_env.setenv(ls.URL_VARIABLE, "http://environment:3/")
    no_label_studio_env.setenv(ls.API_KEY_VARIABLE, "from-env")
    settings = resolve_settings(secrets=ctx_secrets)
    assert (settings.url, settings.api_key) == ("http://environment:3", "from-env")

    settings = resolve_settings(url="http://explicit:4", api_key="explicit", secrets=ctx_secrets)
    assert (settings.url, settings.api_key) == ("http://explicit:4", "explicit")


def test_url_defaults_to_the_local_server(no_label_studio_env: pytest.MonkeyPatch) -> None:
    assert resolve_settings(api_key="k").url == ls.DEFAULT_URL


def test_missing_key_says_how_to_get_one(no_label_studio_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(LabelStudioError, match="Personal Access Token.*LABEL_STUDIO_API_KEY"):
        resolve_settings()


def test_a_broken_secrets_manager_means_no_secret(no_label_studio_env: pytest.MonkeyPatch) -> None:
    import fiftyone.internal.secrets as fo_secrets

    no_label_studio_env.setattr(fo_secrets, "SecretsManager", BrokenSecretsManager)
    assert ls.fiftyone_secret(ls.API_KEY_VARIABLE) is None
    assert resolve_settings(api_key="k").url == ls.DEFAULT_URL


def test_without_a_secrets_manager_fiftyone_secrets_are_environment_variables(
    no_label_studio_env: pytest.MonkeyPatch,
) -> None:
    import fiftyone.internal.secrets as fo_secrets

    no_label_studio_env.delattr(fo_secrets, "SecretsManager")
    no_label_studio_env.setenv(ls.API_KEY_VARIABLE, "in-env")
    assert ls.fiftyone_secret(ls.API_KEY_VARIABLE) == "in-env"
    assert resolve_settings(environ={}).api_key == "in-env"


# ------------------------------------------------------------------------------------- the real server


def _settings(server: LabelStudioServer, kind: str) -> LabelStudioSettings:
    key = server.personal_access_token if kind == ls.PAT else server.legacy_token
    return LabelStudioSettings(url=server.url, api_key=key, timeout=10)


@pytest.mark.labelstudio
@pytest.mark.parametrize("kind", [ls.LEGACY, ls.PAT])
def test_connect_with_either_kind_of_token(label_studio: LabelStudioServer, kind: str) -> None:
    settings = _settings(label_studio, kind)
    assert settings.token_kind == kind
    client = connect(settings)
    assert client.whoami().email == label_studio.username


@pytest.mark.labelstudio
@pytest.mark.parametrize("kind", [ls.LEGACY, ls.PAT])
def test_either_token_creates_lists_and_deletes_a_project(label_studio: LabelStudioServer, kind: str) -> None:
    client = connect(_settings(label_studio, kind))
    title = f"connection test ({kind})"
    project = client.create_project(title, "", IMAGE_CHOICES)
    try:
        assert project.id in [listed.id for listed in client.find_projects(title)]
        assert client.get_project(project.id).title == title
    finally:
        client.delete_project(project.id)
    assert project.id not in [listed.id for listed in client.find_projects(title)]


@pytest.mark.labelstudio
@pytest.mark.parametrize("kind", [ls.LEGACY, ls.PAT])
def test_debug_logs_never_show_the_token(
    label_studio: LabelStudioServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(label_studio, kind)
    connect(settings).list_users()
    assert "Connected to Label Studio" in caplog.text
    assert settings.api_key not in caplog.text


@pytest.mark.labelstudio
def test_connect_reads_the_environment(label_studio: LabelStudioServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ls.URL_VARIABLE, label_studio.url + "/")
    monkeypatch.setenv(ls.API_KEY_VARIABLE, label_studio.personal_access_token)
    assert connect().whoami().email == label_studio.username


@pytest.mark.labelstudio
@pytest.mark.parametrize(
    "wrong_key",
    [
        "0123456789abcdef0123456789abcdef0badc0de",
        make_jwt(refresh_claims(datetime.now(timezone.utc) + timedelta(days=30))),
    ],
    ids=["legacy", "pat"],
)
def test_a_wrong_token_is_refused_without_echoing_it(label_studio: LabelStudioServer, wrong_key: str) -> None:
    with pytest.raises(LabelStudioError) as caught:
        connect(LabelStudioSettings(url=label_studio.url, api_key=wrong_key, timeout=10))
    message = str(caught.value)
    assert "refused" in message and "Account & Settings" in message and "HTTP 401" in message
    assert wrong_key not in full_error_text(caught.value)


@pytest.mark.labelstudio
def test_a_forged_signature_on_the_real_pat_is_refused(label_studio: LabelStudioServer) -> None:
    forged = label_studio.personal_access_token.rsplit(".", 1)[0] + ".Zm9yZ2VkLXNpZ25hdHVyZQ"
    with pytest.raises(LabelStudioError, match="refused the personal access token") as caught:
        connect(LabelStudioSettings(url=label_studio.url, api_key=forged, timeout=10))
    assert forged not in full_error_text(caught.value)
    assert label_studio.personal_access_token not in full_error_text(caught.value)


@pytest.mark.labelstudio
def test_a_url_without_the_api_is_named(label_studio: LabelStudioServer) -> None:
    with pytest.raises(LabelStudioError, match="no Label Studio API .*HTTP 404"):
        connect(LabelStudioSettings(url=label_studio.url + "/not-here", api_key=label_studio.legacy_token))


@pytest.mark.labelstudio
def test_disabled_legacy_tokens_point_to_personal_access_tokens(label_studio: LabelStudioServer) -> None:
    admin = connect(_settings(label_studio, ls.PAT))
    ttl_days = admin.sdk.jwt_settings.get().api_token_ttl_days or 3650
    admin.sdk.jwt_settings.update(api_tokens_enabled=True, legacy_api_tokens_enabled=False, api_token_ttl_days=ttl_days)
    try:
        with pytest.raises(LabelStudioError, match="no longer accepts legacy tokens") as caught:
            connect(_settings(label_studio, ls.LEGACY))
        assert label_studio.legacy_token not in full_error_text(caught.value)
    finally:
        admin.sdk.jwt_settings.update(api_tokens_enabled=True, legacy_api_tokens_enabled=True, api_token_ttl_days=ttl_days)
    connect(_settings(label_studio, ls.LEGACY))


@pytest.mark.parametrize("kind", [ls.LEGACY, ls.PAT])
def test_a_server_that_is_down_fails_fast_with_what_to_do(label_studio_down_url: str, kind: str) -> None:
    key = "0123456789abcdef0123456789abcdef01234567"
    if kind == ls.PAT:
        key = make_jwt(refresh_claims(datetime.now(timezone.utc) + timedelta(days=30)))
    started = time.monotonic()
    with pytest.raises(LabelStudioError) as caught:
        connect(LabelStudioSettings(url=label_studio_down_url, api_key=key, timeout=10))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"is Label Studio running at {label_studio_down_url}?" in message
    assert "scripts/labelstudio start" in message
    assert key not in full_error_text(caught.value)


@pytest.mark.labelstudio
def test_tokens_survive_a_restart_and_down_is_reported_meanwhile(label_studio: LabelStudioServer) -> None:
    """Stop the session's server, see the real URL reported as down, bring it back with the same tokens."""
    stop_label_studio(label_studio)
    try:
        with pytest.raises(LabelStudioError, match="is Label Studio running at"):
            connect(_settings(label_studio, ls.PAT))
    finally:
        restarted = restart_label_studio(label_studio)
    assert restarted.url == label_studio.url
    for kind in (ls.PAT, ls.LEGACY):
        assert connect(_settings(restarted, kind)).whoami().email == label_studio.username
