"""The connection to Label Studio: settings from arguments, the environment or FiftyOne secrets, and a checked client.

Label Studio 1.23 accepts two kinds of API key, and ``label-studio-sdk`` 2.x tells them apart by their shape:

- a personal access token (PAT), the modern kind: a JWT *refresh* token made under Account & Settings. The SDK
  trades it for short-lived access tokens at ``api/token/refresh/`` and sends those as ``Authorization: Bearer``.
- a legacy token: an opaque string sent as ``Authorization: Token``. The server refuses it unless legacy tokens are
  enabled for the organization.

``connect`` checks the key's shape, makes one cheap call (the current user) and turns every known failure into a
:class:`~active_learning.errors.LabelStudioError` that says what to do. The key never appears in a message, a repr
or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from active_learning.errors import LabelStudioError
from active_learning.label_studio.api import API_KEY_VARIABLE, TOKEN_HINT, URL_VARIABLE

if TYPE_CHECKING:
    from active_learning.label_studio.adapter import LabelStudioClient

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 30.0

PAT = "personal access token"
LEGACY = "legacy token"

@dataclass(frozen=True, repr=False)
class LabelStudioSettings:
    """Where Label Studio runs and the API key to use; the repr and str hide the key.

    Attributes:
        url: the address people open in the browser, e.g. ``http://127.0.0.1:8080`` (no trailing slash).
        api_key: a personal access token or a legacy token.
        timeout: seconds to wait for each HTTP request.
    """

    url: str
    api_key: str
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))
        object.__setattr__(self, "api_key", (self.api_key or "").strip())
        if not self.api_key:
            raise LabelStudioError(f"No Label Studio API key was given: {TOKEN_HINT}.")
        if self.timeout <= 0:
            raise LabelStudioError(f"The Label Studio timeout must be positive seconds, not {self.timeout!r}.")

    @property
    def token_kind(self) -> str:
        """``"personal access token"`` for a JWT, else ``"legacy token"``."""
        return token_kind(self.api_key)

    def __repr__(self) -> str:
        return f"LabelStudioSettings(url={self.url!r}, api_key=<{self.token_kind}, hidden>, timeout={self.timeout!r})"

    __str__ = __repr__


def normalize_url(url: str) -> str:
    """``url`` without surrounding blanks and trailing slashes; an http(s) address with a host, or an error."""
    cleaned = (url or "").strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LabelStudioError(
            f"The Label Studio URL {cleaned!r} is not an http(s) address such as {DEFAULT_URL}: "
            f"pass url or set {URL_VARIABLE}."
        )
    if parts.path.rstrip("/").endswith("/api"):
        raise LabelStudioError(
            f"The Label Studio URL {cleaned!r} ends in /api: give the address you open in the browser, "
            f"such as {DEFAULT_URL}."
        )
    return cleaned


def _b64url_json(segment: str) -> Any:
    """The JSON value in one base64url segment of a JWT, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


def _is_jwt_header(segment: str) -> bool:
    header = _b64url_json(segment)
    return isinstance(header, dict) and "alg" in header


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The unverified claims of a JWT (``header.payload.signature``), or None when ``token`` is not a JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]) or not _is_jwt_header(parts[0]):
        return None
    claims = _b64url_json(parts[1])
    return claims if isinstance(claims, dict) else None


def is_jwt(token: str) -> bool:
    """Whether ``token`` is a JWT, which is how Label Studio's personal access tokens look."""
    return jwt_claims(token) is not None


def token_kind(token: str) -> str:
    """``"personal access token"`` for a JWT, else ``"legacy token"`` (the SDK decides the same way)."""
    return PAT if is_jwt(token) else LEGACY


def check_token_shape(token: str, now: datetime | None = None) -> None:
    """Raise ``LabelStudioError`` for a key that cannot work whatever the server says.

    Catches the truncated token that Label Studio lists (header and payload, no signature), a short-lived access
    token pasted instead of the personal access token, and an expired or non-expiring JWT (the SDK rejects both).
    """
    parts = token.strip().split(".")
    if len(parts) == 2 and _is_jwt_header(parts[0]):
        raise LabelStudioError(
            "The Label Studio API key is a shortened personal access token (Label Studio lists tokens without "
            f"their signature): copy the whole token when you create it, or {TOKEN_HINT}."
        )
    claims = jwt_claims(token)
    if claims is None:
        return
    if claims.get("token_type") == "access":
        raise LabelStudioError(
            "The Label Studio API key is a short-lived access token, not a personal access token: "
            f"{TOKEN_HINT}."
        )
    expires = claims.get("exp")
    if not isinstance(expires, (int, float)):
        raise LabelStudioError(
            f"The Label Studio personal access token has no expiry date and is not valid: {TOKEN_HINT}."
        )
    now = now or datetime.now(timezone.utc)
    expiry = datetime.fromtimestamp(expires, timezone.utc)
    if expiry <= now:
        raise LabelStudioError(
            f"The Label Studio personal access token expired on {expiry:%Y-%m-%d %H:%M} UTC: {TOKEN_HINT}."
        )


def fiftyone_secret(key: str) -> str | None:
    """The FiftyOne secret ``key`` from the deployment's secrets manager, or None when there is none.

    Open-source FiftyOne reads secrets from environment variables; FiftyOne Enterprise has a ``SecretsManager``.
    Any failure to import or ask it means "no secret": this lookup is a convenience, never a requirement.
    """
    try:
        from fiftyone.internal import secrets as fo_secrets
    except Exception:  # fiftyone missing or broken: no secrets
        return None
    provider_class = getattr(fo_secrets, "SecretsManager", None) or getattr(fo_secrets, "EnvSecretProvider", None)
    if provider_class is None:
        return None
    try:
        secret = provider_class().get_sync(key)
        value = secret.value if secret else None
    except Exception as exc:  # a provider that needs credentials or a server we do not have
        logger.debug("FiftyOne secret %s is unavailable: %s", key, type(exc).__name__)
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return str(value) if value else None


def _first_value(
    key: str, explicit: str | None, environ: Mapping[str, str], secrets: Mapping[str, Any] | None
) -> str | None:
    """The first non-empty value of ``key``: explicit, then the environment, then ``secrets``, then FiftyOne's."""
    if explicit:
        return explicit
    if environ.get(key):
        return environ[key]
    if secrets is not None:
        value = secrets.get(key)
        if value:
            return str(value)
    return fiftyone_secret(key)


def resolve_settings(
    url: str | None = None,
    api_key: str | None = None,
    *,
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> LabelStudioSettings:
    """Settings from explicit arguments, else ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY``, else secrets.

    Args:
        url: the Label Studio address; falls back to the sources below, then to ``http://127.0.0.1:8080``.
        api_key: a personal access token or a legacy token.
        secrets: an optional mapping consulted after the environment, e.g. an operator's ``ctx.secrets``.
        environ: the environment to read (``os.environ`` by default).
        timeout: seconds to wait for each HTTP request.

    Raises:
        LabelStudioError: no API key anywhere, or a malformed URL.
    """
    environ = os.environ if environ is None else environ
    resolved_url = _first_value(URL_VARIABLE, url, environ, secrets) or DEFAULT_URL
    resolved_key = _first_value(API_KEY_VARIABLE, api_key, environ, secrets)
    if not resolved_key:
        raise LabelStudioError(f"No Label Studio API key was found: {TOKEN_HINT}.")
    return LabelStudioSettings(url=resolved_url, api_key=resolved_key, timeout=timeout)


def connect(settings: LabelStudioSettings | None = None) -> LabelStudioClient:
    """The Label Studio adapter for ``settings`` (resolved from the environment when None), checked with one call.

    Works with personal access tokens and legacy tokens alike: the SDK picks the scheme from the key's shape.

    Returns:
        A :class:`~active_learning.label_studio.adapter.LabelStudioClient`, the
        :class:`~active_learning.label_studio.api.LabelStudioAPI` the bridge and the loop take.

    Raises:
        LabelStudioError: the server is unreachable, refuses the key, or is not Label Studio.
    """
    from active_learning.label_studio.adapter import LabelStudioClient  # the SDK takes a second to import

    settings = settings if settings is not None else resolve_settings()
    check_token_shape(settings.api_key)
    started = time.monotonic()
    client = LabelStudioClient(settings)
    user = client.check_connection()
    logger.info(
        "Connected to Label Studio at %s as %s with a %s (%.2f s)",
        settings.url, user.email or "?", settings.token_kind, time.monotonic() - started,
    )
    return client
