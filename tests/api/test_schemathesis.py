"""Property-based: every operation of the document, called in-process (WSGI) with
generated requests and a key holding every scope, answers no 5xx and what the document
says. Bounded (a few examples per operation) to stay well under a minute."""

from __future__ import annotations

import zlib

import pytest
import responses
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from api.keys import environment_key_create
from api.models import Scope
from config.wsgi import application
from connect_sessions.models import ReturnUrlAllowed
from tests.api.conftest import connected

pytestmark = pytest.mark.django_db


# Loaded at collection: serving the document reads no database.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application)


@pytest.fixture(autouse=True)
def _connections_stay_open():
    """Schemathesis calls the WSGI application itself, so Django's request signals close
    the test's database connection after each call (a WSGI server's behaviour; Django's
    test client disconnects the same handler for the same reason)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(settings):
    """A key with every scope and a connected connection the generated IDs may name.
    Schemathesis also probes with wrong keys: the throttle (tested on its own) would
    turn those 401s into 429s."""
    settings.API_KEY_FAILURE_LIMIT = 10**6
    _, key = environment_key_create(name="schemathesis", scopes=Scope.values)
    cv = connected()
    ReturnUrlAllowed.objects.create(url="https://app.example.com")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(cv.connection.app.token_url, json={"access_token": "new", "expires_in": 3600})
        yield key, cv


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(case, seeded):
    key, cv = seeded
    excluded = []
    if case.meta is not None and case.meta.generation.mode is GenerationMode.NEGATIVE:
        # Our valid key replaces a generated bad Authorization header, so a "negative"
        # case may be a valid request: the other checks (no 5xx, documented statuses
        # and bodies) still apply.
        excluded.append(negative_data_rejection)
    else:
        given = (case.path_parameters or {}).get("id")
        # Half the generated IDs become a real connection, so 200s are exercised too.
        if given is not None and zlib.crc32(str(given).encode()) % 2 == 0:
            case.path_parameters["id"] = str(cv.pk)
    if case.path == "/api/v1/connect-sessions":
        # A session naming Connections or a return URL the portal does not have is a
        # 400 by design (the document cannot list them).
        excluded.append(positive_data_acceptance)
    if (case.query or {}).get("cursor"):
        # A cursor is opaque: one the API did not give is a 400 by design.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, excluded_checks=excluded)
