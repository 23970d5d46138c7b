"""``manage.py mock_token_endpoint``: a local token endpoint that prints what it receives.

The troubleshooting guide's "Mocking a token exchange endpoint" recipe (Smocker + ngrok)
without a container or a tunnel; see :mod:`oauthflow.mock_endpoint`. Example::

    python manage.py mock_token_endpoint --port 8080 --status 500 --max-requests 6

then set an App's token URL to ``http://127.0.0.1:8080/oauth2/token`` and connect.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oauthflow.mock_endpoint import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_HOST,
    announce,
    build_server,
    mock_reply_build,
    serve,
)


class Command(BaseCommand):
    help = (
        "Run a local mock token endpoint that prints every request (credentials as received: "
        "test credentials only) and answers with the chosen status and body."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--port", type=int, required=True, help="TCP port to listen on (0: any free port)."
        )
        parser.add_argument(
            "--status", type=int, required=True, help="HTTP status of every reply (200-599)."
        )
        parser.add_argument(
            "--body",
            help="Reply body, usually JSON (default: the guide's sample token reply for 2xx, "
            'else {"error": "server_error"}).',
        )
        parser.add_argument(
            "--host", default=DEFAULT_HOST, help=f"Address to bind (default: {DEFAULT_HOST})."
        )
        parser.add_argument(
            "--content-type",
            default=DEFAULT_CONTENT_TYPE,
            help=f"Content-Type of the reply (default: {DEFAULT_CONTENT_TYPE}).",
        )
        parser.add_argument(
            "--max-requests",
            type=int,
            help="Stop after this many requests (default: run until Ctrl-C).",
        )
        parser.add_argument(
            "--allow-remote",
            action="store_true",
            help="Allow a non-loopback --host (other machines could then reach it).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            reply = mock_reply_build(
                status=options["status"],
                body=options["body"],
                content_type=options["content_type"],
            )
            server = build_server(
                reply=reply,
                out=self.stdout,
                host=options["host"],
                port=options["port"],
                max_requests=options["max_requests"],
                allow_remote=options["allow_remote"],
            )
        except ValueError as exc:  # includes RemoteHostRefused
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from None
        announce(server)
        serve(server)
