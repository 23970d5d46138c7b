"""A small threaded WSGI server (stdlib ``wsgiref``) that stops cleanly on a signal."""

from __future__ import annotations

import signal
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request; request threads never keep the process alive."""

    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    """Access log lines on stderr without the client address noise."""

    errors_only = False  # log only requests answered 4xx or 5xx (and server errors)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.errors_only and str(code).isdigit() and int(code) < 400:
            return
        super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"[sandbox] {format % args}\n")


class ErrorsOnlyHandler(QuietHandler):
    errors_only = True


def serve(*, host: str, port: int, access_log: bool = True) -> None:
    """Serve the sandbox on ``host:port`` until SIGTERM or SIGINT; without ``access_log``
    only requests answered with an error are logged."""
    application = StaticFilesHandler(get_wsgi_application())
    httpd = make_server(
        host,
        port,
        application,
        server_class=ThreadingWSGIServer,
        handler_class=QuietHandler if access_log else ErrorsOnlyHandler,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="sandbox-http"
    )
    worker.start()
    try:
        while not stop.wait(0.5):
            if not worker.is_alive():
                break
    finally:
        httpd.shutdown()
        worker.join(timeout=5)
        httpd.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if access_log:
        print("Sandbox stopped.", flush=True)
