"""A small, real OAuth 2.0 token endpoint on loopback for the worker tests.

``RotatingTokenProvider`` is a stdlib ``ThreadingHTTPServer`` that answers
``POST /token`` the way a strict production authorization server does:

* ``grant_type=refresh_token`` with a live refresh token returns a new access token
  AND a new refresh token; the spent one is invalidated at once (rotation, RFC 9700
  §4.14), so spending it again gets ``400 {"error": "invalid_grant"}``;
* ``grant_type=client_credentials`` returns a new access token;
* every request is counted and recorded (monotonic arrival time, grant, the refresh
  token it spent, the status it got);
* it can be scripted, one reply per request (``script``) or for every request
  (``answer_all``): ``429`` with ``Retry-After: 7``, ``503``, or ``invalid_grant``.

It reads form and JSON bodies and client credentials from HTTP Basic (URL-encoded or
not) or the body, so every flavor of the portal's chain gets a real answer.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

CLIENT_ID = "worker-test-client"
CLIENT_SECRET = "worker-test-secret"
TOKEN_PATH = "/token"
RETRY_AFTER_SECONDS = 7


class Scripted(StrEnum):
    """A scripted reply, instead of the normal one."""

    RATE_LIMITED = "429"  # 429 with Retry-After: 7
    UNAVAILABLE = "503"
    INVALID_GRANT = "invalid_grant"


@dataclass(frozen=True)
class SeenRequest:
    """One request as the provider saw it and answered it."""

    at: float  # time.monotonic() on arrival
    grant_type: str
    refresh_token: str | None
    status: int
    error: str
    access_token: str | None  # the one issued, if any
    issued_refresh_token: str | None  # the one issued (the rotation), if any


class RotatingTokenProvider:
    """The token endpoint's state: live refresh tokens, issued tokens, the request log.

    Thread-safe: the server answers each request in its own thread, and the state is
    changed under one lock, so a refresh token can be spent only once even when two
    requests race (as a real server's database would make sure).
    """

    def __init__(self, *, access_token_seconds: int = 3600, reply_delay: float = 0.0) -> None:
        self.access_token_seconds = access_token_seconds
        self.reply_delay = reply_delay
        self._lock = threading.Lock()
        self._live_refresh_tokens: set[str] = set()
        self._spent_refresh_tokens: set[str] = set()
        self._script: deque[Scripted] = deque()
        self._answer_all: Scripted | None = None
        self._seen: list[SeenRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- set-up and scripting ----------------------------------------------------------
    def grant(self) -> tuple[str, str]:
        """A new grant, as a code exchange would create: (access token, refresh token)."""
        with self._lock:
            return self._issue()

    def script(self, *replies: Scripted) -> None:
        """Answer the next requests with ``replies``, one each, then normally again."""
        with self._lock:
            self._script.extend(replies)

    def answer_all(self, reply: Scripted | None) -> None:
        """Answer every request with ``reply`` (None: normally again)."""
        with self._lock:
            self._answer_all = reply

    # --- what it saw -------------------------------------------------------------------
    @property
    def requests(self) -> list[SeenRequest]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._seen)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._seen)

    def is_live(self, refresh_token: str) -> bool:
        """True while ``refresh_token`` can still be spent."""
        with self._lock:
            return refresh_token in self._live_refresh_tokens

    @property
    def token_url(self) -> str:
        assert self._server is not None, "the provider is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{TOKEN_PATH}"

    # --- serving -----------------------------------------------------------------------
    @contextmanager
    def running(self) -> Iterator[RotatingTokenProvider]:
        """Serve on 127.0.0.1 on a free port until the block ends."""
        provider = self

        class Handler(_TokenHandler):
            owner = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    # --- the endpoint's logic ----------------------------------------------------------
    def _issue(self) -> tuple[str, str]:
        access = f"at-{secrets.token_urlsafe(12)}"
        refresh = f"rt-{secrets.token_urlsafe(12)}"
        self._live_refresh_tokens.add(refresh)
        return access, refresh

    def answer(
        self, *, arrived: float, fields: dict[str, str], client: tuple[str, str] | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """The reply to one token request: (status, extra headers, JSON body)."""
        grant_type = fields.get("grant_type", "")
        spent = fields.get("refresh_token")
        with self._lock:
            scripted = self._script.popleft() if self._script else self._answer_all
            status, headers, body = self._reply(scripted, grant_type, spent, client)
            self._seen.append(
                SeenRequest(
                    at=arrived,
                    grant_type=grant_type,
                    refresh_token=spent,
                    status=status,
                    error=str(body.get("error", "")),
                    access_token=body.get("access_token"),
                    issued_refresh_token=body.get("refresh_token"),
                )
            )
        return status, headers, body

    def _reply(
        self,
        scripted: Scripted | None,
        grant_type: str,
        spent: str | None,
        client: tuple[str, str] | None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if scripted is Scripted.RATE_LIMITED:
            return 429, {"Retry-After": str(RETRY_AFTER_SECONDS)}, {"error": "slow_down"}
        if scripted is Scripted.UNAVAILABLE:
            return 503, {}, {"error": "temporarily_unavailable"}
        if scripted is Scripted.INVALID_GRANT:
            return 400, {}, _invalid_grant("The refresh token was revoked.")
        if client != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"WWW-Authenticate": 'Basic realm="token"'}, {"error": "invalid_client"}
        if grant_type == "refresh_token":
            if not spent or spent not in self._live_refresh_tokens:
                reused = spent in self._spent_refresh_tokens
                return (
                    400,
                    {},
                    _invalid_grant(
                        "The refresh token was already used."
                        if reused
                        else "Unknown refresh token."
                    ),
                )
            self._live_refresh_tokens.discard(spent)
            self._spent_refresh_tokens.add(spent)
            access, refresh = self._issue()
            return 200, {}, self._token_body(access, refresh)
        if grant_type == "client_credentials":
            access = f"at-{secrets.token_urlsafe(12)}"
            return 200, {}, self._token_body(access, None)
        return 400, {}, {"error": "unsupported_grant_type"}

    def _token_body(self, access: str, refresh: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_seconds,
        }
        if refresh:
            body["refresh_token"] = refresh
        return body


def _invalid_grant(description: str) -> dict[str, str]:
    return {"error": "invalid_grant", "error_description": description}


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError:
        return None
    client_id, _, client_secret = decoded.partition(":")
    # Flavors 1-2 form-encode the pair first (RFC 6749 §2.3.1), 5-6 do not.
    return unquote_plus(client_id), unquote_plus(client_secret)


class _TokenHandler(BaseHTTPRequestHandler):
    """Parses one ``POST /token`` and hands it to the owning provider."""

    owner: RotatingTokenProvider
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        if self.path.split("?")[0] != TOKEN_PATH:
            self._send(404, {}, {"error": "not_found"})
            return
        if raw.lstrip().startswith("{"):
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded = {}
            fields = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        else:
            fields = dict(parse_qsl(raw, keep_blank_values=True))
        client = _basic_credentials(self.headers.get("Authorization", ""))
        if client is None and "client_id" in fields:
            client = (fields["client_id"], fields.get("client_secret", ""))
        if self.owner.reply_delay:
            time.sleep(self.owner.reply_delay)
        status, headers, body = self.owner.answer(arrived=arrived, fields=fields, client=client)
        self._send(status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``RotatingTokenProvider.requests``."""
