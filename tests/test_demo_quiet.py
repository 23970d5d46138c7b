"""``manage.py demo`` keeps its console quiet (issue 13): the children log warnings and
errors only unless ``--verbose``, start-up banners are dropped, and the URLs and logins
are printed last, once everything listens, and again on Enter. The sandbox it prints
(``/o/``) answers, and its SQLite database is in WAL mode with a busy timeout."""

from __future__ import annotations

import io
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command

from connections.demo import ADMIN_LOGIN, CUSTOMER_LOGIN, SANDBOX_USER, DemoLogins
from connections.management.commands import demo as demo_command
from connections.management.commands.demo import (
    demo_banner,
    demo_child_commands,
    demo_child_env,
    demo_keep_line,
)

LOGINS = DemoLogins(admin=ADMIN_LOGIN, customer=CUSTOMER_LOGIN, sandbox_user=SANDBOX_USER)
REPO_DIR = Path(__file__).resolve().parent.parent


def _commands(verbose: bool) -> dict[str, list[str]]:
    return demo_child_commands(
        port=8000,
        sandbox_port=8001,
        callback="http://localhost:8000/oauth2/callback",
        beat_schedule=Path("var/demo-beat-schedule"),
        verbose=verbose,
    )


def test_children_log_warnings_only_unless_verbose():
    quiet = _commands(verbose=False)
    assert list(quiet) == ["sandbox", "worker", "beat", "portal"]  # the sandbox first
    for name in ("worker", "beat"):
        command = quiet[name]
        assert command[command.index("-l") + 1] == "warning"
        assert "--quiet" in command  # no Celery banner
    assert "--quiet" in quiet["sandbox"]  # no banner, access log of errors only
    assert "--skip-checks" in quiet["portal"]
    env = demo_child_env({"PATH": "/bin"}, verbose=False)
    assert env["LOG_LEVEL"] == env["SANDBOX_LOG_LEVEL"] == "WARNING"
    assert env["PATH"] == "/bin"


def test_verbose_children_log_everything():
    loud = _commands(verbose=True)
    for name in ("worker", "beat"):
        command = loud[name]
        assert command[command.index("-l") + 1] == "info"
        assert "--quiet" not in command
    assert "--quiet" not in loud["sandbox"]
    assert "--skip-checks" not in loud["portal"]
    env = demo_child_env({}, verbose=True)
    assert env["LOG_LEVEL"] == env["SANDBOX_LOG_LEVEL"] == "INFO"


NOISE = [
    '2026-01-31 14:05:09,123 INFO django.server "GET / HTTP/1.1" 200 1234',
    "2026-01-31 14:05:09,123 INFO axes.apps AXES: BEGIN version 8.3.1",
    "[2026-01-31 14:05:09,123: INFO/MainProcess] Task oauthflow.tasks.sweep received",
    "[2026-01-31 14:05:09,123: INFO/MainProcess] beat: Starting...",
    "December 01, 2026 - 18:51:27",
    "Performing system checks...",
    "System check identified no issues (0 silenced).",
    "Django version 5.2.1, using settings 'config.settings'",
    "Starting development server at http://localhost:8000/",
    "Quit the server with CONTROL-C.",
    "WARNING: This is a development server. Do not use it in a production setting.",
    "",
]
KEPT = [
    '2026-01-31 14:05:09,123 WARNING django.server "GET /nope HTTP/1.1" 404 179',
    "2026-01-31 14:05:09,123 ERROR oauthflow.tasks Renewal failed",
    "[2026-01-31 14:05:09,123: ERROR/MainProcess] Task raised unexpected: OperationalError",
    "Traceback (most recent call last):",
    '[sandbox] "POST /o/token/ HTTP/1.1" 500 59',
]


@pytest.mark.parametrize("line", NOISE)
def test_quiet_console_drops_routine_lines(line):
    assert not demo_keep_line(line, verbose=False)
    assert demo_keep_line(line, verbose=True)


@pytest.mark.parametrize("line", KEPT)
def test_quiet_console_keeps_what_fails(line):
    assert demo_keep_line(line, verbose=False)


def test_banner_ends_with_the_urls_and_logins():
    banner = demo_banner(
        portal_url="http://localhost:8000",
        sandbox_url="http://127.0.0.1:8001",
        broker="filesystem://",
        sweep_interval="10.0",
        logins=LOGINS,
    )
    lines = banner.strip().splitlines()
    assert lines[-3:] == [
        "  Portal:  http://localhost:8000/   log in as customer/customer-password",
        "  Admin:   http://localhost:8000/admin/   log in as admin/admin-password",
        "  Sandbox: http://127.0.0.1:8001/o/   (the third-party app) log in as "
        "alice/alice-password when asked to consent",
    ]
    assert "Enter prints this again" in banner
    assert "--verbose" in banner


class _FakeProcess:
    """A child that prints its start-up noise, then runs until told it stopped."""

    def __init__(self, command: list[str], **kwargs: object) -> None:
        name = next(
            name
            for name, marker in (
                ("sandbox", "sandbox"),
                ("worker", "worker"),
                ("beat", "beat"),
                ("portal", "runserver"),
            )
            if marker in command
        )
        self.stdout = io.StringIO("\n".join([*NOISE, f"started {name}", *KEPT[:1]]) + "\n")
        self.pid = 0
        self.polls = 0

    def poll(self) -> int | None:
        self.polls += 1
        return None if self.polls < 10 else 0

    def terminate(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.mark.django_db
def test_demo_prints_urls_after_the_children_start_up_and_again_on_enter(monkeypatch):
    monkeypatch.setattr(demo_command.subprocess, "Popen", _FakeProcess)
    monkeypatch.setattr(demo_command, "_port_free", lambda port: True)
    monkeypatch.setattr(demo_command, "_wait_for_port", lambda port, process: None)
    monkeypatch.setattr(demo_command.time, "sleep", lambda seconds: time_sleep(0.05))
    monkeypatch.setattr(demo_command.signal, "signal", lambda *args: None)
    monkeypatch.setattr(demo_command.sys, "stdin", io.StringIO("\n"))
    out, err = io.StringIO(), io.StringIO()
    call_command("demo", "--port", "8150", "--sandbox-port", "8151", stdout=out, stderr=err)
    text = out.getvalue()
    assert text.count("Portal:  http://localhost:8150/") == 2  # once, and once for Enter
    first_banner = text.index("Connection portal demo is running")
    for name in ("sandbox", "worker", "beat", "portal"):
        assert text.index(f"[{name}] started {name}") < first_banner
    assert "INFO" not in text
    assert "Performing system checks" not in text
    assert "[sandbox] 2026-01-31 14:05:09,123 WARNING django.server" in text  # warnings pass


time_sleep = time.sleep


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_sandbox_answers_at_o_and_its_database_is_in_wal_mode(tmp_path):
    port = _free_port()
    db = tmp_path / "sandbox.sqlite3"
    process = subprocess.Popen(  # noqa: S603 - our own fixed command
        [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--quiet"],
        cwd=REPO_DIR,
        env={"PATH": "/usr/bin:/bin", "SANDBOX_DB": str(db), "SANDBOX_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time_sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/o/", timeout=10) as reply:
            assert reply.status == 200
            assert "Sandbox authorization server" in reply.read().decode()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    # Quiet: no banner, no access-log line for the 200.
    assert "Sandbox authorization server at" not in output
    assert '"GET /o/ HTTP/1.1" 200' not in output
