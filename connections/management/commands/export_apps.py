"""``manage.py export_apps``: write every App and Connection as YAML or JSON, no secrets.

The output re-imports with ``import_apps`` (format: :mod:`connections.config_files`).
``client_secret`` is omitted, which on import keeps the stored secret.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from connections.config_files import FORMATS, apps_export, config_dump, config_format_for_path


class Command(BaseCommand):
    help = "Write Apps and Connections as YAML or JSON for import_apps. Secrets are never written."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="Output format (default: json when --output ends in .json, else yaml).",
        )
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        output: str | None = options["output"]
        fmt = options["format"] or (config_format_for_path(path=output) if output else "yaml")
        data = apps_export()
        text = config_dump(data=data, fmt=fmt)
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc}") from None
        connections = sum(len(app["connections"]) for app in data["apps"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {len(data['apps'])} app(s) and {connections} connection(s) to {output}."
            )
        )
