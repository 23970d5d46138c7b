"""Token URLs cannot reach into our own network (SSRF), nor use plain http."""

from __future__ import annotations

import pytest

from oauthflow.chain import run_token_chain
from oauthflow.exceptions import ProviderError
from oauthflow.models import TokenRequest
from oauthflow.netguard import BlockedDestination, check_destination
from tests.factories import AppFactory


@pytest.fixture
def production(settings):
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = False
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = False


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/token",
        "https://localhost/token",
        "https://10.0.0.8/token",
        "https://192.168.1.1/token",
        "https://172.16.5.4:8443/token",
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://[::1]/token",
        "https://[fd00::1]/token",
        "https://[::ffff:127.0.0.1]/token",
        "https://0.0.0.0/token",
        "http://example.com/token",  # plain http
        "ftp://example.com/token",
        "https:///token",
    ],
)
def test_private_loopback_link_local_and_plain_http_are_refused(production, url):
    with pytest.raises(BlockedDestination):
        check_destination(url)


def test_public_addresses_pass(production):
    check_destination("https://93.184.216.34/oauth/token")  # checked only; nothing is sent


@pytest.mark.django_db
def test_a_blocked_token_url_is_recorded_and_diagnosed_without_sending(production):
    app = AppFactory(token_url="https://169.254.169.254/token")
    with pytest.raises(ProviderError) as raised:
        run_token_chain(
            app=app, fields={"grant_type": "client_credentials"}, kind="client_credentials"
        )
    assert raised.value.outcome == "wrong_endpoint"  # an App setting: no retry helps
    record = TokenRequest.objects.get()
    assert (record.outcome, record.error, record.diagnosis) == (
        "wrong_endpoint",
        "blocked",
        "blocked_destination",
    )
    assert record.duration_ms == 0


def test_local_development_allows_http_loopback_only(settings):
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = True
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = True
    check_destination("http://127.0.0.1:8001/o/token/")
    with pytest.raises(BlockedDestination, match="loopback hosts only"):
        check_destination("http://auth.example.com/token")
