"""Renewal throughput benchmark: ``manage.py bench_renewal`` (a command, not a timed test).

Measures, in one run, against PostgreSQL and Redis (never SQLite or eager tasks):

* renewals per second through the real Celery path (``sweep_renewals`` enqueues, real
  ``celery worker`` processes renew) with 1 and with 2 worker processes;
* the ceiling: as many raw ``requests.Session().post`` calls per second, from one
  process, to the same local token endpoint; and our throughput as a share of it;
* token requests per renewal (must be 1.00) and double spends (must be 0), counted by
  the token endpoint itself and cross-checked against the token-request log;
* the sweep's query plan and time at a small and a large table (must use the partial
  index ``config_variable_due``; time roughly flat in total rows).

The token endpoint is a real HTTP/1.1 server on 127.0.0.1 in its own process (not
sharing a GIL with anything measured). It answers every refresh with a new access token
and a *rotated* refresh token, remembers every refresh token presented, and answers
``invalid_grant`` to a second presentation, counting it as a double spend, as servers
that detect reuse do (RFC 9700 §4.14).

Every row the benchmark writes belongs to the App with slug ``BENCH_SLUG`` (its
Connections, ConfigVariables, token requests and transitions) or to Customers named
``BENCH_SLUG …``; they are deleted before and after a run, nothing else is touched.
Because the sweep is global, the database must hold no other ConfigVariables and the
broker's queues must be empty with no other worker listening: use a dedicated database
and Redis DB, e.g.::

    createdb -h 127.0.0.1 -U postgres bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    python manage.py bench_renewal --n 2000 --rows-large 1000000

Units: times in seconds unless a name ends in ``_ms``; rates per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import multiprocessing
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError
from django.db import connection as db_connection
from django.db import connections as db_connections
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from connections.models import (
    App,
    ConfigVariable,
    Connection,
    Customer,
    Status,
    StatusTransition,
)
from oauthflow.flavors import FLAVORS_BY_NUMBER, build_token_request
from oauthflow.models import TokenRequest, TokenRequestKind
from oauthflow.renewal import due_queryset

BENCH_SLUG = "bench-renewal"
BENCH_CLIENT_ID = "bench-client"
BENCH_CLIENT_SECRET = "bench-secret"  # noqa: S105 - a fake credential for a local endpoint
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path
STATS_PATH = "/_bench/stats"
TOKEN_LIFETIME = 3600  # seconds: renewed rows are not due again during a run
WORKER_QUEUES = ("refresh", "exchange")
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
TARGET_SHARE_OF_CEILING = 0.5  # per worker process
POLL_INTERVAL = 0.25  # seconds between progress queries during a renewal run
SWEEP_GRID_CUSTOMERS = 1000  # sweep rows are (customer x connection) pairs: unique


class BenchRefused(Exception):
    """The environment is not fit for the benchmark; the message says what to change."""


# --- The local token endpoint ---------------------------------------------------------


@dataclass(frozen=True)
class EndpointStats:
    """What the token endpoint has seen so far (counts since it started)."""

    requests: int = 0  # token requests (POSTs), any grant
    refresh_requests: int = 0  # grant_type=refresh_token
    double_spends: int = 0  # refresh tokens presented a second (or later) time
    tokens_seen: int = 0  # distinct refresh tokens presented

    def minus(self, earlier: EndpointStats) -> EndpointStats:
        """The counts between ``earlier`` and these (the three counters; tokens seen too)."""
        return EndpointStats(
            requests=self.requests - earlier.requests,
            refresh_requests=self.refresh_requests - earlier.refresh_requests,
            double_spends=self.double_spends - earlier.double_spends,
            tokens_seen=self.tokens_seen - earlier.tokens_seen,
        )


def _grant_fields(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The request body's fields: JSON when it says or looks so, else form-encoded."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if content_type.endswith("json") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


class TokenLedger:
    """The token endpoint's state and answers: issues tokens, rotates refresh tokens,
    and counts requests and double spends. Pure (no I/O), so it is unit-testable.

    Every refresh token presented is remembered; presenting one again is a double spend
    and gets ``invalid_grant``. Tokens this ledger did not issue (the benchmark's seeded
    ones) are accepted once, like any other.
    """

    def __init__(self, *, lifetime: int = TOKEN_LIFETIME) -> None:
        self.lifetime = lifetime  # seconds, the expires_in of every access token
        self._prefix = secrets.token_hex(4)
        self._issued = 0
        self._seen: set[str] = set()
        self._requests = 0
        self._refresh_requests = 0
        self._double_spends = 0

    def stats(self) -> EndpointStats:
        return EndpointStats(
            requests=self._requests,
            refresh_requests=self._refresh_requests,
            double_spends=self._double_spends,
            tokens_seen=len(self._seen),
        )

    def _new_token(self, kind: str) -> str:
        self._issued += 1
        return f"{kind}-{self._prefix}-{self._issued}"

    def token_reply(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one token request: ``(HTTP status, JSON reply)``."""
        self._requests += 1
        fields = _grant_fields(headers, body)
        grant_type = fields.get("grant_type")
        if grant_type == "refresh_token":
            self._refresh_requests += 1
            presented = fields.get("refresh_token")
            if not isinstance(presented, str) or not presented:
                return 400, {"error": "invalid_request", "error_description": "no refresh_token"}
            if presented in self._seen:
                self._double_spends += 1
                return 400, {"error": "invalid_grant", "error_description": "token reused"}
            self._seen.add(presented)
        elif grant_type not in ("authorization_code", "client_credentials"):
            return 400, {"error": "unsupported_grant_type"}
        reply: dict[str, Any] = {
            "access_token": self._new_token("at"),
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }
        if grant_type != "client_credentials":
            reply["refresh_token"] = self._new_token("rt")
        return 200, reply

    def respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Route one HTTP request: POST anywhere is a token request, GET ``STATS_PATH``
        returns ``stats()`` as JSON."""
        if method == "GET" and path.split("?", 1)[0] == STATS_PATH:
            stats = self.stats()
            return 200, {
                "requests": stats.requests,
                "refresh_requests": stats.refresh_requests,
                "double_spends": stats.double_spends,
                "tokens_seen": stats.tokens_seen,
            }
        if method == "POST":
            return self.token_reply(headers, body)
        return 405, {"error": "method_not_allowed"}


def _http_response(status: int, payload: dict[str, Any], *, close: bool) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("ascii") + body


class TokenEndpointProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: keep-alive, pipelining, ``Content-Length``
    bodies (no chunked uploads: token requests never use them). Answers via a
    ``TokenLedger``. Deliberately lean, so the endpoint is never the bottleneck."""

    def __init__(self, ledger: TokenLedger) -> None:
        self.ledger = ledger
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a TCP server
        self.transport = transport

    def _fail(self, status: int, error: str) -> None:
        assert self.transport is not None  # noqa: S101 - set in connection_made
        self.transport.write(_http_response(status, {"error": error}, close=True))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None  # noqa: S101 - set in connection_made
        self.buffer += data
        while not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self._fail(431, "headers_too_large")
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self._fail(400, "bad_request_line")
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(411, "length_required")
                return
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                self._fail(400, "bad_content_length")
                return
            if not 0 <= length <= MAX_BODY_BYTES:
                self._fail(413, "body_too_large")
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            status, payload = self.ledger.respond(method, target, headers, body)
            close = headers.get("connection", "").lower() == "close"
            self.transport.write(_http_response(status, payload, close=close))
            if close:
                self.transport.close()


async def token_endpoint_serve(sock: socket.socket, ledger: TokenLedger) -> None:
    """Serve ``ledger`` on the listening socket ``sock`` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: TokenEndpointProtocol(ledger), sock=sock)
    async with server:
        await server.serve_forever()


def _token_endpoint_main(sock: socket.socket, lifetime: int) -> None:
    """Process entry point: serve until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    asyncio.run(token_endpoint_serve(sock, TokenLedger(lifetime=lifetime)))


def loopback_listener() -> socket.socket:
    """A listening TCP socket on 127.0.0.1, on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class TokenEndpoint:
    """The local token endpoint in its own (forked) process; a context manager.

    ``url`` is its token URL; ``stats()`` asks it for its counts over HTTP. Fork, not
    spawn: the child only runs asyncio, and the caller closes database connections first.
    """

    def __init__(self, *, lifetime: int = TOKEN_LIFETIME) -> None:
        self.lifetime = lifetime
        self.process: multiprocessing.process.BaseProcess | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{TOKEN_PATH}"

    def start(self, *, ready_timeout: float = 10.0) -> TokenEndpoint:
        sock = loopback_listener()
        self.port = sock.getsockname()[1]
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=_token_endpoint_main, args=(sock, self.lifetime), daemon=True
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

    def stats(self) -> EndpointStats:
        reply = requests.get(f"http://127.0.0.1:{self.port}{STATS_PATH}", timeout=5)
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

    def __enter__(self) -> TokenEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Results and the report -----------------------------------------------------------


@dataclass(frozen=True)
class RateResult:
    """``count`` operations in ``seconds`` of wall time."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RenewalRun:
    """One measured renewal run: ``processes`` worker processes renewing ``due`` rows.

    ``seconds`` runs from the sweep's enqueue to the last row's ``refreshed_at``;
    ``first_after`` is when the first row was renewed (seconds after the enqueue).
    ``endpoint`` holds what the token endpoint saw during the run; ``logged_requests``
    the refresh rows written to the token-request log; ``mean_http_ms`` their mean
    recorded duration (milliseconds); ``db_sessions`` the PostgreSQL sessions opened
    while the workers ran (``pg_stat_database.sessions``; None before PostgreSQL 14).
    """

    processes: int
    pool: str
    due: int
    renewed: int
    failed: int
    seconds: float
    first_after: float
    endpoint: EndpointStats
    logged_requests: int
    mean_http_ms: float
    db_sessions: int | None = None
    timed_out: bool = False

    @property
    def per_second(self) -> float:
        return self.renewed / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_renewal(self) -> float:
        return self.endpoint.requests / self.renewed if self.renewed else math.nan

    @property
    def sessions_per_renewal(self) -> float:
        if self.db_sessions is None or not self.renewed:
            return math.nan
        return self.db_sessions / self.renewed


@dataclass(frozen=True)
class SweepResult:
    """The sweep's query at one table size: ``rows`` in the table, ``due`` of them due;
    ``returned`` ids came back (capped at the batch size). Times in milliseconds, from
    Python (the ORM query, as the sweep runs it): median and best of the repeats."""

    rows: int
    due: int
    returned: int
    median_ms: float
    best_ms: float
    execution_ms: float | None  # EXPLAIN ANALYZE's "Execution Time"
    uses_index: bool
    plan: str


@dataclass
class BenchReport:
    """Everything one benchmark run measured, for ``format_report``."""

    command: str
    environment: list[str] = field(default_factory=list)
    n: int = 0
    ceiling: RateResult | None = None  # the median of ceiling_samples
    ceiling_samples: list[RateResult] = field(default_factory=list)
    runs: list[RenewalRun] = field(default_factory=list)
    sweeps: list[SweepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def median_rate(samples: Sequence[RateResult]) -> RateResult:
    """The sample with the median rate (the lower middle one of an even count)."""
    ordered = sorted(samples, key=lambda sample: sample.per_second)
    return ordered[(len(ordered) - 1) // 2]


def share_of_ceiling(run: RenewalRun, ceiling: RateResult | None) -> float:
    """Renewals per second per worker process, as a share of the raw-requests ceiling."""
    if ceiling is None or not ceiling.per_second:
        return math.nan
    return run.per_second / run.processes / ceiling.per_second


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def format_report(report: BenchReport) -> str:
    """The report as plain text: figures first, then checks against the targets, then
    the query plans."""
    lines = ["Renewal benchmark", "=================", f"command: {report.command}"]
    lines += [f"  {item}" for item in report.environment]
    ceiling = report.ceiling
    if ceiling is not None:
        lines += [
            "",
            f"Ceiling: {ceiling.count} raw requests.Session().post calls, one process",
            f"  {ceiling.per_second:8.1f} requests/s  ({ceiling.seconds:.2f} s)"
            + (
                f", the median of {len(report.ceiling_samples)} samples ("
                + ", ".join(f"{x.per_second:.1f}" for x in report.ceiling_samples)
                + "), one before each run and one after the last"
                if len(report.ceiling_samples) > 1
                else ""
            ),
        ]
    if report.runs:
        lines += [
            "",
            f"Renewals through Celery ({report.n} due rows per run)",
            "  procs pool      renewals/s  share of ceiling (per proc)  req/renewal"
            "  double spends  failed  wall s  1st at s  http ms  db conns/renewal",
        ]
        for run in report.runs:
            share = share_of_ceiling(run, ceiling)
            total_share = share * run.processes
            lines.append(
                f"  {run.processes:>5} {run.pool:<9} {run.per_second:>10.1f}"
                f"  {total_share:>7.2f} ({share:.2f} per proc)    "
                f"  {run.requests_per_renewal:>11.2f}  {run.endpoint.double_spends:>13}"
                f"  {run.failed:>6}  {run.seconds:>6.2f}  {run.first_after:>8.2f}"
                f"  {run.mean_http_ms:>7.2f}  {run.sessions_per_renewal:>16.2f}"
                + ("  TIMED OUT" if run.timed_out else "")
            )
            if run.logged_requests != run.endpoint.requests:
                lines.append(
                    f"        token-request log has {run.logged_requests} refresh rows, "
                    f"the endpoint saw {run.endpoint.requests} requests"
                )
    if report.sweeps:
        lines += [
            "",
            "Sweep query (due_queryset, one batch)",
            "  rows in table  due  returned  median ms  best ms  EXPLAIN exec ms  index used",
        ]
        for sweep in report.sweeps:
            exec_ms = f"{sweep.execution_ms:.3f}" if sweep.execution_ms is not None else "?"
            lines.append(
                f"  {sweep.rows:>13,} {sweep.due:>4} {sweep.returned:>9} {sweep.median_ms:>10.3f}"
                f" {sweep.best_ms:>8.3f}  {exec_ms:>15}  "
                + ("config_variable_due" if sweep.uses_index else "NO")
            )
    lines += ["", "Targets"]
    for run in report.runs:
        share = share_of_ceiling(run, ceiling)
        lines.append(
            f"  {_verdict(share >= TARGET_SHARE_OF_CEILING)}  {run.processes} process(es): "
            f"{share:.2f} of the ceiling per process (target >= {TARGET_SHARE_OF_CEILING:.2f})"
        )
    if report.runs:
        per_renewal = [run.requests_per_renewal for run in report.runs]
        lines.append(
            f"  {_verdict(all(abs(x - 1.0) < 0.005 for x in per_renewal))}  token requests "
            f"per renewal: {', '.join(f'{x:.2f}' for x in per_renewal)} (target 1.00)"
        )
        spends = sum(run.endpoint.double_spends for run in report.runs)
        lines.append(f"  {_verdict(spends == 0)}  double spends: {spends} (target 0)")
        complete = all(run.renewed == run.due and not run.timed_out for run in report.runs)
        lines.append(f"  {_verdict(complete)}  every due row renewed in every run")
    if report.sweeps:
        lines.append(
            f"  {_verdict(all(s.uses_index for s in report.sweeps))}  sweep uses "
            "config_variable_due at every size"
        )
        if len(report.sweeps) >= 2:
            small, large = report.sweeps[0], report.sweeps[-1]
            growth = large.best_ms / small.best_ms if small.best_ms else math.nan
            median_growth = large.median_ms / small.median_ms if small.median_ms else math.nan
            lines.append(
                f"  {_verdict(growth < 3.0)}  sweep time x{growth:.2f} (best; median "
                f"x{median_growth:.2f}) for x{large.rows / max(small.rows, 1):.0f} rows "
                "(roughly flat: < x3)"
            )
    notes = list(report.notes)
    if any(run.sessions_per_renewal >= 0.5 for run in report.runs):
        notes.append(
            "workers opened a PostgreSQL connection per renewal: Celery's Django fix-up "
            "closes database connections before and after every task unless "
            "CELERY_DB_REUSE_MAX is set (CONN_MAX_AGE alone does not keep them)"
        )
    if notes:
        lines += ["", "Notes"] + [f"  - {note}" for note in notes]
    for sweep in report.sweeps:
        lines += ["", f"Plan at {sweep.rows:,} rows:", _indent(sweep.plan)]
    lines += ["", f"Total benchmark time: {report.elapsed:.1f} s"]
    return "\n".join(lines)


# --- Environment checks ---------------------------------------------------------------


def _masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, prefixed with the database and broker URLs (masked)."""
    prefix = [
        f"{name}={_masked_url(os.environ[name])}"
        for name in ("DATABASE_URL", "CELERY_BROKER_URL")
        if os.environ.get(name)
    ]
    return " ".join([*prefix, "python", *argv])


def queue_sizes(names: Sequence[str]) -> dict[str, int]:
    """Messages waiting in each of the broker's queues ``names``."""
    from config.celery import app

    sizes: dict[str, int] = {}
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in names:
            try:
                sizes[name] = channel.queue_declare(queue=name, passive=True).message_count
            except Exception:  # kombu: a queue that does not exist is empty
                sizes[name] = 0
    return sizes


def ping_workers(timeout: float = 1.0) -> list[str]:
    """Names of the Celery workers answering on this broker within ``timeout`` seconds."""
    from config.celery import app

    return [name for reply in app.control.ping(timeout=timeout) or [] for name in reply]


def bench_environment_check() -> None:
    """Refuse (``BenchRefused``) unless the database is PostgreSQL, the broker Redis,
    the queues empty, no worker listening, and no other ConfigVariables exist."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if not os.environ.get("DATABASE_URL") or not engine.endswith("postgresql"):
        raise BenchRefused(
            "bench_renewal needs PostgreSQL: set DATABASE_URL, e.g. "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench (after createdb bench)."
        )
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "rediss://")) or settings.CELERY_TASK_ALWAYS_EAGER:
        raise BenchRefused(
            "bench_renewal needs a Redis broker: set CELERY_BROKER_URL, e.g. "
            "CELERY_BROKER_URL=redis://127.0.0.1:6379/7 (a Redis DB of its own)."
        )
    try:
        db_connection.ensure_connection()
    except Exception as exc:
        raise BenchRefused(
            f"Cannot connect to the database ({exc}). Create it first, e.g. "
            "createdb -h 127.0.0.1 -U postgres bench"
        ) from exc
    try:
        waiting = queue_sizes(WORKER_QUEUES)
        listening = ping_workers()
    except Exception as exc:
        raise BenchRefused(f"Cannot reach the broker {_masked_url(broker)}: {exc}") from exc
    if any(waiting.values()):
        raise BenchRefused(
            f"The broker's queues are not empty ({waiting}); use a Redis DB of its own "
            "or purge them: celery -A config purge -Q refresh,exchange"
        )
    if listening:
        raise BenchRefused(
            f"Celery workers already listen on this broker ({', '.join(listening)}); they "
            "would take the benchmark's tasks. Stop them or use a Redis DB of its own."
        )


def schema_drift() -> list[str]:
    """Model columns missing from the database (``table.column``): a database migrated
    before a migration it already applied was edited."""
    missing = []
    models = (App, Connection, Customer, ConfigVariable, StatusTransition, TokenRequest)
    with db_connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            present = {
                column.name
                for column in db_connection.introspection.get_table_description(cursor, table)
            }
            missing += [
                f"{table}.{model_field.column}"
                for model_field in model._meta.concrete_fields
                if model_field.column not in present
            ]
    return missing


def foreign_config_variables() -> int:
    """ConfigVariables outside the benchmark's namespace (the sweep would renew them)."""
    return ConfigVariable.objects.exclude(connection__app__slug=BENCH_SLUG).count()


# --- Benchmark data -------------------------------------------------------------------


def _execute(sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def bench_cleanup() -> int:
    """Delete every row of the benchmark's namespace; returns ConfigVariables deleted.

    Raw SQL for the bulk tables (a million rows through the ORM's cascade would take
    minutes), the ORM for the few parents. Nothing outside the namespace is touched.
    """
    app = App.objects.filter(slug=BENCH_SLUG).first()
    deleted = 0
    if app is not None:
        cv_table = ConfigVariable._meta.db_table
        bench_rows = (
            f"SELECT cv.id FROM {cv_table} cv "  # noqa: S608 - table names from the models
            f"JOIN {Connection._meta.db_table} co ON co.id = cv.connection_id "
            "WHERE co.app_id = %s"
        )
        _execute(
            f"DELETE FROM {TokenRequest._meta.db_table} WHERE app_id = %s",  # noqa: S608
            [app.pk],
        )
        transitions = StatusTransition._meta.db_table
        _execute(
            f"DELETE FROM {transitions} WHERE config_variable_id IN ({bench_rows})",  # noqa: S608
            [app.pk],
        )
        deleted = _execute(
            f"DELETE FROM {cv_table} WHERE id IN ({bench_rows})",  # noqa: S608
            [app.pk],
        )
        Connection.objects.filter(app=app).delete()
        app.delete()
    Customer.objects.filter(name__startswith=f"{BENCH_SLUG} ", config_variables=None).delete()
    return deleted


def bench_app_create(token_url: str) -> App:
    """The benchmark's App: an authorization-code app at the local endpoint, flavor 1
    already known to work (as for any App after its first exchange)."""
    app = App.objects.create(
        name=f"{BENCH_SLUG} app",
        slug=BENCH_SLUG,
        token_url=token_url,
        authorize_url=token_url.replace(TOKEN_PATH, "/authorize"),
        client_id=BENCH_CLIENT_ID,
        client_secret=BENCH_CLIENT_SECRET,
        default_scopes="read offline_access",
        use_pkce=False,
    )
    App.objects.filter(pk=app.pk).update(preferred_flavor=1)
    app.refresh_from_db()
    return app


def _customers_create(count: int, label: str) -> list[int]:
    """``count`` benchmark Customers; their ids in order."""
    Customer.objects.bulk_create(
        [Customer(name=f"{BENCH_SLUG} {label} {i:07d}") for i in range(count)], batch_size=2000
    )
    return list(
        Customer.objects.filter(name__startswith=f"{BENCH_SLUG} {label} ")
        .order_by("name")
        .values_list("pk", flat=True)
    )


def renewal_rows_create(app: App, n: int) -> Connection:
    """``n`` connected ConfigVariables (one Connection, ``n`` Customers) with distinct
    refresh tokens, not yet due; ``renewal_rows_reset`` makes them due."""
    connection = Connection.objects.create(
        app=app, name=f"{BENCH_SLUG} renewal", slug=f"{BENCH_SLUG}-renewal"
    )
    customer_ids = _customers_create(n, "renewal")
    now = timezone.now()
    ConfigVariable.objects.bulk_create(
        [
            ConfigVariable(
                customer_id=customer_id,
                connection=connection,
                status=Status.CONNECTED,
                access_token=f"seed-at-{i}",
                refresh_token=f"seed-rt-{i}",
                token_type="Bearer",  # noqa: S106 - a token type name
                scopes_granted="read offline_access",
                expires_at=now + timedelta(hours=1),
                refresh_at=now + timedelta(hours=1),
                connected_at=now,
            )
            for i, customer_id in enumerate(customer_ids)
        ],
        batch_size=1000,
    )
    return connection


def renewal_rows_reset(connection: Connection) -> int:
    """Make every row of ``connection`` due now, unclaimed and not enqueued."""
    now = timezone.now()
    return ConfigVariable.objects.filter(connection=connection).update(
        status=Status.CONNECTED,
        refresh_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(minutes=5),
        enqueued_at=None,
        lease_token=None,
        lease_expires_at=None,
        failure_count=0,
        last_error="",
        diagnosis="",
        refreshed_at=None,
    )


# --- The ceiling ----------------------------------------------------------------------


def raw_post_rate(url: str, count: int, *, warmup: int = 50) -> RateResult:
    """``count`` sequential ``requests.Session().post`` calls to ``url`` from this
    process, with the body shape of a renewal (flavor 1: Basic header, form body with
    ``grant_type`` and a distinct ``refresh_token``). Bodies are built before timing."""
    flavor = FLAVORS_BY_NUMBER[1]
    specs = [
        build_token_request(
            flavor,
            client_id=BENCH_CLIENT_ID,
            client_secret=BENCH_CLIENT_SECRET,
            fields={
                "grant_type": "refresh_token",
                "refresh_token": f"ceiling-{i}-{secrets.token_hex(8)}",
            },
        )
        for i in range(count + warmup)
    ]
    session = requests.Session()
    for spec in specs[:warmup]:
        session.post(url, headers=spec.headers, data=spec.body, timeout=10).content  # noqa: B018
    started = time.perf_counter()
    for spec in specs[warmup:]:
        reply = session.post(url, headers=spec.headers, data=spec.body, timeout=10)
        reply.content  # noqa: B018 - read the body, as the product does
    elapsed = time.perf_counter() - started
    session.close()
    return RateResult(count=count, seconds=elapsed)


# --- Celery workers -------------------------------------------------------------------


def worker_env(*, log_level: str) -> dict[str, str]:
    """The environment of a benchmark worker: this process's, plus production-like
    settings (no debug, so no per-query logging) and http to the loopback endpoint."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
            "DJANGO_DEBUG": "false",
            # DEBUG off: the keys come from the environment; pass this process's.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.SALT_KEY),
            "OAUTH_ALLOW_HTTP_LOOPBACK": "true",
            "OAUTH_ALLOW_PRIVATE_NETWORKS": "true",
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


THREADS_PER_WORKER = 8


class WorkerGroup:
    """Real ``celery worker`` processes for one run, started and stopped cleanly.

    ``pool="prefork"``: one worker with ``-c processes``; ``pool="solo"``: ``processes``
    workers of one process each. Output goes to ``log_dir``.
    """

    def __init__(
        self, *, processes: int, pool: str, log_dir: Path, log_level: str = "WARNING"
    ) -> None:
        self.processes = processes
        self.pool = pool
        self.log_dir = log_dir
        self.log_level = log_level
        self.popens: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []

    def _argv(self, name: str, concurrency: int) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", ",".join(WORKER_QUEUES), "--pool", self.pool, "-c", str(concurrency),
            "-n", name, "-l", self.log_level, "--prefetch-multiplier", "1",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip

    def start(self, *, ready_timeout: float = 60.0) -> WorkerGroup:
        nonce = secrets.token_hex(3)
        if self.pool == "solo":
            layout = [(f"bench-{nonce}-{i}@%h", 1) for i in range(self.processes)]
        elif self.pool == "threads":
            # One process each; its threads overlap the waits on HTTP and the database.
            layout = [(f"bench-{nonce}-{i}@%h", THREADS_PER_WORKER) for i in range(self.processes)]
        else:
            layout = [(f"bench-{nonce}@%h", self.processes)]
        env = worker_env(log_level=self.log_level)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, concurrency in layout:
            log = (self.log_dir / f"{name.split('@')[0]}.log").open("wb")
            self.popens.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    self._argv(name, concurrency),
                    cwd=settings.BASE_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        deadline = time.monotonic() + ready_timeout
        while True:
            answering = ping_workers(timeout=0.5)
            if sum(name.startswith(f"bench-{nonce}") for name in answering) >= len(layout):
                self.names = answering
                return self
            dead = [p for p in self.popens if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                raise BenchRefused(
                    f"Celery workers did not start (see the logs in {self.log_dir})."
                )

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.popens)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM), then kill the process group of any worker still up."""
        for popen in self.popens:
            if popen.poll() is None:
                popen.terminate()
        deadline = time.monotonic() + timeout
        for popen in self.popens:
            try:
                popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(5)
        self.popens = []

    def __enter__(self) -> WorkerGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- One renewal run ------------------------------------------------------------------


def db_sessions() -> int | None:
    """Sessions ever opened to this database (PostgreSQL 14+), or None."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        try:
            cursor.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
        except DatabaseError:
            return None
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _refresh_log(app: App) -> tuple[int, float]:
    """Refresh rows in the token-request log for ``app`` and their total duration (ms)."""
    totals = TokenRequest.objects.filter(app=app, kind=TokenRequestKind.REFRESH).aggregate(
        n=Count("pk"), ms=Sum("duration_ms")
    )
    return totals["n"] or 0, float(totals["ms"] or 0)


def renewal_run(
    *,
    app: App,
    connection: Connection,
    endpoint: TokenEndpoint,
    processes: int,
    pool: str,
    log_dir: Path,
    log_level: str,
    timeout: float,
) -> RenewalRun:
    """Reset the rows to due, start the workers, enqueue ``sweep_renewals`` and wait
    until every row is renewed (or failed, or ``timeout`` seconds passed)."""
    from oauthflow.tasks import sweep_renewals

    due = renewal_rows_reset(connection)
    rows = ConfigVariable.objects.filter(connection=connection)
    sessions_before = db_sessions()
    with WorkerGroup(processes=processes, pool=pool, log_dir=log_dir, log_level=log_level) as wg:
        before = endpoint.stats()
        logged_before, ms_before = _refresh_log(app)
        started = timezone.now()
        sweep_renewals.delay()
        timed_out = False
        while True:
            time.sleep(POLL_INTERVAL)
            progress = rows.aggregate(
                renewed=Count("pk", filter=Q(refreshed_at__gte=started)),
                failed=Count(
                    "pk",
                    filter=Q(failure_count__gt=0) | ~Q(status=Status.CONNECTED),
                ),
                first=Min("refreshed_at", filter=Q(refreshed_at__gte=started)),
                last=Max("refreshed_at", filter=Q(refreshed_at__gte=started)),
            )
            if progress["renewed"] + progress["failed"] >= due:
                break
            if not wg.alive():
                raise BenchRefused(f"A Celery worker died (see the logs in {log_dir}).")
            if (timezone.now() - started).total_seconds() > timeout:
                timed_out = True
                break
        time.sleep(POLL_INTERVAL)  # let the last replies' log rows land
        after = endpoint.stats()
        logged_after, ms_after = _refresh_log(app)
    time.sleep(1.0)  # PostgreSQL publishes other backends' statistics within a second
    sessions_after = db_sessions()
    last = progress["last"] or timezone.now()
    first = progress["first"] or last
    logged = logged_after - logged_before
    return RenewalRun(
        processes=processes,
        pool=pool,
        due=due,
        renewed=progress["renewed"],
        failed=progress["failed"],
        seconds=(last - started).total_seconds(),
        first_after=(first - started).total_seconds(),
        endpoint=after.minus(before),
        logged_requests=logged,
        mean_http_ms=(ms_after - ms_before) / logged if logged else math.nan,
        db_sessions=(
            sessions_after - sessions_before
            if sessions_after is not None and sessions_before is not None
            else None
        ),
        timed_out=timed_out,
    )


# --- The sweep at scale ---------------------------------------------------------------


def _sweep_grid(app: App, rows: int) -> tuple[list[int], list[int]]:
    """Customers and Connections whose pairs give ``rows`` unique ConfigVariables."""
    customers = min(SWEEP_GRID_CUSTOMERS, max(rows, 1))
    customer_ids = _customers_create(customers, "sweep")
    connections = math.ceil(rows / customers)
    Connection.objects.bulk_create(
        [
            Connection(app=app, name=f"{BENCH_SLUG} sweep {i}", slug=f"{BENCH_SLUG}-sweep-{i}")
            for i in range(connections)
        ]
    )
    connection_ids = list(
        Connection.objects.filter(app=app, slug__startswith=f"{BENCH_SLUG}-sweep-")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return customer_ids, connection_ids


def sweep_rows_insert(
    *, customer_ids: list[int], connection_ids: list[int], start: int, stop: int, due: int
) -> int:
    """Insert grid rows ``start`` to ``stop - 1`` in one ``INSERT … SELECT`` over
    ``generate_series``; ``due`` of them (spread evenly) are due, the rest connected
    (90 %) or failing (5 %) with ``refresh_at`` 1 to 25 hours ahead, or pending with
    none (5 %). Columns not named here get the model field's default."""
    every = max((stop - start) // due, 1) if due else 0
    token = ConfigVariable._meta.get_field("refresh_token").get_prep_value("bench-bulk-token")
    customers = len(customer_ids)
    is_due = "(%(every)s > 0 AND (g - %(start)s) %% %(every)s = 0 AND g - %(start)s < %(limit)s)"
    expressions = {
        "id": "gen_random_uuid()",
        "customer_id": "(%(customers)s::bigint[])[g %% %(n_customers)s + 1]",
        "connection_id": "(%(connections)s::bigint[])[g / %(n_customers)s + 1]",
        "status": f"CASE WHEN {is_due} THEN 'connected' WHEN g %% 20 = 1 THEN 'pending' "
        "WHEN g %% 20 = 2 THEN 'failing' ELSE 'connected' END",
        "refresh_at": f"CASE WHEN {is_due} THEN now() - (g %% 600) * interval '1 second' "
        "WHEN g %% 20 = 1 THEN NULL "
        "ELSE now() + interval '1 hour' + random() * interval '1 day' END",
        "expires_at": "now() + interval '2 days'",
        "access_token": "%(token)s",
        "refresh_token": "%(token)s",
        "token_type": "'Bearer'",
        "created_at": "now()",
        "updated_at": "now()",
        "connected_at": "now()",
    }
    params: dict[str, Any] = {
        "customers": customer_ids,
        "connections": connection_ids,
        "n_customers": customers,
        "every": every,
        "start": start,
        "limit": every * due,
        "token": token,
    }
    columns, values = [], []
    for model_field in ConfigVariable._meta.concrete_fields:
        columns.append(model_field.column)
        if model_field.column in expressions:
            values.append(expressions[model_field.column])
        else:
            name = f"default_{model_field.column}"
            params[name] = model_field.get_db_prep_save(
                model_field.get_default(), connection=db_connection
            )
            values.append(f"%({name})s")
    params["first"], params["last"] = start, stop - 1
    sql = (
        f"INSERT INTO {ConfigVariable._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM generate_series(%(first)s, %(last)s) AS g"
    )
    return _execute(sql, params)


_EXECUTION_TIME = re.compile(r"Execution Time: ([0-9.]+) ms")


def sweep_measure(*, repeats: int, due: int) -> SweepResult:
    """EXPLAIN (ANALYZE, BUFFERS) the sweep's query — ``renewals_due``'s select of one
    batch from ``due_queryset`` — and time it ``repeats`` times (median, milliseconds)."""
    # As autovacuum leaves a table after inserts (PostgreSQL 13+ vacuums on inserts
    # too): statistics fresh and the visibility map set, so index-only scans can be had.
    _execute(f"VACUUM (ANALYZE) {ConfigVariable._meta.db_table}")

    def batch() -> Any:
        limit = settings.RENEWAL_SWEEP_BATCH
        return due_queryset(now=timezone.now()).values_list("pk", flat=True)[:limit]

    for _ in range(2):  # warm the cache: the sweep runs every minute in production
        list(batch())
    plan = batch().explain(analyze=True, buffers=True)
    times, returned = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        returned = len(list(batch()))
        times.append((time.perf_counter() - started) * 1000)
    match = _EXECUTION_TIME.search(plan)
    return SweepResult(
        rows=ConfigVariable.objects.count(),
        due=due,
        returned=returned,
        median_ms=statistics.median(times),
        best_ms=min(times),
        execution_ms=float(match.group(1)) if match else None,
        uses_index="config_variable_due" in plan,
        plan=plan,
    )


def sweep_bench(
    app: App, *, sizes: Sequence[int], due: int, repeats: int, say: Callable[[str], None]
) -> list[SweepResult]:
    """Grow the table to each of ``sizes`` rows (``due`` of them due, inserted with the
    first size) and measure the sweep's query at each."""
    # A previous run's million rows, deleted, leave the table and its indexes at their
    # largest size (files do not shrink): rebuild them so "10,000 rows" means that.
    _execute(f"VACUUM FULL {ConfigVariable._meta.db_table}")
    existing = ConfigVariable.objects.count()
    customer_ids, connection_ids = _sweep_grid(app, max(sizes))
    results, inserted = [], 0
    for size in sorted(sizes):
        target = size - existing
        if target > inserted:
            began = time.monotonic()
            sweep_rows_insert(
                customer_ids=customer_ids,
                connection_ids=connection_ids,
                start=inserted,
                stop=target,
                due=due if inserted == 0 else 0,
            )
            say(f"  inserted {target - inserted:,} rows in {time.monotonic() - began:.1f} s")
            inserted = target
        results.append(sweep_measure(repeats=repeats, due=due))
        say(f"  sweep at {results[-1].rows:,} rows: {results[-1].median_ms:.3f} ms")
    return results


# --- The whole benchmark --------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    """What to run: ``n`` due rows per renewal run, worker ``processes`` per run, the
    sweep table sizes (rows), ``timeout`` per run (seconds)."""

    n: int = 2000
    processes: tuple[int, ...] = (1, 2)
    pool: str = "prefork"
    rows_small: int = 10_000
    rows_large: int = 1_000_000
    sweep_due: int = 500
    sweep_repeats: int = 15
    timeout: float = 300.0
    worker_log_level: str = "WARNING"
    renewal: bool = True
    sweep: bool = True
    migrate: bool = True
    log_dir: Path = field(default_factory=lambda: Path(settings.VAR_DIR) / "bench")


def _environment_lines() -> list[str]:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SHOW synchronous_commit")
        sync_commit = cursor.fetchone()[0]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"host: {os.cpu_count()} CPUs, load average {load} at start; "
        f"Python {sys.version.split()[0]}",
        f"database: {version}, synchronous_commit={sync_commit}; broker: Redis",
        "workers: DJANGO_DEBUG=false, OAUTH_ALLOW_HTTP_LOOPBACK=true, "
        "OAUTH_ALLOW_PRIVATE_NETWORKS=true",
    ]


def bench_run(
    options: BenchOptions, *, command: str, say: Callable[[str], None] = print
) -> BenchReport:
    """Run the benchmark and return its report; cleans its rows before and after."""
    began = time.monotonic()
    # The parent's idle broadcast connection (worker pings) makes kombu warn; harmless.
    logging.getLogger("kombu.transport.redis").setLevel(logging.ERROR)
    bench_environment_check()
    if options.migrate:
        call_command("migrate", interactive=False, verbosity=0)
    missing = schema_drift()
    if missing:
        raise BenchRefused(
            f"The database lacks columns the models have ({', '.join(missing)}): it was "
            "migrated before a migration was edited. Recreate it: dropdb bench; createdb bench."
        )
    bench_cleanup()
    others = foreign_config_variables()
    if others:
        raise BenchRefused(
            f"The database holds {others} ConfigVariables outside the benchmark; the sweep "
            "would renew them too. Use a database of its own (createdb bench)."
        )
    report = BenchReport(command=command, environment=_environment_lines(), n=options.n)
    for old_log in options.log_dir.glob("bench-*.log"):  # the previous run's worker logs
        old_log.unlink()
    db_connections.close_all()  # before forking the endpoint
    try:
        with TokenEndpoint() as endpoint:
            app = bench_app_create(endpoint.url)
            if options.renewal:
                say(f"Token endpoint at {endpoint.url}; creating {options.n} rows")
                connection = renewal_rows_create(app, options.n)

                def sample_ceiling() -> None:
                    # Sampled before each run and after the last; the median is used,
                    # so a moment of noise on this host sways neither side.
                    report.ceiling_samples.append(raw_post_rate(endpoint.url, options.n))
                    say(f"Ceiling: {report.ceiling_samples[-1].per_second:.1f} requests/s")

                for processes in options.processes:
                    sample_ceiling()
                    run = renewal_run(
                        app=app,
                        connection=connection,
                        endpoint=endpoint,
                        processes=processes,
                        pool=options.pool,
                        log_dir=options.log_dir,
                        log_level=options.worker_log_level,
                        timeout=options.timeout,
                    )
                    report.runs.append(run)
                    say(
                        f"{processes} process(es): {run.per_second:.1f} renewals/s, "
                        f"{run.renewed}/{run.due} renewed in {run.seconds:.2f} s"
                    )
                sample_ceiling()
                report.ceiling = median_rate(report.ceiling_samples)
                ConfigVariable.objects.filter(connection=connection).delete()
                # Every renewal moved refresh_at, leaving a dead entry in the partial index
                # until vacuum; measure the sweep on a vacuumed table, as autovacuum keeps it.
                _execute(f"VACUUM {ConfigVariable._meta.db_table}")
            if options.sweep:
                say("Sweep query at scale")
                sizes = sorted({options.rows_small, options.rows_large})
                report.sweeps = sweep_bench(
                    app,
                    sizes=sizes,
                    due=options.sweep_due,
                    repeats=options.sweep_repeats,
                    say=say,
                )
    finally:
        say("Cleaning up the benchmark's rows")
        bench_cleanup()
    report.notes += [
        "renewals/s = due rows / (last refreshed_at - enqueue of sweep_renewals); the run "
        "includes the sweep task itself and each worker's first database connection",
        "share of ceiling = renewals/s / processes / raw requests/s; all processes, the "
        "endpoint, PostgreSQL and Redis share the host's CPUs",
        "http ms = mean duration_ms the token-request log recorded for the run's requests",
        "db conns/renewal = PostgreSQL sessions opened while the run's workers were up "
        "(pg_stat_database.sessions, including each worker process's first) / renewals",
    ]
    report.elapsed = time.monotonic() - began
    return report


def parse_processes(value: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``: worker process counts, each at least 1."""
    counts = tuple(int(part) for part in value.split(",") if part.strip())
    if not counts or min(counts) < 1:
        raise ValueError("worker process counts must be positive integers, e.g. 1,2")
    return counts
