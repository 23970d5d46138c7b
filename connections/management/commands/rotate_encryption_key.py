"""``manage.py rotate_encryption_key``: re-encrypt every secret under the newest key.

Put the new key first in ``FIELD_ENCRYPTION_KEYS`` (keep the old ones after it), deploy,
run this (again if interrupted: it resumes), then drop the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections.key_rotation import encryption_rotate


class Command(BaseCommand):
    help = "Re-encrypt client secrets and tokens under the first FIELD_ENCRYPTION_KEYS key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: object, **options: Any) -> None:
        report = encryption_rotate(
            batch_size=options["batch_size"],
            progress=(lambda line: self.stdout.write(line)) if options["verbosity"] > 1 else None,
        )
        self.stdout.write(
            f"Re-encrypted {report.rotated} value(s); {report.current} already under the "
            "newest key."
        )
        if report.unreadable:
            raise CommandError(
                f"{len(report.unreadable)} value(s) decrypt with no configured key (was a key "
                "removed too early?): " + ", ".join(report.unreadable[:20])
            )
