"""The fake rotating token endpoint: one implementation for the benchmark and the worker tests.

A real HTTP/1.1 server on 127.0.0.1 (asyncio; keep-alive and pipelining; ``Content-Length``
bodies) that answers ``POST /token`` the way a strict authorization server does:

* ``grant_type=refresh_token`` with a live refresh token returns a new access token AND a
  new refresh token; the spent one is invalidated at once (rotation, RFC 9700 §4.14).
  Presenting a spent refresh token again is a *double spend*: it is counted and gets
  ``400 {"error": "invalid_grant"}``;
* ``grant_type=client_credentials`` returns a new access token; other grants (codes
  included: it issues none) get ``unsupported_grant_type``;
* ``reply_delay`` (seconds) delays every reply without blocking any other: each
  connection's replies wait with ``asyncio.sleep``, so a thousand requests in flight
  take one delay, not a thousand (a provider answering in 200 ms, not 1 ms);
* the worker tests can script replies (``429`` with ``Retry-After: 7``, ``503``,
  ``invalid_grant``), read every request it saw, and ask whether a token is live;
* ``GET /_bench/stats`` answers its counts (``EndpointStats``) as JSON, so a process that
  forked it can read them.

Two ways to run it: ``RotatingTokenEndpoint.running()`` serves from a thread of this
process (the worker tests read its state directly); ``EndpointProcess`` serves from a forked
process of its own (the benchmark: it shares no GIL with anything measured).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import requests

from benchmarks.http_server import (
    HTTPRequest,
    Reply,
    ThreadServer,
    basic_credentials,
    loopback_listener,
    request_fields,
    serve_in_process,
)

TOKEN_PATH = "/token"  # noqa: S105 - a URL path
STATS_PATH = "/_bench/stats"
RETRY_AFTER_SECONDS = 7


class Scripted(StrEnum):
    """A scripted reply, instead of the normal one."""

    RATE_LIMITED = "429"  # 429 with Retry-After: 7
    UNAVAILABLE = "503"
    INVALID_GRANT = "invalid_grant"


@dataclass(frozen=True)
class SeenRequest:
    """One token request as the endpoint saw it and answered it."""

    at: float  # time.monotonic() on arrival
    grant_type: str
    refresh_token: str | None  # the one it spent, if any
    status: int
    error: str
    access_token: str | None  # the one issued, if any
    issued_refresh_token: str | None  # the one issued (the rotation), if any


@dataclass(frozen=True)
class EndpointStats:
    """What the endpoint has seen since it started (counts)."""

    requests: int = 0  # token requests (POSTs), any grant
    refresh_requests: int = 0  # grant_type=refresh_token
    double_spends: int = 0  # spent refresh tokens presented again
    tokens_seen: int = 0  # distinct refresh tokens spent
    in_flight_peak: int = 0  # the most token requests waiting for their reply at once

    def minus(self, earlier: EndpointStats) -> EndpointStats:
        """The counts between ``earlier`` and these."""
        return EndpointStats(
            requests=self.requests - earlier.requests,
            refresh_requests=self.refresh_requests - earlier.refresh_requests,
            double_spends=self.double_spends - earlier.double_spends,
            tokens_seen=self.tokens_seen - earlier.tokens_seen,
            in_flight_peak=self.in_flight_peak,  # a peak, not a count: since the reset
        )


def _invalid_grant(description: str) -> dict[str, str]:
    return {"error": "invalid_grant", "error_description": description}


class RotatingTokenEndpoint:
    """The endpoint's state and answers; thread-safe (one lock), so a refresh token can be
    spent only once even when two requests race, as a real server's database ensures.

    ``lifetime``: the ``expires_in`` of every access token (seconds). ``client``: the
    ``(client_id, client_secret)`` it requires (None: any). ``accept_unknown``: refresh
    tokens it did not issue (rows a benchmark seeded) are live until spent; otherwise
    they get ``invalid_grant``. ``record``: keep every request for ``requests`` (the
    benchmark's millions are only counted).
    """

    def __init__(
        self,
        *,
        lifetime: int = 3600,
        reply_delay: float = 0.0,
        client: tuple[str, str] | None = None,
        accept_unknown: bool = False,
        record: bool = True,
    ) -> None:
        self.lifetime = lifetime
        self.reply_delay = reply_delay  # seconds; read at every reply, so tests may change it
        self.client = client
        self.accept_unknown = accept_unknown
        self.record = record
        self._lock = threading.Lock()
        self._prefix = secrets.token_hex(4)
        self._issued = 0
        self._live: set[str] = set()
        self._spent: set[str] = set()
        self._script: deque[Scripted] = deque()
        self._answer_all: Scripted | None = None
        self._seen: list[SeenRequest] = []
        self._requests = 0
        self._refresh_requests = 0
        self._double_spends = 0
        self._in_flight = 0
        self._in_flight_peak = 0
        self.port = 0

    # --- set-up and scripting ---------------------------------------------------------
    def grant(self) -> tuple[str, str]:
        """A new grant, as a code exchange would create: (access token, refresh token)."""
        with self._lock:
            return self._new_token("at"), self._new_refresh_token()

    def script(self, *replies: Scripted) -> None:
        """Answer the next requests with ``replies``, one each, then normally again."""
        with self._lock:
            self._script.extend(replies)

    def answer_all(self, reply: Scripted | None) -> None:
        """Answer every request with ``reply`` (None: normally again)."""
        with self._lock:
            self._answer_all = reply

    # --- what it saw ------------------------------------------------------------------
    @property
    def requests(self) -> list[SeenRequest]:
        """Every token request so far, in arrival order (when ``record``)."""
        with self._lock:
            return list(self._seen)

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._requests

    def is_live(self, refresh_token: str) -> bool:
        """True while ``refresh_token`` can still be spent."""
        with self._lock:
            return refresh_token in self._live

    def stats(self) -> EndpointStats:
        with self._lock:
            return EndpointStats(
                requests=self._requests,
                refresh_requests=self._refresh_requests,
                double_spends=self._double_spends,
                tokens_seen=len(self._spent),
                in_flight_peak=self._in_flight_peak,
            )

    def reset_peak(self) -> None:
        """Start ``in_flight_peak`` again from the requests in flight now."""
        with self._lock:
            self._in_flight_peak = self._in_flight

    @property
    def token_url(self) -> str:
        if not self.port:
            raise RuntimeError("the endpoint is not running")
        return f"http://127.0.0.1:{self.port}{TOKEN_PATH}"

    # --- the answers ------------------------------------------------------------------
    def _new_token(self, kind: str) -> str:
        self._issued += 1
        return f"{kind}-{self._prefix}-{self._issued}"

    def _new_refresh_token(self) -> str:
        token = self._new_token("rt")
        self._live.add(token)
        return token

    def answer(
        self, *, arrived: float, fields: dict[str, str], client: tuple[str, str] | None
    ) -> Reply:
        """The reply to one token request (form ``fields``, Basic or body ``client``)."""
        grant_type = fields.get("grant_type", "")
        spent = fields.get("refresh_token")
        with self._lock:
            self._requests += 1
            scripted = self._script.popleft() if self._script else self._answer_all
            status, headers, body = self._reply(scripted, grant_type, spent, client)
            if self.record:
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
    ) -> Reply:
        if scripted is Scripted.RATE_LIMITED:
            return 429, {"Retry-After": str(RETRY_AFTER_SECONDS)}, {"error": "slow_down"}
        if scripted is Scripted.UNAVAILABLE:
            return 503, {}, {"error": "temporarily_unavailable"}
        if scripted is Scripted.INVALID_GRANT:
            return 400, {}, _invalid_grant("The refresh token was revoked.")
        if self.client is not None and client != self.client:
            return 401, {"WWW-Authenticate": 'Basic realm="token"'}, {"error": "invalid_client"}
        if grant_type == "refresh_token":
            return self._refresh(spent)
        if grant_type == "client_credentials":
            return 200, {}, self._token_body(self._new_token("at"), None)
        return 400, {}, {"error": "unsupported_grant_type"}

    def _refresh(self, spent: str | None) -> Reply:
        self._refresh_requests += 1
        if not spent:
            return 400, {}, {"error": "invalid_request", "error_description": "no refresh_token"}
        if spent in self._spent:
            self._double_spends += 1
            return 400, {}, _invalid_grant("The refresh token was already used.")
        if spent not in self._live and not self.accept_unknown:
            return 400, {}, _invalid_grant("Unknown refresh token.")
        self._live.discard(spent)
        self._spent.add(spent)
        return 200, {}, self._token_body(self._new_token("at"), self._new_refresh_token())

    def _token_body(self, access: str, refresh: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }
        if refresh:
            body["refresh_token"] = refresh
        return body

    def received(self, request: HTTPRequest) -> None:
        """Count ``request`` in flight until ``respond`` answers it."""
        if request.method == "POST":
            with self._lock:
                self._in_flight += 1
                self._in_flight_peak = max(self._in_flight_peak, self._in_flight)

    def respond(self, request: HTTPRequest) -> Reply:
        """Route one HTTP request: ``POST /token``, or ``GET /_bench/stats`` (its
        ``?reset-peak`` starts the in-flight peak again after reading it)."""
        path, _, query = request.target.partition("?")
        if request.method == "GET" and path == STATS_PATH:
            stats = self.stats()
            if query == "reset-peak":
                self.reset_peak()
            return 200, {}, asdict(stats)
        if request.method != "POST":
            return 405, {}, {"error": "method_not_allowed"}
        with self._lock:
            self._in_flight = max(self._in_flight - 1, 0)  # 0: called without received()
        if path != TOKEN_PATH:
            return 404, {}, {"error": "not_found"}
        fields = request_fields(request.headers, request.body)
        client = basic_credentials(request.headers.get("authorization", ""))
        if client is None and "client_id" in fields:
            client = (fields["client_id"], fields.get("client_secret", ""))
        return self.answer(arrived=request.arrived, fields=fields, client=client)

    # --- serving from a thread (the worker tests) --------------------------------------
    @contextlib.contextmanager
    def running(self) -> Iterator[RotatingTokenEndpoint]:
        """Serve on 127.0.0.1, on a free port, from a thread until the block ends."""
        sock = loopback_listener()
        self.port = sock.getsockname()[1]
        server = ThreadServer(self, sock)
        try:
            yield self
        finally:
            server.stop()


class EndpointProcess:
    """``endpoint`` served by a forked process of its own; a context manager.

    ``url`` is its token URL; ``stats()`` asks it for its counts over HTTP. Fork, not
    spawn: the child only runs asyncio; callers close database connections first.
    """

    def __init__(self, endpoint: RotatingTokenEndpoint) -> None:
        self.endpoint = endpoint
        self.process: multiprocessing.process.BaseProcess | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{TOKEN_PATH}"

    def start(self, *, ready_timeout: float = 10.0) -> EndpointProcess:
        sock = loopback_listener()
        self.port = sock.getsockname()[1]
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=serve_in_process, args=(sock, self.endpoint), daemon=True
        )
        self.process.start()
        sock.close()  # the child holds the listener now
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                self.stats()
                return self
            except requests.RequestException:
                if time.monotonic() > deadline or not self.process.is_alive():
                    self.stop()
                    raise
                time.sleep(0.05)

    def stats(self, *, reset_peak: bool = False) -> EndpointStats:
        """The endpoint's counts; ``reset_peak``: then start its in-flight peak again."""
        query = "?reset-peak" if reset_peak else ""
        reply = requests.get(f"http://127.0.0.1:{self.port}{STATS_PATH}{query}", timeout=5)
        reply.raise_for_status()
        return EndpointStats(**reply.json())

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        self.process = None

    def __enter__(self) -> EndpointProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
