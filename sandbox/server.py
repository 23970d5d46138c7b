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

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"[sandbox] {format % args}\n")


def serve(*, host: str, port: int) -> None:
    """Serve the sandbox on ``host:port`` until SIGTERM or SIGINT."""
    application = StaticFilesHandler(get_wsgi_application())
    httpd = make_server(
        host, port, application, server_class=ThreadingWSGIServer, handler_class=QuietHandler
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
    print("Sandbox stopped.", flush=True)
