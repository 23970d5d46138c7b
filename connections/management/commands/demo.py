"""``manage.py demo``: the whole portal on one machine, as in production.

Migrates, seeds the demo rows (``connections.demo``), then runs and supervises the
portal, the sandbox authorization server (django-oauth-toolkit, its own process and
database), a Celery worker and Celery beat. The broker is Redis when
``CELERY_BROKER_URL`` is set, else kombu's file-system transport under ``var/broker``,
so the same worker and beat code runs as in production. Ctrl-C stops everything.

The console stays quiet: the children log warnings and errors only (``--verbose``: every
request, sweep and renewal), their start-up banners are dropped, and the URLs and
logins come last, once everything listens, and again whenever Enter is pressed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections.demo import DemoLogins, demo_seed

STOP_GRACE_SECONDS = 10
CHILDREN = ("sandbox", "worker", "beat", "portal")

# Lines a quiet console drops: records below WARNING in the portal's and the sandbox's
# log format ("2026-01-31 14:05:09,123 INFO name message") and in Celery's
# ("[2026-01-31 14:05:09,123: INFO/MainProcess] ..."), and runserver's start-up text.
_QUIET_DROPS = (
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO) "),
    re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+: (DEBUG|INFO)/"),
    re.compile(
        r"^(Performing system checks|System check identified|Django version|"
        r"Starting development server|Quit the server with|WARNING: This is a development "
        r"server|For more information on production servers|Watching for file changes)"
    ),
    re.compile(r"^[A-Z][a-z]+ \d\d, \d{4} - \d\d:\d\d:\d\d$"),  # runserver's start time
    re.compile(r"^\s*$"),
)


def demo_child_commands(
    *, port: int, sandbox_port: int, callback: str, beat_schedule: Path, verbose: bool
) -> dict[str, list[str]]:
    """The children's command lines, in start order. Quiet unless ``verbose``: Celery
    without its banner at WARNING, runserver without its system-check report, the
    sandbox without its banner and with an access log of errors only."""
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    celery = [sys.executable, "-m", "celery", "-A", "config", *([] if verbose else ["--quiet"])]
    level = "info" if verbose else "warning"
    return {
        "sandbox": [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--port",
            str(sandbox_port),
            "--redirect-uri",
            callback,
            *([] if verbose else ["--quiet"]),
        ],
        "worker": [
            *celery,
            "worker",
            "-Q",
            "exchange,refresh",
            "-l",
            level,
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
        ],
        "beat": [*celery, "beat", "-l", level, "--schedule", str(beat_schedule)],
        "portal": [
            *manage,
            "runserver",
            "--noreload",
            *([] if verbose else ["--skip-checks"]),
            f"localhost:{port}",
        ],
    }


def demo_child_env(base: dict[str, str], *, verbose: bool) -> dict[str, str]:
    """Log levels for the children: the portal's ``LOG_LEVEL`` (root logger of
    runserver, worker and beat) and the sandbox's ``SANDBOX_LOG_LEVEL``."""
    level = "INFO" if verbose else "WARNING"
    return {**base, "LOG_LEVEL": level, "SANDBOX_LOG_LEVEL": level}


def demo_keep_line(line: str, *, verbose: bool) -> bool:
    """Whether a child's output line reaches the console."""
    if verbose:
        return True
    return not any(pattern.search(line) for pattern in _QUIET_DROPS)


def demo_banner(
    *, portal_url: str, sandbox_url: str, broker: str, sweep_interval: str, logins: DemoLogins
) -> str:
    """What to open and how to log in; the URLs and logins are its last lines."""
    return "\n".join(
        [
            "",
            f"Connection portal demo is running (broker: {broker}; worker on queues "
            f"exchange,refresh; beat sweeps every {sweep_interval} s).",
            "Press Connect on 'Sandbox widgets', consent as the sandbox user, and watch the "
            "token renew itself about every 30 s on the connection's page.",
            "Quiet unless something fails (--verbose shows every request and renewal). "
            "Enter prints this again; Ctrl-C stops everything.",
            f"  Portal:  {portal_url}/   log in as {'/'.join(logins.customer)}",
            f"  Admin:   {portal_url}/admin/   log in as {'/'.join(logins.admin)}",
            f"  Sandbox: {sandbox_url}/o/   (the third-party app) "
            f"log in as {'/'.join(logins.sandbox_user)} when asked to consent",
            "",
        ]
    )


class Command(BaseCommand):
    help = "Run the portal, the sandbox OAuth server, a Celery worker and beat (Ctrl-C stops)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="portal port (localhost)")
        parser.add_argument("--sandbox-port", type=int, default=8001, help="sandbox port")
        parser.add_argument(
            "--sweep-interval",
            type=float,
            default=10.0,
            help="seconds between renewal sweeps (production default: 60)",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="migrate and seed only, then exit"
        )
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="show the children's start-up banners and every request, sweep and renewal",
        )

    def handle(self, *args: object, **options: Any) -> None:
        port, sandbox_port = options["port"], options["sandbox_port"]
        portal_url = f"http://localhost:{port}"
        # A different host name than the portal's, so the browser keeps their cookies apart.
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        callback = f"{portal_url}/{settings.OAUTH_CALLBACK_PATH}"

        for name, number in (("--port", port), ("--sandbox-port", sandbox_port)):
            if not _port_free(number):
                raise CommandError(f"Port {number} is in use; choose another with {name}.")
        call_command("migrate", interactive=False, verbosity=0)
        logins = demo_seed(sandbox_url=sandbox_url)
        if options["no_serve"]:
            self.stdout.write("Demo data ready.")
            return

        verbose = options["verbose"]
        env = demo_child_env(
            {
                **os.environ,
                # A host named: kombu warns "No hostname was supplied" for a bare filesystem://.
                "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL")
                or "filesystem://localhost//",
                "OAUTH_PUBLIC_CALLBACK_URL": callback,
                "RENEWAL_SWEEP_INTERVAL": str(options["sweep_interval"]),
                "PYTHONUNBUFFERED": "1",
            },
            verbose=verbose,
        )
        commands = demo_child_commands(
            port=port,
            sandbox_port=sandbox_port,
            callback=callback,
            beat_schedule=Path(settings.VAR_DIR) / "demo-beat-schedule",
            verbose=verbose,
        )
        banner = demo_banner(
            portal_url=portal_url,
            sandbox_url=sandbox_url,
            broker=env["CELERY_BROKER_URL"].split("@")[-1],
            sweep_interval=env["RENEWAL_SWEEP_INTERVAL"],
            logins=logins,
        )
        write_lock = threading.Lock()

        def say(text: str, style: Callable[[str], str] | None = None) -> None:
            with write_lock:
                self.stdout.write(style(text) if style else text)
                self.stdout.flush()

        processes: dict[str, subprocess.Popen] = {}
        # SIGTERM (say, from a process manager) stops the children just like Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            for name, command in commands.items():
                processes[name] = subprocess.Popen(  # noqa: S603 - our own fixed commands
                    command,
                    env=env,
                    cwd=settings.BASE_DIR,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                )
                _relay(name, processes[name].stdout, say, verbose=verbose)
                if name == "sandbox":  # the worker may renew at once: the sandbox first
                    _wait_for_port(sandbox_port, processes[name])
            _wait_for_port(port, processes["portal"])
            time.sleep(1)  # the children's last start-up lines come before the banner
            say(banner, self.style.SUCCESS)
            _on_enter(lambda: say(banner, self.style.SUCCESS))
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            dead = [name for name, process in processes.items() if process.poll() is not None]
            self.stderr.write(f"{', '.join(dead)} stopped; stopping the rest.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            _stop(processes.values())


def _relay(
    name: str, stream: IO[str] | None, say: Callable[[str], None], *, verbose: bool
) -> threading.Thread:
    """Copy a child's output to the console, prefixed with its name, quiet unless
    ``verbose`` (:func:`demo_keep_line`)."""

    def run() -> None:
        if stream is None:
            return
        for line in stream:
            line = line.rstrip("\n")
            if demo_keep_line(line, verbose=verbose):
                say(f"[{name}] {line}")

    thread = threading.Thread(target=run, name=f"demo-relay-{name}", daemon=True)
    thread.start()
    return thread


def _on_enter(action: Callable[[], None], stdin: Iterable[str] | None = None) -> None:
    """Run ``action`` whenever a line arrives on stdin (Enter), until stdin closes."""
    lines = sys.stdin if stdin is None else stdin

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            for _ in lines:
                action()

    threading.Thread(target=run, name="demo-enter", daemon=True).start()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until ``port`` accepts connections (or ``process`` died, or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and _port_free(port):
        time.sleep(0.2)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(processes: Iterable[subprocess.Popen[str]]) -> None:
    """SIGTERM each child (it stops its own workers), then SIGKILL the process group of
    whatever outlives the grace period."""
    processes = [p for p in processes if p.poll() is None]
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
