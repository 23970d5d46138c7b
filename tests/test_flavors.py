"""Golden bytes: the six flavors send exactly what the troubleshooting guide shows."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

import pytest

from oauthflow.flavors import FLAVORS_BY_NUMBER, build_token_request, flavor_order

GUIDE_FIELDS = {
    "grant_type": "authorization_code",
    "scope": "widgets:read widgets:write offline_access",
    "redirect_uri": "https://oauth2.prismatic.io/callback",
    "code": "some-unique-auth-code",
}
GUIDE_BASIC = "Basic bXktY2xpZW50LWlkOm15LWNsaWVudC1zZWNyZXQ="
GUIDE_FORM = (
    "grant_type=authorization_code&scope=widgets%3Aread%20widgets%3Awrite%20offline_access"
    "&redirect_uri=https%3A%2F%2Foauth2.prismatic.io%2Fcallback&code=some-unique-auth-code"
)
GUIDE_JSON = (
    '{"code":"some-unique-auth-code","grant_type":"authorization_code",'
    '"redirect_uri":"https://oauth2.prismatic.io/callback",'
    '"scope":"widgets:read widgets:write offline_access"}'
)
# Copied from the guide's curl commands, flavor by flavor.
GOLDEN = {
    1: (
        {"Authorization": GUIDE_BASIC, "Content-Type": "application/x-www-form-urlencoded"},
        GUIDE_FORM,
    ),
    2: ({"Authorization": GUIDE_BASIC, "Content-Type": "application/json"}, GUIDE_JSON),
    3: (
        {"Content-Type": "application/x-www-form-urlencoded"},
        GUIDE_FORM + "&client_id=my-client-id&client_secret=my-client-secret",
    ),
    4: (
        {"Content-Type": "application/json"},
        '{"client_id":"my-client-id","client_secret":"my-client-secret",'
        '"code":"some-unique-auth-code","grant_type":"authorization_code",'
        '"redirect_uri":"https://oauth2.prismatic.io/callback",'
        '"scope":"widgets:read widgets:write offline_access"}',
    ),
    # 5 and 6 equal 1 and 2 for credentials that need no URL-encoding.
    5: (
        {"Authorization": GUIDE_BASIC, "Content-Type": "application/x-www-form-urlencoded"},
        GUIDE_FORM,
    ),
    6: ({"Authorization": GUIDE_BASIC, "Content-Type": "application/json"}, GUIDE_JSON),
}


@pytest.mark.parametrize("number", sorted(GOLDEN))
def test_flavor_sends_the_guides_exact_headers_and_body(number: int) -> None:
    spec = build_token_request(
        FLAVORS_BY_NUMBER[number],
        client_id="my-client-id",
        client_secret="my-client-secret",
        fields=GUIDE_FIELDS,
    )
    headers, body = GOLDEN[number]
    assert spec.headers == headers
    assert spec.body == body.encode()


AWKWARD_SECRET = "se+cr/et:50% off"


def _basic_pair(header: str) -> str:
    return base64.b64decode(header.removeprefix("Basic ")).decode()


@pytest.mark.parametrize(("encoded", "raw"), [(1, 5), (2, 6)])
def test_raw_basic_flavors_differ_only_where_credentials_need_encoding(
    encoded: int, raw: int
) -> None:
    build = {
        n: build_token_request(
            FLAVORS_BY_NUMBER[n],
            client_id="my client",
            client_secret=AWKWARD_SECRET,
            fields=GUIDE_FIELDS,
        )
        for n in (encoded, raw)
    }
    assert build[encoded].body == build[raw].body
    assert build[encoded].headers["Content-Type"] == build[raw].headers["Content-Type"]
    encoded_pair = _basic_pair(build[encoded].headers["Authorization"])
    raw_pair = _basic_pair(build[raw].headers["Authorization"])
    # RFC 6749 §2.3.1: form-encode each part, so ':' inside the secret cannot split it.
    assert encoded_pair == "my+client:se%2Bcr%2Fet%3A50%25+off"
    assert raw_pair == f"my client:{AWKWARD_SECRET}"
    client_id, _, secret = encoded_pair.partition(":")
    assert (unquote_plus(client_id), unquote_plus(secret)) == ("my client", AWKWARD_SECRET)


def test_pkce_verifier_goes_after_the_code_and_before_body_credentials() -> None:
    spec = build_token_request(
        FLAVORS_BY_NUMBER[3],
        client_id="my-client-id",
        client_secret="my-client-secret",
        fields={**GUIDE_FIELDS, "code_verifier": "v" * 43},
    )
    assert spec.body.decode().endswith(
        "&code=some-unique-auth-code&code_verifier="
        + "v" * 43
        + "&client_id=my-client-id&client_secret=my-client-secret"
    )


@pytest.mark.parametrize(
    ("preferred", "pinned", "expected"),
    [
        (None, None, [1, 2, 3, 4, 5, 6]),
        (3, None, [3, 1, 2, 4, 5, 6]),
        # A pin goes first; the chain goes on only when the app cannot read its body,
        # so after a pinned JSON flavor comes its form sibling (same credentials).
        (3, 5, [5, 1, 2, 3, 4, 6]),
        (None, 2, [2, 1, 3, 4, 5, 6]),
        (None, 6, [6, 5, 1, 2, 3, 4]),
    ],
)
def test_flavor_order_puts_the_remembered_flavor_first_and_honours_a_pin(
    preferred: int | None, pinned: int | None, expected: list[int]
) -> None:
    assert [f.number for f in flavor_order(preferred=preferred, pinned=pinned)] == expected
