"""The six token-request flavors, as data (the guide, "Flavors of auth code token exchange").

Apps disagree on where client credentials go and how the body is encoded. A flavor names
one combination; ``build_token_request`` turns a flavor and a grant's fields into the
exact headers and body bytes the guide shows for it:

| # | credentials                                             | body |
|---|---------------------------------------------------------|------|
| 1 | ``Authorization: Basic base64(urlencode(id):urlencode(secret))`` | form |
| 2 | same header                                             | JSON |
| 3 | ``client_id`` and ``client_secret`` in the body         | form |
| 4 | same, in the body                                       | JSON |
| 5 | ``Authorization: Basic base64(id:secret)``, no URL-encoding | form |
| 6 | same header                                             | JSON |
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, quote_plus, urlencode


class CredentialPlacement(StrEnum):
    BASIC_ENCODED = "basic_urlencoded"  # RFC 6749 §2.3.1: form-encode, then Basic
    BODY = "body"  # RFC 6749 §2.3.1 alternative: client_id/client_secret parameters
    BASIC_RAW = "basic_raw"  # RFC 7617 Basic without the form-encoding step


class BodyFormat(StrEnum):
    FORM = "form"
    JSON = "json"


CONTENT_TYPES = {
    BodyFormat.FORM: "application/x-www-form-urlencoded",
    BodyFormat.JSON: "application/json",
}


@dataclass(frozen=True)
class Flavor:
    """One way of sending client credentials and a body to a token endpoint."""

    number: int
    credentials: CredentialPlacement
    body_format: BodyFormat

    @property
    def label(self) -> str:
        where = {
            CredentialPlacement.BASIC_ENCODED: "Basic header (URL-encoded credentials)",
            CredentialPlacement.BODY: "credentials in the body",
            CredentialPlacement.BASIC_RAW: "Basic header (raw credentials)",
        }[self.credentials]
        return f"#{self.number}: {where}, {self.body_format.value} body"


FLAVORS: tuple[Flavor, ...] = (
    Flavor(1, CredentialPlacement.BASIC_ENCODED, BodyFormat.FORM),
    Flavor(2, CredentialPlacement.BASIC_ENCODED, BodyFormat.JSON),
    Flavor(3, CredentialPlacement.BODY, BodyFormat.FORM),
    Flavor(4, CredentialPlacement.BODY, BodyFormat.JSON),
    Flavor(5, CredentialPlacement.BASIC_RAW, BodyFormat.FORM),
    Flavor(6, CredentialPlacement.BASIC_RAW, BodyFormat.JSON),
)
FLAVORS_BY_NUMBER = {flavor.number: flavor for flavor in FLAVORS}


@dataclass(frozen=True)
class TokenRequestSpec:
    """The bytes to send: ``headers`` (name → value) and the encoded ``body``."""

    flavor: Flavor
    headers: dict[str, str]
    body: bytes
    fields: dict[str, str]


def flavor_order(*, preferred: int | None = None, pinned: int | None = None) -> list[Flavor]:
    """Flavors in the order to try: ``pinned`` (else ``preferred``) first, then the rest
    in the guide's order of popularity. After a pinned JSON flavor its form sibling
    comes next (2 → 1, 4 → 3, 6 → 5): the chain goes past a pinned flavor only when the
    app could not read its body (``oauthflow.chain``)."""
    order = list(FLAVORS)
    first_number = pinned if pinned in FLAVORS_BY_NUMBER else preferred
    if first_number in FLAVORS_BY_NUMBER:
        first = FLAVORS_BY_NUMBER[first_number]
        order.remove(first)
        if pinned and first.body_format is BodyFormat.JSON:
            sibling = FLAVORS_BY_NUMBER[first.number - 1]
            order.remove(sibling)
            order.insert(0, sibling)
        order.insert(0, first)
    return order


def basic_authorization(client_id: str, client_secret: str, *, urlencoded: bool) -> str:
    """The ``Authorization`` header value for HTTP Basic client authentication.

    With ``urlencoded`` the ID and secret are form-encoded first, as RFC 6749 §2.3.1
    (Appendix B) requires (flavors 1-2); without it they are joined raw (flavors 5-6).
    """
    if urlencoded:
        client_id, client_secret = (
            quote_plus(client_id, safe=""),
            quote_plus(client_secret, safe=""),
        )
    pair = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


CLIENT_ID_PARAM, CLIENT_SECRET_PARAM = "client_id", "client_secret"  # RFC 6749 §2.3.1


def build_token_request(
    flavor: Flavor,
    *,
    client_id: str,
    client_secret: str,
    fields: dict[str, str],
    client_id_param: str = CLIENT_ID_PARAM,
    client_secret_param: str = CLIENT_SECRET_PARAM,
) -> TokenRequestSpec:
    """Encode a grant's ``fields`` (``grant_type`` first, in the order given) per ``flavor``.

    Form bodies encode spaces as ``%20`` and every reserved character, exactly as the
    guide's examples; JSON bodies have sorted keys and no spaces, also as the guide shows.
    Empty fields are left out. In the body (flavors 3-4) the credentials go under
    ``client_id_param`` and ``client_secret_param`` (TikTok wants ``client_key``).
    """
    body_fields = {name: value for name, value in fields.items() if value}
    headers: dict[str, str] = {}
    if flavor.credentials is CredentialPlacement.BODY:
        body_fields[client_id_param or CLIENT_ID_PARAM] = client_id
        body_fields[client_secret_param or CLIENT_SECRET_PARAM] = client_secret
    else:
        urlencoded = flavor.credentials is CredentialPlacement.BASIC_ENCODED
        headers["Authorization"] = basic_authorization(
            client_id, client_secret, urlencoded=urlencoded
        )
    headers["Content-Type"] = CONTENT_TYPES[flavor.body_format]
    if flavor.body_format is BodyFormat.FORM:
        body = urlencode(body_fields, quote_via=quote).encode("ascii")
    else:
        body = json.dumps(body_fields, sort_keys=True, separators=(",", ":")).encode()
    return TokenRequestSpec(flavor=flavor, headers=headers, body=body, fields=body_fields)
