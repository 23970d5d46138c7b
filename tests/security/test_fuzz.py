"""Hypothesis fuzzing with a fixed example budget: no 500, no escaping exception."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oauthflow.client import HttpReply
from oauthflow.exceptions import ProviderError
from oauthflow.tokens import parse_token_response
from tests.factories import CustomerFactory, UserFactory

BUDGET = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
params = st.dictionaries(
    st.sampled_from(["state", "code", "error", "error_description", "next", "x"]),
    st.text(max_size=300),
    max_size=5,
)


@pytest.fixture
def logged_in(db) -> Client:
    client = Client()
    client.force_login(UserFactory(customer=CustomerFactory()))
    return client


@BUDGET
@given(query=params)
def test_callback_never_errors_out(logged_in, query):
    response = logged_in.get(reverse("oauthflow:callback"), query)
    assert response.status_code in (302, 400)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=500),
    st.dictionaries(
        st.sampled_from(
            ["access_token", "token_type", "expires_in", "refresh_token", "scope", "error", "x"]
        ),
        json_values,
    ).map(lambda d: json.dumps(d).encode()),
)


@BUDGET
@given(
    body=bodies,
    status=st.sampled_from([200, 201, 400, 401, 404, 500]),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/html", ""]
    ),
)
def test_token_parser_returns_a_token_or_raises_provider_error(body, status, content_type):
    reply = HttpReply(
        status=status, headers={"content-type": content_type}, body=body, duration_ms=1
    )
    try:
        token = parse_token_response(reply)
    except ProviderError:
        return
    assert isinstance(token.access_token, str)
    assert token.access_token
    assert token.expires_in is None or token.expires_in > 0
