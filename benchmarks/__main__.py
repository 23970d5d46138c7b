"""``python -m benchmarks renewal …``: Django is set up here, then ``benchmarks.cli`` runs."""

import os
import sys

import django


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from benchmarks.cli import main as cli_main  # after setup: it imports the models

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
