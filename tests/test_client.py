"""The token-endpoint HTTP client against real servers on loopback."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oauthflow import client
from oauthflow.client import TransportError
from oauthflow.tokens import parse_token_response

REPLY = b'{"access_token": "at", "token_type": "Bearer", "expires_in": 60}'


class _TokenEndpoint(BaseHTTPRequestHandler):
    """A quiet loopback token endpoint; subclasses answer ``do_POST``."""

    def read_request_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, *args: object) -> None:
        pass


class _Dripping(_TokenEndpoint):
    """Headers at once, then the body one byte every 0.3 s: never a 0.5 s silence."""

    def do_POST(self) -> None:
        self.read_request_body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        for byte in REPLY:
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.3)


class _CookieSetting(_TokenEndpoint):
    """Sets a session cookie and remembers the Cookie header of every request."""

    seen: list[str | None] = []

    def do_POST(self) -> None:
        self.read_request_body()
        type(self).seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "session=customer-a; Path=/")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth2/token"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dripping_url() -> Iterator[str]:
    yield from _serve(_Dripping)


@pytest.fixture
def cookie_url() -> Iterator[str]:
    _CookieSetting.seen = []
    yield from _serve(_CookieSetting)


def test_a_reply_dripping_in_slower_than_the_deadline_is_a_timeout(dripping_url, settings):
    """Each byte comes within the 0.5 s timeout, so requests alone would wait for the
    whole 20 s body; the client gives up at twice the timeout and says why."""
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = True
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = True
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        client.post(dripping_url, headers={}, body=b"grant_type=refresh_token", timeout=0.5)
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert elapsed < 3, f"the attempt took {elapsed:.1f} s"


def test_no_cookie_from_one_token_reply_is_sent_with_the_next(cookie_url, settings):
    """One process serves every customer: a token endpoint's cookie must not follow
    another customer's request."""
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = True
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = True
    for _ in range(2):
        reply = client.post(cookie_url, headers={}, body=b"grant_type=refresh_token")
        assert reply.status == 200
    assert _CookieSetting.seen == [None, None]


def test_a_closed_port_is_a_connection_error(settings):
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = True
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = True
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(TransportError) as caught:
            client.post(f"http://127.0.0.1:{port}/token", headers={}, body=b"", timeout=2)
    assert caught.value.kind == "connection"


class _Gzipped(_TokenEndpoint):
    """A valid token reply, gzip-encoded, over 64 KiB once decoded."""

    body = json.dumps({"access_token": "at", "expires_in": 60, "padding": "x" * 140_000}).encode()

    def do_POST(self) -> None:
        self.read_request_body()
        compressed = gzip.compress(self.body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(compressed)))
        self.end_headers()
        self.wfile.write(compressed)


@pytest.fixture
def gzip_url() -> Iterator[str]:
    yield from _serve(_Gzipped)


def test_a_compressed_reply_is_read_whole(gzip_url, settings):
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = True
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = True
    reply = client.post(gzip_url, headers={}, body=b"grant_type=refresh_token")
    assert reply.body == _Gzipped.body
    assert parse_token_response(reply).access_token == "at"
