"""Replaying recorded token requests: copy as curl, and a Postman collection.

The guide asks admins to capture a token request with a mock server and replay it with
curl or Postman. Records already hold the exact request, redacted; these renderings put
shell variables (``$CLIENT_SECRET``, ``$CODE``) or Postman variables
(``{{client_secret}}``) where the secrets were, so nothing secret is ever in the text.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

from oauthflow.flavors import FLAVORS_BY_NUMBER, CredentialPlacement
from oauthflow.models import TokenRequest
from oauthflow.redaction import REDACTED, SECRET_FIELDS

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
_MARK = "\ue000"  # a private-use character: marks a secret's place in the body


def variable_name(field: str) -> str:
    """The shell variable standing for a secret body field (``code`` → ``CODE``)."""
    return field.upper()


def _secret_fields(record: TokenRequest) -> list[str]:
    names = [name for name in _body_pairs(record) if name in SECRET_FIELDS]
    return list(dict.fromkeys(names))


def _body_pairs(record: TokenRequest) -> dict[str, Any]:
    if record.request_headers.get("Content-Type") == "application/json":
        try:
            data = json.loads(record.request_body or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(record.request_body, keep_blank_values=True))


def _uses_basic(record: TokenRequest) -> CredentialPlacement | None:
    flavor = FLAVORS_BY_NUMBER.get(record.flavor)
    if flavor is None or flavor.credentials is CredentialPlacement.BODY:
        return None
    return flavor.credentials


def _client_id(record: TokenRequest) -> str:
    return record.app.client_id


def curl_command(record: TokenRequest) -> str:
    """A curl command in the guide's shape that replays ``record``.

    Secrets are shell variables; the lines before the command say which to export.
    """
    basic = _uses_basic(record)
    secrets = _secret_fields(record)
    if basic:
        secrets = ["client_secret", *secrets]
    lines = [
        "# Export these first (they were never stored). curl --data-urlencode sends a space",
        "# as '+' where the portal sent %20; servers read both the same.",
    ]
    for name in dict.fromkeys(secrets):
        note = ""
        if name == "client_secret" and basic is CredentialPlacement.BASIC_ENCODED:
            note = "  # URL-encoded, as this flavor sends it (RFC 6749 §2.3.1)"
        lines.append(f"#   export {variable_name(name)}='…'{note}")
    parts = ["curl -X POST"]
    for name, value in record.request_headers.items():
        if name.lower() == "authorization" and basic:
            client_id = _client_id(record)
            if basic is CredentialPlacement.BASIC_ENCODED:
                client_id = quote_plus(client_id, safe="")
            pair = f'{shlex.quote(client_id)}:"$CLIENT_SECRET"'
            parts.append(
                f"--header \"Authorization: Basic $(printf '%s' {pair} | base64 | tr -d '\\n')\""
            )
            continue
        parts.append(f"--header {shlex.quote(f'{name}: {value}')}")
    parts.append(shlex.quote(record.url))
    parts.extend(_shell_body(record))
    return "\n".join([*lines, " \\\n".join(parts)])


def _shell_body(record: TokenRequest) -> list[str]:
    """curl arguments sending the recorded body with each secret as ``"$VAR"``.

    Form bodies: literal runs go in ``--data``, secrets in ``--data-urlencode`` (curl
    joins them with ``&`` and encodes as we do). JSON: secrets are spliced into the text.
    """
    pairs = _body_pairs(record)
    if record.request_headers.get("Content-Type") == "application/json":
        marked = {
            name: (f"{_MARK}{variable_name(name)}{_MARK}" if value == REDACTED else value)
            for name, value in pairs.items()
        }
        text = json.dumps(marked, separators=(",", ":"), ensure_ascii=False)
        words = []
        for index, part in enumerate(text.split(_MARK)):
            if index % 2:
                words.append(f'"${part}"')
            elif part:
                words.append(shlex.quote(part))
        return [f"--data {''.join(words)}"]
    arguments: list[str] = []
    literal: list[str] = []
    for name, value in pairs.items():
        if value == REDACTED:
            if literal:
                arguments.append(f"--data {shlex.quote('&'.join(literal))}")
                literal = []
            arguments.append(f'--data-urlencode "{quote(name, safe="")}=${variable_name(name)}"')
        else:
            literal.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    if literal:
        arguments.append(f"--data {shlex.quote('&'.join(literal))}")
    return arguments


def postman_collection(records: Iterable[TokenRequest], *, name: str) -> dict[str, Any]:
    """A Postman v2.1 collection with one request per record; secrets are variables."""
    items = []
    variables: dict[str, str] = {}
    for record in records:
        flavor = FLAVORS_BY_NUMBER.get(record.flavor)
        headers = [
            {"key": key, "value": value}
            for key, value in record.request_headers.items()
            if key.lower() != "authorization"
        ]
        request: dict[str, Any] = {"method": record.method, "header": headers, "url": record.url}
        basic = _uses_basic(record)
        if basic:
            variables["client_secret"] = ""
            request["auth"] = {
                "type": "basic",
                "basic": [
                    {"key": "username", "value": _client_id(record), "type": "string"},
                    {"key": "password", "value": "{{client_secret}}", "type": "string"},
                ],
            }
        pairs = {}
        for key, value in _body_pairs(record).items():
            if value == REDACTED:
                variables[key] = ""
                value = "{{" + key + "}}"
            pairs[key] = value
        if record.request_headers.get("Content-Type") == "application/json":
            request["body"] = {
                "mode": "raw",
                "raw": json.dumps(pairs, separators=(",", ":")),
                "options": {"raw": {"language": "json"}},
            }
        else:
            request["body"] = {
                "mode": "urlencoded",
                "urlencoded": [{"key": k, "value": v, "type": "text"} for k, v in pairs.items()],
            }
        label = flavor.label if flavor else f"flavor {record.flavor}"
        status = record.status_code or record.error or "no reply"
        items.append(
            {
                "name": f"{label} → {status}",
                "request": request,
                "response": [],
            }
        )
    return {
        "info": {
            "_postman_id": str(uuid.uuid4()),
            "name": name,
            "description": (
                "Token requests recorded by the connection portal. Set the collection "
                "variables (client_secret, code, …) before sending; for flavors 1-2 the "
                "client secret must be URL-encoded first."
            ),
            "schema": POSTMAN_SCHEMA,
        },
        "item": items,
        "variable": [{"key": key, "value": ""} for key in variables],
    }
