"""No secret in admin pages (as admin or operator), task messages, or redirects off-site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from connections.models import Status
from oauthflow import tasks
from tests.factories import ConfigVariableFactory, ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET, ACCESS, REFRESH = "client-secret-zz9", "access-token-yy8", "refresh-token-xx7"


@pytest.fixture
def stored():
    return ConfigVariableFactory(
        connection__app__client_secret=SECRET,
        status=Status.CONNECTED,
        access_token=ACCESS,
        refresh_token=REFRESH,
    )


@pytest.fixture
def operator_client() -> Client:
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Operators"))
    client = Client()
    client.force_login(user)
    return client


def _admin_pages(cv) -> list[str]:
    app = cv.connection.app
    return [
        reverse("admin:connections_app_changelist"),
        reverse("admin:connections_app_change", args=[app.pk]),
        reverse("admin:connections_configvariable_changelist"),
        reverse("admin:connections_configvariable_change", args=[cv.pk]),
        reverse("admin:connections_connection_change", args=[cv.connection.pk]),
        reverse("admin:oauthflow_tokenrequest_changelist"),
    ]


@pytest.mark.parametrize("who", ["admin_client", "operator_client"])
def test_admin_pages_never_show_a_secret_or_token(request, who, stored):
    client = request.getfixturevalue(who)
    for url in _admin_pages(stored):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in (SECRET, ACCESS, REFRESH):
            assert secret not in html, f"{secret} on {url}"


def test_operators_see_whether_a_secret_is_set_but_cannot_change_apps(operator_client, stored):
    url = reverse("admin:connections_app_change", args=[stored.connection.app.pk])
    assert "set (write-only)" in operator_client.get(url).content.decode()
    operator_client.post(url, {"client_secret": "hijacked"})
    stored.connection.app.refresh_from_db()
    assert stored.connection.app.client_secret == SECRET


def test_operators_can_act_on_connections(operator_client, stored):
    response = operator_client.post(
        reverse("admin:connections_configvariable_changelist"),
        {"action": "disconnect", "_selected_action": [stored.pk]},
        follow=True,
    )
    assert response.status_code == 200
    stored.refresh_from_db()
    assert stored.status == Status.DISCONNECTED


@responses.activate
def test_task_messages_carry_ids_only(
    portal_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    for task in (tasks.exchange_code, tasks.renew_config_variable):
        original = task.apply_async

        def spy(args=None, kwargs=None, _original=original, **options):
            sent.append(json.dumps({"args": args, "kwargs": kwargs}))
            return _original(args=args, kwargs=kwargs, **options)

        monkeypatch.setattr(task, "apply_async", spy)
    responses.post(
        "https://app.example.com/oauth2/token",
        json={"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 60},
    )
    connection = ConnectionFactory(app__client_secret=SECRET, app__use_pkce=True)
    location = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    with django_capture_on_commit_callbacks(execute=True):
        portal_client.get(reverse("oauthflow:callback"), {"code": "code-ww6", "state": state})
    tasks.renew_config_variable.delay(str(connection.config_variables.get().pk), force=True)
    assert len(sent) == 2
    for message in sent:
        for secret in (SECRET, ACCESS, REFRESH, "code-ww6"):
            assert secret not in message


@pytest.mark.parametrize(
    "next_url", ["https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com"]
)
def test_login_never_redirects_off_site(client, customer_user, next_url):
    response = client.post(
        reverse("login") + "?next=" + next_url,
        {"username": customer_user.username, "password": "pw-for-tests", "next": next_url},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("connections:portal")


def test_callback_ignores_a_next_parameter(portal_client):
    connection = ConnectionFactory()
    location = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    response = portal_client.get(
        reverse("oauthflow:callback"),
        {"error": "access_denied", "state": state, "next": "https://evil.example.com/"},
    )
    assert response["Location"].startswith("/")


def test_check_deploy_passes_with_the_documented_production_settings(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-9f8e7d6c",
        "FIELD_ENCRYPTION_KEYS": "production-field-key",
        "DJANGO_ALLOWED_HOSTS": "portal.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://portal.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        "METRICS_TOKEN": "a-long-random-scrape-token",
    }
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(manage), "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
