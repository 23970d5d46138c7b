"""The authorize redirect: the guide's query, plus response_type, PKCE and quirks."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from connections.models import OfflineStrategy
from oauthflow.authorize import authorize_url_build
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

GUIDE_URL = (
    "https://auth.example.com/authorize?client_id=abc-123"
    "&redirect_uri=https%3A%2F%2Foauth2.prismatic.io%2Fcallback"
    "&scope=widget%3Aread+widget%3Awrite&state=SW5example"
)


@pytest.fixture(autouse=True)
def _guide_callback(settings):
    settings.OAUTH_PUBLIC_CALLBACK_URL = "https://oauth2.prismatic.io/callback"


def test_authorize_url_is_the_guides_plus_response_type() -> None:
    app = AppFactory(client_id="abc-123", authorize_url="https://auth.example.com/authorize")
    url = authorize_url_build(app=app, scopes=["widget:read", "widget:write"], state="SW5example")
    assert url == GUIDE_URL.replace("?client_id", "?response_type=code&client_id")


def test_pkce_adds_an_s256_challenge_of_the_verifier() -> None:
    app = AppFactory(use_pkce=True)
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
    query = parse_qs(
        urlsplit(authorize_url_build(app=app, scopes=[], state="s", code_verifier=verifier)).query
    )
    assert query["code_challenge"] == ["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"]
    assert query["code_challenge_method"] == ["S256"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert query["code_challenge"][0] == expected.decode()


@pytest.mark.parametrize(
    ("strategy", "param"),
    [
        (OfflineStrategy.ACCESS_TYPE_OFFLINE, ("access_type", "offline")),
        (OfflineStrategy.DURATION_PERMANENT, ("duration", "permanent")),
        (OfflineStrategy.TOKEN_ACCESS_TYPE_OFFLINE, ("token_access_type", "offline")),
    ],
)
def test_offline_switch_other_than_the_scope_is_sent_as_a_parameter(strategy, param) -> None:
    app = AppFactory(offline_strategy=strategy)
    query = parse_qs(urlsplit(authorize_url_build(app=app, scopes=["a"], state="s")).query)
    assert query[param[0]] == [param[1]]


def test_extra_params_scope_separator_and_prompt_consent() -> None:
    app = AppFactory(
        scope_separator=",",
        prompt_consent=True,
        extra_authorize_params={"audience": "api.example.com"},
        authorize_url="https://auth.example.com/authorize?tenant=acme",
    )
    url = authorize_url_build(app=app, scopes=["a", "b"], state="s")
    assert url.startswith("https://auth.example.com/authorize?tenant=acme&response_type=code")
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["a,b"]
    assert "prompt" not in query  # consent is forced only when asking for offline access
    offline = parse_qs(
        urlsplit(authorize_url_build(app=app, scopes=["a", "offline_access"], state="s")).query
    )
    assert offline["prompt"] == ["consent"]
    assert query["audience"] == ["api.example.com"]
