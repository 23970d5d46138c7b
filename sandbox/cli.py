"""Command line of the sandbox: ``python -m sandbox {serve,setup,manage}``.

``setup`` migrates the sandbox database and creates the demo user and clients;
``serve`` does the same, then serves until SIGTERM or SIGINT; ``manage`` runs any
Django management command against the sandbox (``python -m sandbox manage shell``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

SETTINGS_MODULE = "sandbox.settings"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Local OAuth 2.0 authorization server (DOT)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("setup", "migrate and create the demo user and clients"),
        ("serve", "set up, then serve HTTP until SIGTERM/SIGINT"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--redirect-uri",
            action="append",
            dest="redirect_uris",
            default=[],
            metavar="URI",
            help="the portal's callback URL; repeat for several (default: "
            "http://localhost:8000/oauth2/callback)",
        )
        if name == "serve":
            command.add_argument("--host", default="127.0.0.1")
            command.add_argument("--port", type=int, default=8001)
            command.add_argument(
                "--quiet",
                action="store_true",
                help="no banner; log only requests answered with an error",
            )
    manage = commands.add_parser("manage", help="run a Django management command")
    manage.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _banner(*, base_url: str, redirect_uris: Sequence[str]) -> str:
    from sandbox import provisioning as p

    return "\n".join(
        [
            f"Sandbox authorization server at {base_url}/",
            f"  authorize URL: {base_url}/o/authorize/",
            f"  token URL:     {base_url}/o/token/",
            f"  introspect:    {base_url}/o/introspect/",
            f"  user login:    {p.DEMO_USERNAME} / {p.DEMO_PASSWORD}",
            f"  client (authorization code): {p.CLIENT_ID} / {p.CLIENT_SECRET}",
            f"  client (client credentials): {p.CC_CLIENT_ID} / {p.CC_CLIENT_SECRET}",
            f"  redirect URIs: {' '.join(redirect_uris)}",
            "Stop with Ctrl-C.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    # Always the sandbox's own settings, even when started from the portal's environment.
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    options = _parser().parse_args(argv)
    import django

    if options.command == "manage":
        from django.core.management import execute_from_command_line

        execute_from_command_line(["python -m sandbox manage", *options.args])
        return 0
    django.setup()
    from sandbox.provisioning import DEFAULT_REDIRECT_URI, sandbox_setup

    redirect_uris = options.redirect_uris or [DEFAULT_REDIRECT_URI]
    sandbox_setup(redirect_uris=redirect_uris)
    if options.command == "setup":
        print(f"Sandbox ready; redirect URIs: {' '.join(redirect_uris)}", flush=True)
        return 0
    from sandbox.server import serve

    host = f"[{options.host}]" if ":" in options.host else options.host
    if not options.quiet:
        banner = _banner(base_url=f"http://{host}:{options.port}", redirect_uris=redirect_uris)
        print(banner, flush=True)
    serve(host=options.host, port=options.port, access_log=not options.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
