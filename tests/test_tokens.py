"""Token replies are parsed tolerantly: one row per real-world shape."""

from __future__ import annotations

import pytest

from oauthflow.client import HttpReply
from oauthflow.exceptions import ProviderError
from oauthflow.tokens import parse_token_response


def _reply(body: str, content_type: str = "application/json", status: int = 200) -> HttpReply:
    return HttpReply(
        status=status, headers={"content-type": content_type}, body=body.encode(), duration_ms=1
    )


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ('{"access_token":"a","expires_in":3600}', "application/json", ("a", 3600, "Bearer", None)),
        (
            '{"access_token":"a","expires_in":"3600"}',
            "application/json",
            ("a", 3600, "Bearer", None),
        ),
        ('{"access_token":"a"}', "application/json", ("a", None, "Bearer", None)),
        (
            '{"access_token":"a","token_type":"BEARER","refresh_token":"r"}',
            "application/json",
            ("a", None, "BEARER", "r"),  # kept as sent; integrations get "Bearer"
        ),
        (
            "access_token=a&expires_in=60&refresh_token=r",
            "application/x-www-form-urlencoded",
            ("a", 60, "Bearer", "r"),
        ),
        (
            "access_token=a&token_type=bearer",
            "text/plain; charset=utf-8",
            ("a", None, "bearer", None),
        ),
        (
            '{"access_token":"a","expires_in":"soon"}',
            "application/json",
            ("a", None, "Bearer", None),
        ),
    ],
)
def test_successful_shapes(body, content_type, expected):
    token = parse_token_response(_reply(body, content_type))
    assert (token.access_token, token.expires_in, token.token_type, token.refresh_token) == expected


def test_extra_fields_are_kept_without_tokens():
    token = parse_token_response(
        _reply(
            '{"access_token":"a","id_token":"jwt",'
            '"instance_url":"https://x.example.com","scope":"a b"}'
        )
    )
    assert token.extra == {"instance_url": "https://x.example.com"}
    assert token.scope == "a b"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (
            '{"error":"invalid_grant","error_description":"Code expired"}',
            "application/json",
            400,
            "invalid_grant",
        ),
        (
            '{"error":"invalid_client"}',
            "application/json",
            200,
            "invalid_client",
        ),  # error inside a 200
        ("<html><body>Sign in</body></html>", "text/html", 200, ""),
        ("", "application/json", 204, ""),
        ('{"token":"nope"}', "application/json", 200, ""),
        ("[1, 2]", "application/json", 200, ""),
    ],
)
def test_replies_without_an_access_token_raise_with_the_rfc_error(
    body, content_type, status, error
):
    with pytest.raises(ProviderError) as caught:
        parse_token_response(_reply(body, content_type, status))
    assert caught.value.error == error
    assert caught.value.status == status


def test_extra_fields_with_nul_characters_are_dropped():
    token = parse_token_response(_reply('{"access_token":"a","instance_url":"x\\u0000y","ok":"1"}'))
    assert token.extra == {"ok": "1"}
