"""Reading the token-request log, and checking an App's credentials.

The log is rolled up and pruned by ``oauthflow.log_summary``."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from connections.models import App
from oauthflow.chain import run_token_chain
from oauthflow.diagnosis import Diagnosis, explain
from oauthflow.exceptions import ProviderError
from oauthflow.grants import client_credentials_fields
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind


def last_failed_chain(*, app: App) -> list[TokenRequest]:
    """The attempts of the App's most recent chain that ended without tokens, in order.

    Walks the App's failed requests newest first (index ``token_request_app_created``)
    and stops at the first whose chain holds no success: a few rows read, not every
    success of the App. The roll-up keeps failed chains whole (``oauthflow.log_summary``).
    """
    succeeded = TokenRequest.objects.filter(
        chain_id=OuterRef("chain_id"), outcome=Outcome.SUCCEEDED
    )
    failed = (
        TokenRequest.objects.filter(app=app)
        .exclude(outcome=Outcome.SUCCEEDED)
        .filter(~Exists(succeeded))
        .order_by("-created_at", "-id")
        .first()
    )
    if failed is None:
        return []
    return list(
        TokenRequest.objects.filter(chain_id=failed.chain_id)
        .select_related("app")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class AppCheck:
    """The outcome of trying an App's client credentials: ``ok``, the diagnosis, and
    how many token requests it took (each is in the log)."""

    ok: bool
    diagnosis: Diagnosis
    attempts: int


def app_test_client_credentials(*, app: App) -> AppCheck:
    """Request a client-credentials token (RFC 6749 §4.4.2) and throw it away.

    Shows whether the token URL, client ID and secret work before any customer connects.
    """
    fields = client_credentials_fields(app, app.default_scopes.split())
    before = TokenRequest.objects.filter(app=app).count()
    try:
        run_token_chain(app=app, fields=fields, kind=TokenRequestKind.CLIENT_CREDENTIALS)
    except ProviderError as exc:
        attempts = TokenRequest.objects.filter(app=app).count() - before
        return AppCheck(
            ok=False,
            diagnosis=explain(exc.diagnosis, app=app, detail=str(exc)[:300]),
            attempts=attempts,
        )
    attempts = TokenRequest.objects.filter(app=app).count() - before
    return AppCheck(ok=True, diagnosis=explain("ok", app=app), attempts=attempts)
