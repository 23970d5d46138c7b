"""Every handler that prints django.request records masks a connect link's token: the
project's console and, in DEBUG, Django's own default console (config/settings.py
LOGGING)."""

from __future__ import annotations

import io
import logging

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils.log import configure_logging

pytestmark = pytest.mark.django_db

TOKEN = "cst_" + "S3cr3tT0ken" * 4


@pytest.fixture
def printed(settings):
    """Logging as a DEBUG server configures it (Django's defaults, then LOGGING), every
    handler writing to one buffer; the usual logging afterwards."""
    settings.DEBUG = True
    configure_logging(django_settings.LOGGING_CONFIG, django_settings.LOGGING)
    buffer = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("", "django", "django.request")]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(buffer)
    yield buffer
    configure_logging(django_settings.LOGGING_CONFIG, django_settings.LOGGING)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", f"/connect/{TOKEN}/", 404), ("head", f"/connect/{TOKEN}", 405)],
)
def test_a_connect_links_token_never_reaches_a_console(printed, method, path, status):
    response = getattr(Client(), method)(path)
    assert response.status_code == status
    output = printed.getvalue()
    assert "/connect/[REDACTED]" in output  # the line was printed
    assert TOKEN[4:] not in output
