"""``manage.py import_apps FILE``: create or update Apps and Connections from YAML or JSON.

The file format is documented in :mod:`connections.config_files`.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from connections.config_files import (
    FORMATS,
    ConfigFileError,
    apps_import,
    config_format_for_path,
    config_parse,
)


class Command(BaseCommand):
    help = (
        "Create or update Apps and Connections from a YAML or JSON file (matched by slug). "
        "All or nothing: any error writes nothing. Secrets: client_secret: env:NAME."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="YAML or JSON file; '-' reads standard input.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="File format (default: json for *.json, else yaml).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report what would change, without writing anything.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        fmt = options["format"] or config_format_for_path(path=path)
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None

        try:
            report = apps_import(data=config_parse(text=text, fmt=fmt), dry_run=options["dry_run"])
        except ConfigFileError as exc:
            problems = "\n".join(f"  - {error}" for error in exc.errors)
            raise CommandError(
                f"{path}: {len(exc.errors)} error(s); nothing was written.\n{problems}"
            ) from None

        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        for result in report.results:
            self.stdout.write(str(result))
        self.stdout.write(self.style.SUCCESS(report.summary))
