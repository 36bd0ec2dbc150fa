"""A server that echoes every request back in its error answers must not make us print any part of a token.

The echo server runs on 127.0.0.1 in this process. It hands out an access token for the personal access token
(as Label Studio's ``api/token/refresh/`` does) and answers the other calls with HTTP 400 whose ``detail`` and
``validation_errors`` repeat the request's headers and body, padded past the length at which messages are
shortened, so masking must run before shortening. Nothing of the PAT's payload and signature, nor of the access
token, may appear in the error's message or its whole traceback (no 12-character run of them).
"""

from __future__ import annotations

import json
import secrets
import threading
import traceback
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from active_learning.errors import LabelStudioError
from active_learning.label_studio.connection import LabelStudioSettings, connect
from active_learning.label_studio.projects import ensure_project
from test_label_studio_connection import make_jwt

RUN = 12  # the longest run of a secret's characters allowed in any output


def _token(kind: str) -> str:
    expires = int((datetime.now(timezone.utc) + timedelta(days=1)).timestamp())
    return make_jwt({"token_type": kind, "exp": expires, "jti": secrets.token_hex(16), "user_id": 1},
                    signature=secrets.token_urlsafe(32))


class Echo(BaseHTTPRequestHandler):
    access = ""
    whoami_ok = False

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        if self.path.startswith("/api/token/refresh"):
            self._send(200, {"access": self.access})
            return
        if self.path.startswith("/api/current-user/whoami") and self.whoami_ok:
            self._send(200, {"id": 1, "email": "echo@example.com", "username": "echo"})
            return
        echoed = f"{self.command} {self.path} headers: {dict(self.headers)} body: {body}"
        padding = "This server repeats what it was sent. " * 12
        self._send(400, {"detail": padding + echoed, "validation_errors": {"request": [echoed]}})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _echo


@pytest.fixture
def echo_server() -> Iterator[tuple[str, type[Echo]]]:
    handler = type("EchoHandler", (Echo,), {"access": _token("access"), "whoami_ok": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def printed_runs(text: str, token: str) -> list[str]:
    """The RUN-character pieces of the token's payload and signature (and of a whole opaque token) in ``text``."""
    parts = token.split(".")[1:] if token.count(".") == 2 else [token]
    return [part[i:i + RUN] for part in parts for i in range(len(part) - RUN + 1) if part[i:i + RUN] in text]


def everything_printed(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error) + str(error)


def test_connecting_to_an_echoing_server_prints_nothing_of_the_tokens(echo_server) -> None:
    url, handler = echo_server
    pat = _token("refresh")
    with pytest.raises(LabelStudioError) as raised:
        connect(LabelStudioSettings(url=url, api_key=pat))
    text = everything_printed(raised.value)
    assert "HTTP 400" in text and "This server repeats" in text, "the server's explanation is shown"
    assert printed_runs(text, pat) == [] and printed_runs(text, handler.access) == []


@pytest.mark.parametrize("kind", ["personal access token", "legacy token"])
def test_calls_after_connecting_print_nothing_of_the_tokens(echo_server, dataset_name, kind: str) -> None:
    url, handler = echo_server
    handler.whoami_ok = True
    key = _token("refresh") if kind == "personal access token" else secrets.token_hex(20)
    client = connect(LabelStudioSettings(url=url, api_key=key))
    with pytest.raises(LabelStudioError) as raised:
        ensure_project(client, "echo project", ["a", "b"], dataset_name)
    text = everything_printed(raised.value)
    assert "HTTP 400" in text and "This server repeats" in text
    assert printed_runs(text, key) == [] and printed_runs(text, handler.access) == []


@pytest.mark.parametrize("start", [0, 150, 580, 595, 640])
def test_masking_runs_before_shortening_wherever_the_token_falls(start: int) -> None:
    """The old bug: the message was cut to 200 characters first, so a token straddling the cut never matched."""
    from active_learning.label_studio.api import DETAIL_LIMIT, secret_fragments, server_detail

    pat, access = _token("refresh"), _token("access")
    echoed = "x" * start + f" Authorization: Bearer {access} refresh={pat} " + "y" * 300
    text = server_detail({"detail": echoed}, secret_fragments(pat, access))
    assert printed_runs(text, pat) == [] and printed_runs(text, access) == []
    assert len(text) <= DETAIL_LIMIT + len(" [...]")
    if start < 400:
        assert "***" in text, "masked where it stood"
