"""The worker supervisor: real ``celery worker`` processes (and ``celery beat``) for a run.

Each is started with this interpreter and production-like settings (no debug, http to the
loopback endpoint allowed), logs to a file of its own, and is stopped with a warm shutdown
(SIGTERM), then killed with its process group if it lingers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from benchmarks import BenchRefused

WORKER_QUEUES = ("refresh", "exchange")


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


def celery_start(argv: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` (a celery command) in a session of its own, output to ``log``."""
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def celery_stop(popens: Sequence[subprocess.Popen[bytes]], *, timeout: float = 30.0) -> None:
    """Warm shutdown (SIGTERM), then kill the process group of any still up."""
    for popen in popens:
        if popen.poll() is None:
            popen.terminate()
    deadline = time.monotonic() + timeout
    for popen in popens:
        try:
            popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(5)


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
            log = self.log_dir / f"{name.split('@')[0]}.log"
            self.popens.append(celery_start(self._argv(name, concurrency), env=env, log=log))
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
        celery_stop(self.popens, timeout=timeout)
        self.popens = []

    def __enter__(self) -> WorkerGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BeatProcess:
    """``celery beat`` with the production schedule (``CELERY_BEAT_SCHEDULE``: the sweep
    every ``RENEWAL_SWEEP_INTERVAL`` seconds), a fresh schedule file in ``log_dir`` so its
    first sweep comes one interval after it starts, as after a deploy."""

    def __init__(self, *, log_dir: Path, log_level: str = "WARNING") -> None:
        self.log_dir = log_dir
        self.log_level = log_level
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> BeatProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        schedule = self.log_dir / "bench-celerybeat-schedule"
        for stale in self.log_dir.glob(f"{schedule.name}*"):
            stale.unlink()
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "beat", "-l", self.log_level,
            "-s", str(schedule), "--pidfile=",
        ]  # fmt: skip
        env = worker_env(log_level=self.log_level)
        self.popen = celery_start(argv, env=env, log=self.log_dir / "bench-beat.log")
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is not None:
            celery_stop([self.popen])
        self.popen = None

    def __enter__(self) -> BeatProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
