"""``manage.py demo``: the whole portal on one machine, as in production.

Migrates, seeds the demo rows (``connections.demo``), then runs and supervises the
portal, the sandbox authorization server (django-oauth-toolkit, its own process and
database), a Celery worker and Celery beat. The broker is Redis when
``CELERY_BROKER_URL`` is set, else kombu's file-system transport under ``var/broker``,
so the same worker and beat code runs as in production. Ctrl-C stops everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections.demo import demo_seed

STOP_GRACE_SECONDS = 10


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

    def handle(self, *args: object, **options: object) -> None:
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

        env = {
            **os.environ,
            "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or "filesystem://",
            "OAUTH_PUBLIC_CALLBACK_URL": callback,
            "RENEWAL_SWEEP_INTERVAL": str(options["sweep_interval"]),
            "PYTHONUNBUFFERED": "1",
        }
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        commands = {
            "sandbox": [
                sys.executable,
                "-m",
                "sandbox",
                "serve",
                "--port",
                str(sandbox_port),
                "--redirect-uri",
                callback,
            ],
            "worker": [
                *celery,
                "worker",
                "-Q",
                "exchange,refresh",
                "-l",
                "info",
                "--concurrency",
                "2",
                "--without-mingle",
                "--without-gossip",
            ],
            "beat": [
                *celery,
                "beat",
                "-l",
                "info",
                "--schedule",
                str(Path(settings.VAR_DIR) / "demo-beat-schedule"),
            ],
            "portal": [*manage, "runserver", "--noreload", f"localhost:{port}"],
        }
        processes: dict[str, subprocess.Popen] = {}
        # SIGTERM (say, from a process manager) stops the children just like Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            for name, command in commands.items():
                processes[name] = subprocess.Popen(  # noqa: S603 - our own fixed commands
                    command, env=env, cwd=settings.BASE_DIR, start_new_session=True
                )
            time.sleep(2)
            self.stdout.write(
                self.style.SUCCESS(self._banner(portal_url, sandbox_url, env, logins))
            )
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            dead = [name for name, process in processes.items() if process.poll() is not None]
            self.stderr.write(f"{', '.join(dead)} stopped; stopping the rest.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            _stop(processes.values())

    @staticmethod
    def _banner(portal_url: str, sandbox_url: str, env: dict[str, str], logins: object) -> str:
        broker = env["CELERY_BROKER_URL"].split("@")[-1]
        return "\n".join(
            [
                "",
                "Connection portal demo is running.",
                f"  Portal:  {portal_url}/   log in as {'/'.join(logins.customer)}",
                f"  Admin:   {portal_url}/admin/   log in as {'/'.join(logins.admin)}",
                f"  Sandbox: {sandbox_url}/o/   (the third-party app) "
                f"log in as {'/'.join(logins.sandbox_user)} when asked to consent",
                f"  Broker:  {broker}; worker on queues exchange,refresh; beat sweeps every "
                f"{env['RENEWAL_SWEEP_INTERVAL']} s",
                "Press Connect on 'Sandbox widgets', consent, and watch the token renew itself "
                "about every 30 s on the connection's page. Ctrl-C stops everything.",
                "",
            ]
        )


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


def _stop(processes: object) -> None:
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
