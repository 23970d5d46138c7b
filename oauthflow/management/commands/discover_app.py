"""``manage.py discover_app ISSUER --slug SLUG``: make or refresh an App from its issuer.

RFC 8414 / OpenID Connect discovery (``oauthflow.discovery``), then the App check
(``oauthflow.app_check``: a fake code to each flavor, at most six requests).
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from connections.models import App
from oauthflow.app_check import app_check
from oauthflow.app_sources import app_apply_source, app_source_values
from oauthflow.discovery import app_discover, endpoints_elsewhere
from oauthflow.exceptions import ConfigurationError


class Command(BaseCommand):
    help = (
        "Create an App from an issuer URL (RFC 8414 / OpenID Connect discovery), or "
        "re-discover an existing one, then check its client credentials with a fake code."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("issuer", help="Issuer URL, or its .well-known metadata URL.")
        parser.add_argument("--slug", required=True, help="The App's slug (existing: refresh).")
        parser.add_argument("--name", help="Name of a new App (default: from the issuer).")
        parser.add_argument("--client-id", help="Client ID of a new App.")
        parser.add_argument(
            "--client-secret-env",
            metavar="NAME",
            help="Environment variable holding the client secret (never on the command line).",
        )
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="Skip the App check (skipped anyway when the token URL is not on the "
            "issuer's host; run the admin's Check App after looking).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            app, changes = self._discover(options)
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{app.slug}: discovered from {app.discovery_url}")
        self.stdout.write("  changed: " + (", ".join(changes) if changes else "nothing"))
        elsewhere = endpoints_elsewhere(app)
        if elsewhere:
            self.stdout.write(f"  warning: {elsewhere}")
        if options["no_check"] or elsewhere:
            return
        try:
            result = app_check(app=app)
        except ConfigurationError as exc:
            self.stdout.write(f"  not checked: {exc}")
            return
        for row in result.rows:
            self.stdout.write(f"  {row.label}: HTTP {row.status or '—'}: {row.verdict}")
        self.stdout.write(("  ok: " if result.ok else "  PROBLEM: ") + result.summary)
        if not result.ok:
            raise CommandError("The App check found no flavor that authenticates.")

    def _discover(self, options: dict[str, Any]) -> tuple[App, list[str]]:
        app = App.objects.filter(slug=options["slug"]).first()
        if app is not None:
            return app, app_discover(app=app, issuer=options["issuer"])
        if not options.get("client_id"):
            raise ConfigurationError("A new App needs --client-id.")
        secret = None
        if options.get("client_secret_env"):
            secret = os.environ.get(options["client_secret_env"])
            if not secret:
                raise ConfigurationError(f"{options['client_secret_env']} is not set.")
        values = app_source_values(issuer=options["issuer"])
        fields = {f.name for f in App._meta.get_fields() if f.concrete}
        app = App(
            **{name: value for name, value in values.items() if name in fields},
            slug=slugify(options["slug"])[:100],
            client_id=options["client_id"],
            client_secret=secret,
        )
        if options.get("name"):
            app.name = options["name"]
        app_apply_source(app=app, values=values)
        try:
            app.full_clean()
        except ValidationError as exc:
            raise ConfigurationError(f"The discovered App is not valid: {exc}") from exc
        app.save()
        return app, ["created"]
