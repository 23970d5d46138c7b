"""A local mock token endpoint that prints every request it receives.

This implements the troubleshooting guide's "Mocking a token exchange endpoint" recipe
(a Smocker container that answers every token request with a fixed reply, exposed with
ngrok) without a container or a tunnel: the portal's workers and this server run on the
same machine, so the admin points an App's token URL at
``http://127.0.0.1:<port>/oauth2/token`` (any path is accepted; the portal accepts
``http://`` token URLs on loopback when ``OAUTH_ALLOW_HTTP_LOOPBACK`` is on) and watches
the requests arrive. As in the guide, answering with a non-2xx status (e.g. 500) makes the
portal try, and this server print, all six flavors.

Requests are printed as received, credentials included (no redaction, unlike
:mod:`oauthflow.redaction`): it is a debugging tool for the admin's own *test*
credentials, and the point is to see the exact bytes. A one-line warning says so at start.

``guess_flavor`` names the flavor (:mod:`oauthflow.flavors`) a request matches;
``build_server`` binds the server (port 0 picks a free port; read ``server_address``) and
``serve`` runs it until ``max_requests`` requests or Ctrl-C.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl

from oauthflow.flavors import (
    FLAVORS,
    FLAVORS_BY_NUMBER,
    BodyFormat,
    CredentialPlacement,
)


class Output(Protocol):
    """Where the server prints what it received: a stream, or a command's stdout."""

    def write(self, text: str, /) -> object: ...
    def flush(self) -> object: ...


# The guide's sample token reply (the smock's body), sent for 2xx statuses by default.
SAMPLE_TOKEN_REPLY = {
    "access_token": "my-access-token",
    "token_type": "bearer",
    "expires_in": 60,
    "example_parameter": "example_value",
    "refresh_token": "my-refresh-token",
}
# Sent for every other status by default (RFC 6749 §5.2 error shape).
SAMPLE_ERROR_REPLY = {"error": "server_error"}
DEFAULT_HOST = "127.0.0.1"
DEFAULT_CONTENT_TYPE = "application/json"
MAX_BODY_BYTES = 1024 * 1024  # larger request bodies are refused with 413, unread
STATUSES_WITHOUT_BODY = frozenset({204, 304})
CREDENTIALS_WARNING = (
    "WARNING: this prints requests exactly as received, client secrets and codes "
    "included; use it only with test credentials."
)

# What form-encoding (``quote_plus(value, safe="")``) can produce: unreserved characters,
# ``+`` for spaces and ``%XX`` escapes. Basic credentials made only of these may have been
# URL-encoded first (flavors 1-2); anything else was sent raw (flavors 5-6).
_FORM_ENCODED = re.compile(r"(?:[A-Za-z0-9_.~-]|\+|%[0-9A-Fa-f]{2})*")
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


class RemoteHostRefused(ValueError):
    """The bind address is not loopback and ``allow_remote`` was not given."""


@dataclass(frozen=True)
class MockReply:
    """What the endpoint answers to every request: ``status``, ``body`` bytes, type."""

    status: int
    body: bytes
    content_type: str = DEFAULT_CONTENT_TYPE

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"status must be a final HTTP status, 200-599 (got {self.status})")
        if "\r" in self.content_type or "\n" in self.content_type:
            raise ValueError("content type must be a single line")


def default_reply_body(status: int) -> str:
    """The guide's sample token reply for a 2xx ``status``, else ``{"error": "server_error"}``."""
    return json.dumps(SAMPLE_TOKEN_REPLY if 200 <= status < 300 else SAMPLE_ERROR_REPLY)


def mock_reply_build(
    *, status: int, body: str | None = None, content_type: str = DEFAULT_CONTENT_TYPE
) -> MockReply:
    """A ``MockReply`` with ``body`` (default: ``default_reply_body(status)``), UTF-8."""
    text = default_reply_body(status) if body is None else body
    return MockReply(status=status, body=text.encode("utf-8"), content_type=content_type)


# --- flavor guessing (pure) -----------------------------------------------------------


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The ``(id, secret)`` pair of a ``Basic`` Authorization header, as decoded bytes give it.

    ``None`` when there is no such header or it does not decode to ``id:secret``.
    """
    value = headers.get("authorization", "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        return None
    return client_id, client_secret


def _body_format(headers: Mapping[str, str], body: bytes) -> BodyFormat | None:
    """Form or JSON, from the Content-Type; sniffed from the body when there is none."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return BodyFormat.FORM
    if content_type == "application/json" or content_type.endswith("+json"):
        return BodyFormat.JSON
    if content_type:
        return None
    return BodyFormat.JSON if body.lstrip().startswith(b"{") else BodyFormat.FORM


def _body_fields(body_format: BodyFormat, body: bytes) -> dict[str, object] | None:
    """The body's top-level fields, or ``None`` when it does not parse as ``body_format``."""
    text = body.decode("utf-8", errors="replace")
    if body_format is BodyFormat.JSON:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return dict(parse_qsl(text, keep_blank_values=True))


def guess_flavor(headers: Mapping[str, str], body: bytes) -> int | None:
    """The number (1-6, :data:`oauthflow.flavors.FLAVORS`) of the flavor a request matches.

    ``headers`` are matched case-insensitively. Credentials: a ``Basic`` Authorization
    header whose ID and secret look form-encoded is flavor 1/2, one with characters
    form-encoding would have escaped (space, ``/``, ``:`` in the secret, ...) is 5/6;
    ``client_id`` and ``client_secret`` in the body is 3/4. Body: form or JSON by
    Content-Type (sniffed when absent). Credentials that need no encoding give the same
    bytes under 1 and 5 (2 and 6); those are reported as 1 (2), the flavor tried first.
    ``None`` when the request matches no flavor: no credentials, credentials in both
    places, another auth scheme, an undecodable header, or a body that is neither.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    body_format = _body_format(lowered, body)
    if body_format is None:
        return None
    fields = _body_fields(body_format, body)
    if fields is None:
        return None
    if "authorization" in lowered:
        pair = _basic_credentials(lowered)
        if pair is None or "client_secret" in fields:
            return None
        looks_encoded = all(_FORM_ENCODED.fullmatch(part) for part in pair)
        placement = (
            CredentialPlacement.BASIC_ENCODED if looks_encoded else CredentialPlacement.BASIC_RAW
        )
    elif "client_id" in fields and "client_secret" in fields:
        placement = CredentialPlacement.BODY
    else:
        return None
    for flavor in FLAVORS:
        if flavor.credentials is placement and flavor.body_format is body_format:
            return flavor.number
    return None  # pragma: no cover - every placement/format pair is a flavor


def basic_flavors_coincide(headers: Mapping[str, str]) -> bool:
    """True when the Basic credentials need no encoding, so flavors 1/5 (2/6) send the same."""
    lowered = {name.lower(): value for name, value in headers.items()}
    pair = _basic_credentials(lowered)
    return pair is not None and all(_UNRESERVED.fullmatch(part) for part in pair)


def describe_flavor(headers: Mapping[str, str], body: bytes) -> str:
    """A one-line human description of ``guess_flavor``'s answer."""
    number = guess_flavor(headers, body)
    if number is None:
        return "matches none of the six flavors"
    text = FLAVORS_BY_NUMBER[number].label
    if number in (1, 2) and basic_flavors_coincide(headers):
        text += f" (#{number + 4} sends the same bytes for these credentials)"
    return text


# --- the server -----------------------------------------------------------------------


def check_host(host: str, *, allow_remote: bool = False) -> None:
    """Refuse a non-loopback bind address unless ``allow_remote``.

    Raises ``RemoteHostRefused`` saying why: the server prints credentials and answers
    anyone who can reach it. Host names other than ``localhost`` count as non-loopback.
    """
    if allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise RemoteHostRefused(
            f"Refusing to listen on {host}: it is not a loopback address, so other machines "
            "could reach this endpoint, which answers anyone and prints what they send, "
            "credentials included. Use 127.0.0.1 or ::1, or pass --allow-remote if that is "
            "really what you want."
        )


class _BodyTooLarge(Exception):
    pass


class MockTokenServer(ThreadingHTTPServer):
    """A threading HTTP server answering every request with ``reply`` and printing it to ``out``.

    ``max_requests`` (``None``: unlimited) stops ``serve_forever`` after that many requests.
    """

    daemon_threads = False  # server_close() waits for in-flight requests to finish printing

    def __init__(
        self,
        address: tuple[str, int],
        *,
        reply: MockReply,
        out: Output,
        max_requests: int | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.reply = reply
        self.out = out
        self.max_requests = max_requests
        self.requests_seen = 0
        self._count_lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._stopping = False
        super().__init__((address[0].strip("[]"), address[1]), MockTokenHandler)

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8080``."""
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def request_number(self) -> int:
        """Count one more request and return its number (1-based)."""
        with self._count_lock:
            self.requests_seen += 1
            return self.requests_seen

    def emit(self, text: str) -> None:
        """Write ``text`` to ``out`` in one piece (requests arrive on several threads)."""
        with self._out_lock:
            self.out.write(text)
            self.out.flush()

    def request_done(self, number: int) -> None:
        """Stop serving once request ``number`` reaches ``max_requests``."""
        if self.max_requests is None or number < self.max_requests:
            return
        with self._count_lock:
            if self._stopping:
                return
            self._stopping = True
        # shutdown() waits for serve_forever() to return; not from a handler thread.
        threading.Thread(target=self.shutdown, daemon=True).start()


class MockTokenHandler(BaseHTTPRequestHandler):
    """Prints the request (headers, body, flavor guess) and answers with the server's reply."""

    server: MockTokenServer
    server_version = "mock-token-endpoint"
    sys_version = ""

    def _handle_any(self) -> None:
        number = self.server.request_number()
        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S%z")
        lines = [f"#{number} {stamp} {self.command} {self.path}"]
        lines += [f"    {name}: {value}" for name, value in self.headers.items()]
        try:
            body = self._read_body()
        except _BodyTooLarge:
            lines.append(f"    body: larger than {MAX_BODY_BYTES} bytes, not read")
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"", lines, number)
            return
        except ValueError as exc:
            lines.append(f"    body: unreadable ({exc})")
            self._answer(HTTPStatus.BAD_REQUEST, b"", lines, number)
            return
        headers = dict(self.headers.items())
        pair = _basic_credentials({name.lower(): value for name, value in headers.items()})
        if pair is not None:
            lines.append(f"  Basic credentials decoded: {pair[0]}:{pair[1]}")
        if body:
            lines.append(f"  body ({len(body)} bytes):")
            lines.append(body.decode("utf-8", errors="backslashreplace"))
        else:
            lines.append("  body: empty")
        lines.append(f"  flavor: {describe_flavor(headers, body)}")
        reply = self.server.reply
        self._answer(reply.status, reply.body, lines, number, reply.content_type)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle_any

    def _answer(
        self,
        status: int,
        body: bytes,
        lines: list[str],
        number: int,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> None:
        if status in STATUSES_WITHOUT_BODY:
            body = b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)
            lines.append(f"  -> answered {status} ({len(body)} bytes)")
        except OSError as exc:
            lines.append(f"  -> could not answer: {exc}")
        self.close_connection = True
        self.server.emit("\n".join(lines) + "\n\n")
        self.server.request_done(number)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default one-line access log on stderr; requests are printed above."""

    def log_error(self, format: str, *args: object) -> None:
        self.server.emit(f"! {self.address_string()}: {format % args}\n")


def build_server(
    *,
    reply: MockReply,
    out: Output,
    host: str = DEFAULT_HOST,
    port: int = 0,
    max_requests: int | None = None,
    allow_remote: bool = False,
) -> MockTokenServer:
    """Bind a ``MockTokenServer`` on ``host``:``port`` (0: a free port) without serving yet.

    Raises ``RemoteHostRefused`` for a non-loopback ``host`` without ``allow_remote``,
    ``ValueError`` for a ``max_requests`` below 1, and ``OSError`` when binding fails.
    """
    check_host(host, allow_remote=allow_remote)
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1 (got {max_requests})")
    return MockTokenServer((host, port), reply=reply, out=out, max_requests=max_requests)


def announce(server: MockTokenServer) -> None:
    """Print where the server listens, what it answers, and the credentials warning."""
    reply = server.reply
    limit = (
        f"stops after {server.max_requests} request(s) or Ctrl-C"
        if server.max_requests
        else "Ctrl-C stops it"
    )
    note = ""
    if "json" in reply.content_type.lower() and reply.body:
        try:
            json.loads(reply.body)
        except ValueError:
            note = "Note: the reply body is not valid JSON; it is sent as given.\n"
    server.emit(
        f"{CREDENTIALS_WARNING}\n"
        f"Mock token endpoint listening on {server.url}/oauth2/token (any path); {limit}.\n"
        f"Answering {reply.status} ({reply.content_type}): "
        f"{reply.body.decode('utf-8', errors='backslashreplace')}\n{note}\n"
    )


def serve(server: MockTokenServer) -> int:
    """Serve until ``max_requests`` or Ctrl-C, close the socket, return the request count."""
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        server.emit("Interrupted.\n")
    finally:
        server.server_close()
    server.emit(f"Stopped after {server.requests_seen} request(s).\n")
    return server.requests_seen
