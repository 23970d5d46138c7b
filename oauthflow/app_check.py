"""Checking an App before any customer connects.

For authorization-code Apps the token endpoint is sent a deliberately invalid code, one
flavor at a time (at most six requests, never a real code), each recorded and diagnosed
like every token request. What each reply means comes from ``oauthflow.outcomes``:

* ``invalid_grant`` (the code is refused: a dead grant): the app accepted the client
  credentials in that flavor. It is remembered as the App's first flavor, and the check
  stops there;
* ``invalid_client`` or 401: the credentials were refused in that flavor;
* 415 or ``unsupported_grant_type``: the app could not read that flavor's body;
* anything that ends a chain (a wrong URL, a redirect-URI complaint, an outage) ends
  the check too.

Some apps check the code before the client, and say ``invalid_grant`` even to a wrong
secret: the check then reports "accepted", which only a real connection can disprove.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from connections.models import App, GrantType
from oauthflow.authorize import callback_url, scope_string
from oauthflow.chain import flavor_remember, run_token_chain
from oauthflow.diagnosis import explain
from oauthflow.exceptions import ConfigurationError, ProviderError
from oauthflow.flavors import FLAVORS_BY_NUMBER
from oauthflow.models import TokenRequest, TokenRequestKind
from oauthflow.outcomes import Key, Outcome

CHECK_CODE = "portal-app-check-not-a-real-code"
VERDICTS = {
    Key.CODE_REJECTED: "credentials accepted (the fake code was refused, as expected)",
    Key.BAD_CLIENT_CREDENTIALS: "credentials refused",
    Key.FORMAT_REJECTED: "the app could not read this body format",
}


@dataclass(frozen=True)
class CheckRow:
    """One flavor tried: its label, the HTTP status (None: no reply), the verdict in
    words and the diagnosis key."""

    flavor: int
    label: str
    status: int | None
    verdict: str
    key: str


@dataclass(frozen=True)
class AppCheckResult:
    """The check's rows, the first flavor that authenticated (None: none did), and a
    summary for the admin (``ok``: an authenticating flavor was found)."""

    rows: list[CheckRow]
    flavor: int | None
    summary: str

    @property
    def ok(self) -> bool:
        return self.flavor is not None


def _row(record: TokenRequest) -> CheckRow:
    key = Key.of(record.diagnosis)
    verdict = VERDICTS.get(key) or explain(key).message
    return CheckRow(
        flavor=record.flavor,
        label=FLAVORS_BY_NUMBER[record.flavor].label,
        status=record.status_code,
        verdict=verdict,
        key=key,
    )


def _summary(app: App, rows: list[CheckRow], flavor: int | None) -> str:
    if flavor is not None:
        return (
            f"The client ID and secret work with flavor #{flavor} "
            f"({FLAVORS_BY_NUMBER[flavor].label}); it is tried first from now on."
        )
    keys = {row.key for row in rows}
    refused = {Key.BAD_CLIENT_CREDENTIALS, Key.FORMAT_REJECTED}
    if keys <= refused and Key.BAD_CLIENT_CREDENTIALS in keys:
        warnings = " ".join(app.credential_whitespace_warnings)
        return (
            "The app refused the client ID or secret in every flavor it could read: check "
            "them in the app's developer console." + (f" {warnings}" if warnings else "")
        )
    last = rows[-1] if rows else None
    return explain(last.key if last else Key.REJECTED, app=app).message


def app_check(*, app: App) -> AppCheckResult:
    """Check an authorization-code App's token URL and client credentials with a fake
    code (see the module docstring); records every request, stores the table on the
    App (``check_results``, ``checked_at``) and remembers the flavor that authenticated.
    Raises ``ConfigurationError`` for client-credentials Apps (use *Test client
    credentials*) and Apps whose URLs need customer inputs."""
    if app.grant_type != GrantType.AUTHORIZATION_CODE:
        raise ConfigurationError("Client-credentials Apps are checked by fetching a token.")
    if app.customer_inputs:
        raise ConfigurationError("This App's URLs need a customer's inputs; connect to check it.")
    fields = {
        "grant_type": "authorization_code",
        "scope": scope_string(app, app.default_scopes.split()),
        "redirect_uri": callback_url(),
        "code": CHECK_CODE,
    }
    records: list[TokenRequest] = []
    # Every reply is in ``records``; a refusal is what the check expects.
    with contextlib.suppress(ProviderError):
        run_token_chain(app=app, fields=fields, kind=TokenRequestKind.EXCHANGE, records=records)
    rows = [_row(record) for record in records]
    flavor = next((row.flavor for row in rows if row.key == Key.CODE_REJECTED), None)
    if any(Key(row.key).outcome is Outcome.SUCCEEDED for row in rows):
        flavor = next(row.flavor for row in rows if row.key == Key.OK)  # a lenient sandbox
    with transaction.atomic():
        for record in records:
            record.message = f"App check (fake code). {record.message}".strip()
        TokenRequest.objects.bulk_create(records)
        if flavor is not None:
            flavor_remember(app=app, flavor=FLAVORS_BY_NUMBER[flavor])
        app.check_results = [row.__dict__ for row in rows]
        app.checked_at = timezone.now()
        App.objects.filter(pk=app.pk).update(
            check_results=app.check_results, checked_at=app.checked_at
        )
    return AppCheckResult(rows=rows, flavor=flavor, summary=_summary(app, rows, flavor))
