"""A lean asyncio HTTP/1.1 server for the fake token endpoint: keep-alive, pipelining,
``Content-Length`` bodies (no chunked uploads: token requests never use them), replies
in order per connection, each after the responder's ``reply_delay`` (seconds) waited
with ``asyncio.sleep`` so no reply holds up another. Deliberately small, so the endpoint
is never what a benchmark measures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote_plus

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

Reply = tuple[int, dict[str, str], dict[str, Any]]  # (HTTP status, extra headers, JSON body)


class Responder(Protocol):
    """What the server serves: a reply per request, after ``reply_delay`` seconds."""

    reply_delay: float

    def received(self, request: HTTPRequest) -> None:
        """Called as soon as ``request`` is read, before its delay."""

    def respond(self, request: HTTPRequest) -> Reply:
        """The reply, once the delay has passed."""


@dataclass(frozen=True)
class HTTPRequest:
    """One parsed request; header names lower-case; ``arrived`` is ``time.monotonic()``."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    arrived: float


def request_fields(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The body's fields: JSON when it says or looks so, else form-encoded."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if content_type.endswith("json") or text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an HTTP Basic header (RFC 7617), or None."""
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError:
        return None
    client_id, _, client_secret = decoded.partition(":")
    # Flavors 1-2 form-encode the pair first (RFC 6749 §2.3.1), 5-6 do not.
    return unquote_plus(client_id), unquote_plus(client_secret)


def http_response(
    status: int, headers: dict[str, str], body: dict[str, Any], *, close: bool
) -> bytes:
    """One HTTP/1.1 response with a JSON body, as bytes."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\nCache-Control: no-store\r\n"
        f"{extra}Content-Length: {len(payload)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("latin-1") + payload


class BadRequest(Exception):
    """A request the server refuses: ``status`` and an error code."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def parse_head(head: bytes) -> tuple[str, str, dict[str, str], int]:
    """``(method, target, headers, content length)`` of a request head (no blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest(400, "bad_request_line") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest(411, "length_required")  # token requests never chunk
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        raise BadRequest(400, "bad_content_length") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise BadRequest(413, "body_too_large")
    return method, target, headers, length


class EndpointProtocol(asyncio.Protocol):
    """One client connection. Requests are parsed as they arrive and answered in order
    by one task per connection that waits out ``reply_delay`` with ``asyncio.sleep``
    (other connections go on meanwhile). A request whose client left is still answered
    by the endpoint (its token spent), as a real server would."""

    def __init__(self, endpoint: Responder, open_set: set[EndpointProtocol]):
        self.endpoint = endpoint
        self.open_set = open_set
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.pending: asyncio.Queue[HTTPRequest | None] = asyncio.Queue()
        self.replier: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a TCP server
        self.transport = transport
        self.open_set.add(self)
        self.replier = asyncio.get_running_loop().create_task(self._reply_in_order())

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_set.discard(self)
        self.pending.put_nowait(None)  # the replier answers what is queued, then ends

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self._refuse(BadRequest(431, "headers_too_large"))
                return
            try:
                method, target, headers, length = parse_head(bytes(self.buffer[:end]))
            except BadRequest as exc:
                self._refuse(exc)
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            request = HTTPRequest(method, target, headers, body, time.monotonic())
            self.endpoint.received(request)
            self.pending.put_nowait(request)

    def _refuse(self, exc: BadRequest) -> None:
        self.buffer.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(http_response(exc.status, {}, {"error": exc.error}, close=True))
            self.transport.close()

    async def _reply_in_order(self) -> None:
        while (request := await self.pending.get()) is not None:
            wait = request.arrived + self.endpoint.reply_delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            status, headers, body = self.endpoint.respond(request)
            close = request.headers.get("connection", "").lower() == "close"
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(http_response(status, headers, body, close=close))
                if close:
                    self.transport.close()


async def serve(sock: socket.socket, endpoint: Responder, stop: asyncio.Event) -> None:
    """Serve ``endpoint`` on the listening ``sock`` until ``stop`` is set; then close
    every client connection (kept-alive ones would otherwise linger)."""
    loop = asyncio.get_running_loop()
    open_set: set[EndpointProtocol] = set()
    server = await loop.create_server(lambda: EndpointProtocol(endpoint, open_set), sock=sock)
    await stop.wait()
    server.close()
    for protocol in list(open_set):
        if protocol.transport is not None:
            protocol.transport.close()
    await asyncio.sleep(0)  # let the closed connections' repliers end


def loopback_listener() -> socket.socket:
    """A listening TCP socket on 127.0.0.1, on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class ThreadServer:
    """``serve`` on an event loop in a daemon thread of this process."""

    def __init__(self, endpoint: Responder, sock: socket.socket) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete,
            args=(self._main(endpoint, sock),),
            name="fake-token-endpoint",
            daemon=True,
        )
        self.started = threading.Event()
        self.thread.start()
        self.started.wait(10)

    async def _main(self, endpoint: Responder, sock: socket.socket) -> None:
        self.started.set()
        await serve(sock, endpoint, self.stop_event)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=5)
        self.loop.close()


def serve_in_process(sock: socket.socket, endpoint: Responder) -> None:
    """A (forked) process's entry point: serve ``endpoint`` on ``sock`` until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    asyncio.run(serve(sock, endpoint, asyncio.Event()))
