"""/metrics refuses any wrong bearer token with a 401 (never a 500), and a deployment
with no METRICS_TOKEN is warned about by ``check --deploy``."""

from __future__ import annotations

import pytest
from django.core.checks import Tags, run_checks
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "header",
    ["Bearer é", "Bearer \u00ff\u00fe", "Bearer scrape-mé", "é", "Bearer", "", "Basic x"],
)
def test_any_wrong_authorization_is_a_401(client, settings, header):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION=header).status_code == 401


def test_a_non_ascii_token_works_too(client, settings):
    settings.METRICS_TOKEN = "scrapé"
    # WSGI header values are latin-1 decoded bytes: the UTF-8 bytes of the token.
    header = "Bearer " + "scrapé".encode().decode("latin-1")
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION=header).status_code == 401
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrapé").status_code == 200


def test_the_right_token_is_accepted(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    response = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me")
    assert response.status_code == 200


def _deploy_warnings():
    return {m.id for m in run_checks(tags=[Tags.security], include_deployment_checks=True)}


def test_check_deploy_warns_when_metrics_are_public(settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = ""
    assert "connections.W001" in _deploy_warnings()


def test_no_warning_with_a_token_or_in_debug(settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = "scrape-me"
    assert "connections.W001" not in _deploy_warnings()
    settings.DEBUG = True
    settings.METRICS_TOKEN = ""
    assert "connections.W001" not in _deploy_warnings()


def test_the_check_is_a_deploy_check_only(settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = ""
    assert "connections.W001" not in {m.id for m in run_checks(tags=[Tags.security])}
