"""The authorization-code flow (RFC 6749 §4.1) and client-credentials fetches (§4.4).

``authorization_start`` runs when a customer presses Connect; ``callback_accept`` when the
app sends the browser back; ``config_variable_exchange_code`` in a worker, trading the
code for tokens through the flavor chain.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from connections.models import ConfigVariable, Status
from connections.services import (
    config_variable_fail,
    config_variable_store_tokens,
    config_variable_transition,
)
from connections.transition_kinds import EXCHANGED_REASON
from oauthflow.authorize import authorize_url_build, callback_url, pkce_verifier
from oauthflow.chain import run_token_chain
from oauthflow.exceptions import (
    AuthorizationDenied,
    FlowError,
    InvalidState,
    ProviderError,
    ProviderUnavailable,
)
from oauthflow.grants import authorization_code_fields
from oauthflow.lease import lease_claim, lease_kept_alive, lease_release
from oauthflow.models import TokenRequestKind
from oauthflow.outcomes import Key, Outcome, classify_callback_error
from oauthflow.redaction import storable
from oauthflow.renewal_signals import FALLBACK_SECONDS, renewal_listen
from oauthflow.state import state_consume, state_issue

logger = logging.getLogger(__name__)

MAX_CODE_LENGTH = 4096
MAX_METADATA_LENGTH = 200  # characters kept of a callback value (realmId is ~20)


def authorization_start(*, session: SessionBase, config_variable: ConfigVariable) -> str:
    """Prepare the authorization request and return the app's authorize URL.

    A fresh PKCE verifier (RFC 7636) is stored encrypted on the ConfigVariable for the
    flow's lifetime, with the state's nonce: the newest Connect wins, and a callback
    from an older one is refused. A working connection keeps its status (and keeps
    renewing) until new tokens arrive.
    """
    connection = config_variable.connection
    app = connection.app
    verifier = pkce_verifier() if app.use_pkce else None
    state = state_issue(session=session, config_variable_id=config_variable.pk)
    redirect_uri = callback_url()
    if config_variable.status in Status.working():
        config_variable.code_verifier = verifier
        config_variable.flow_nonce = state.nonce
        config_variable.flow_redirect_uri = redirect_uri
        config_variable.save(
            update_fields=["code_verifier", "flow_nonce", "flow_redirect_uri", "updated_at"]
        )
    else:
        config_variable_transition(
            config_variable=config_variable,
            to_status=Status.AUTHORIZING,
            reason="The customer pressed Connect and was sent to the app to consent.",
            code_verifier=verifier,
            flow_nonce=state.nonce,
            flow_redirect_uri=redirect_uri,
            pending_code=None,
        )
    return authorize_url_build(
        app=app,
        scopes=connection.effective_scopes,
        state=state.value,
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        values=config_variable.customer_inputs,
    )


def callback_accept(*, session: SessionBase, params: Mapping[str, str]) -> ConfigVariable:
    """Check the callback's ``state`` and keep its ``code`` (encrypted) for the exchange.

    Raises ``InvalidState`` (nothing changes; also for a callback of an older Connect),
    ``AuthorizationDenied`` when the app sent ``error=`` (RFC 6749 §4.1.2.1; a working
    connection stays as it was, any other moves to ``error``), or ``FlowError`` when the
    code is missing or malformed.
    """
    consumed = state_consume(session=session, state=params.get("state", ""))
    config_variable = (
        ConfigVariable.objects.select_related("connection__app", "customer")
        .filter(pk=consumed.config_variable_id)
        .first()
    )
    if config_variable is None:
        raise FlowError("This connection no longer exists.")
    if config_variable.flow_nonce != consumed.nonce:
        raise InvalidState(
            "A newer Connect was started for this connection (in another tab?), so this "
            "sign-in is no longer valid."
        )
    working = config_variable.status in Status.working()
    error = params.get("error", "")
    if error:
        description = params.get("error_description", "")[:500]
        key = classify_callback_error(error)
        if working:
            config_variable.flow_nonce, config_variable.code_verifier = "", None
            config_variable.save(update_fields=["flow_nonce", "code_verifier", "updated_at"])
        else:
            # A declined consent is the customer's choice, not an error to fix: back to
            # "not connected", with the reason kept for the portal and the admin.
            declined = key is Key.CALLBACK_ACCESS_DENIED
            config_variable_transition(
                config_variable=config_variable,
                to_status=Status.PENDING if declined else Status.ERROR,
                reason=f"The app answered error={error[:100]} on the callback. {description}",
                last_error=f"{error[:100]}: {description}" if description else error[:100],
                diagnosis=key,
                code_verifier=None,
                flow_nonce="",
            )
        raise AuthorizationDenied(error[:100], description, kept_working=working)
    code = params.get("code", "")
    if not code or len(code) > MAX_CODE_LENGTH:
        raise FlowError("The app sent no usable authorization code back.")
    kept = config_variable.connection.app.callback_metadata or []
    metadata = {
        name: storable(params[name])[:MAX_METADATA_LENGTH]
        for name in kept
        if isinstance(name, str) and params.get(name)
    }
    return config_variable_transition(
        config_variable=config_variable,
        to_status=config_variable.status if working else Status.EXCHANGING,
        reason="The customer consented; exchanging the code for tokens.",
        pending_code=code,
        flow_nonce="",
        callback_metadata=metadata or config_variable.callback_metadata,
    )


def _fail(config_variable: ConfigVariable, exc: ProviderError) -> ConfigVariable:
    # A failed reconnect of a working connection keeps the tokens that still work.
    working = config_variable.status in Status.working()
    return config_variable_fail(
        config_variable=config_variable,
        to_status=config_variable.status if working else Status.ERROR,
        reason="The code exchange failed" + ("; the existing tokens are kept" if working else ""),
        error=exc,
        fallback_diagnosis=Key.REJECTED,
        pending_code=None,
        code_verifier=None,
    )


def _claim_waiting(config_variable_id: uuid.UUID | str) -> uuid.UUID | None:
    """The lease, waiting up to ``EXCHANGE_LEASE_WAIT`` seconds for a renewal to end: woken
    by the holder's release (``oauthflow.renewal_signals``), trying again at least every
    ``FALLBACK_SECONDS`` in case the signal was lost."""
    lease = lease_claim(config_variable_id=config_variable_id)
    if lease is not None:  # the usual case: no renewal running, nothing to listen for
        return lease
    deadline = time.monotonic() + settings.EXCHANGE_LEASE_WAIT
    with renewal_listen(config_variable_id=config_variable_id) as listener:
        while True:
            lease = lease_claim(config_variable_id=config_variable_id)
            left = deadline - time.monotonic()
            if lease is not None or left <= 0:
                return lease
            listener.wait(min(left, FALLBACK_SECONDS))


def config_variable_exchange_code(
    *, config_variable_id: uuid.UUID | str, final_attempt: bool = True
) -> ConfigVariable | None:
    """Trade the stored code for tokens (RFC 6749 §4.1.3) and mark ``connected``.

    A renewal holding the lease is waited for (codes live minutes, renewals seconds), up
    to ``EXCHANGE_LEASE_WAIT`` seconds; then the exchange runs. Returns None when there is
    no code to exchange (a duplicate task). Raises ``ProviderUnavailable`` on a transient
    failure that spent no code (or a lease still held) unless ``final_attempt``, so the
    caller may retry while the code is still fresh.
    """
    lease = _claim_waiting(config_variable_id)
    if lease is None:
        busy = ProviderUnavailable(
            "The connection was busy renewing for too long; the code could not be exchanged.",
            diagnosis=Key.CONNECTION_BUSY,
            answered=False,
        )
        if not final_attempt:
            raise busy
        config_variable = ConfigVariable.objects.select_related("connection__app").get(
            pk=config_variable_id
        )
        return _fail(config_variable, busy) if config_variable.pending_code else None
    try:
        config_variable = ConfigVariable.objects.select_related("connection__app").get(
            pk=config_variable_id
        )
        if not config_variable.pending_code:
            return None
        try:
            with lease_kept_alive(config_variable_id=config_variable_id, lease_token=lease):
                result = run_token_chain(
                    app=config_variable.connection.app,
                    fields=authorization_code_fields(config_variable),
                    kind=TokenRequestKind.EXCHANGE,
                    config_variable=config_variable,
                )
        except ProviderError as exc:
            # A code is single-use: only a failure that reached no server (refused
            # connection, DNS) is worth a retry; a 429 or 5xx may have spent it.
            if not final_attempt and exc.outcome is Outcome.TRANSIENT and not exc.answered:
                raise
            return _fail(config_variable, exc)
        return config_variable_store_tokens(
            config_variable=config_variable,
            token=result.token,
            reason=f"{EXCHANGED_REASON} with flavor {result.flavor.label}.",
            issued_at=result.sent_at,
            exchange=True,
        )
    finally:
        lease_release(config_variable_id=config_variable_id, lease_token=lease)


def config_variable_exchange_crashed(*, config_variable_id: uuid.UUID | str) -> None:
    """Record that an exchange died on an unexpected error (logged with its traceback by
    the caller): the customer sees an error instead of "Connecting…" forever."""
    config_variable = ConfigVariable.objects.filter(pk=config_variable_id).first()
    if config_variable is None or not config_variable.pending_code:
        return
    working = config_variable.status in Status.working()
    config_variable_transition(
        config_variable=config_variable,
        to_status=config_variable.status if working else Status.ERROR,
        reason="The code exchange failed on an internal error (see the worker's log).",
        last_error="Internal error during the code exchange; see the worker's log.",
        diagnosis=Key.REJECTED,
        pending_code=None,
        code_verifier=None,
    )
