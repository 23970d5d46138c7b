"""Secrets at rest: ciphertext only, and keys rotate without downtime or loss."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from connections.key_rotation import reset_key_cache
from connections.models import App, ConfigVariable
from tests.factories import AppFactory, ConfigVariableFactory

pytestmark = pytest.mark.django_db

PLAINTEXTS = ("client-secret-a1", "access-token-b2", "refresh-token-c3", "code-d4", "verifier-e5")


@pytest.fixture
def keys(settings):
    """Set FIELD_ENCRYPTION_KEYS (Django's SALT_KEY) for the test, then restore."""

    def use(*names: str) -> None:
        settings.SALT_KEY = list(names)
        reset_key_cache()

    use("key-one")
    yield use
    settings.SALT_KEY = settings.SALT_KEY  # the fixture restores the value after us
    reset_key_cache()


@pytest.fixture
def secrets_stored(keys):
    app = AppFactory(client_secret=PLAINTEXTS[0])
    cv = ConfigVariableFactory(
        connection__app=app,
        access_token=PLAINTEXTS[1],
        refresh_token=PLAINTEXTS[2],
        pending_code=PLAINTEXTS[3],
        code_verifier=PLAINTEXTS[4],
    )
    return app, cv


def _raw(table: str, columns: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table}")  # noqa: S608 - fixed names
        return cursor.fetchall()


def test_secret_columns_hold_ciphertext_only(secrets_stored):
    raw = repr(_raw("connections_app", "*")) + repr(_raw("connections_configvariable", "*"))
    for plaintext in PLAINTEXTS:
        assert plaintext not in raw


def test_rotation_rewrites_under_the_new_key_and_resumes(secrets_stored, keys):
    app, cv = secrets_stored
    before = _raw("connections_configvariable", "access_token")
    keys("key-two", "key-one")
    out = io.StringIO()
    call_command("rotate_encryption_key", "--batch-size", "1", stdout=out)
    assert "Re-encrypted 5 value(s); 0 already" in out.getvalue()
    assert _raw("connections_configvariable", "access_token") != before
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)  # a second run has nothing to do
    assert "Re-encrypted 0 value(s); 5 already" in out.getvalue()
    keys("key-two")  # the old key is gone: everything still reads
    assert App.objects.get(pk=app.pk).client_secret == PLAINTEXTS[0]
    fresh = ConfigVariable.objects.get(pk=cv.pk)
    assert fresh.access_token == PLAINTEXTS[1]
    assert fresh.refresh_token == PLAINTEXTS[2]
    assert fresh.code_verifier == PLAINTEXTS[4]


def test_rotation_names_values_no_key_can_read(secrets_stored, keys):
    keys("a-key-never-used")
    with pytest.raises(CommandError, match="decrypt with no configured key"):
        call_command("rotate_encryption_key", stdout=io.StringIO())


def test_reading_with_no_matching_key_fails_loudly_instead_of_returning_ciphertext(
    secrets_stored, keys
):
    keys("a-key-never-used")
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        App.objects.get(pk=secrets_stored[0].pk)


def test_healthz_reports_keys_that_cannot_decrypt(secrets_stored, keys, client):
    assert client.get("/healthz").json()["encryption_keys"] == "ok"
    keys("a-key-never-used")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["encryption_keys"] == "cannot decrypt stored secrets"
