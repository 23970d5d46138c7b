"""The flavor chain: one token request per flavor until one returns an access token.

The same code serves the code exchange (RFC 6749 §4.1.3), refresh (§6) and client
credentials (§4.4.2); they differ only in the grant's fields (``oauthflow.grants``).
Every attempt is written to the token-request log, redacted and diagnosed. What each
reply means is decided by ``oauthflow.outcomes``; the chain only acts on it:

* the App's ``pinned_flavor`` goes first and is the only one tried, unless the app
  could not read its body (then the other flavors follow, its form sibling first);
* the flavor that last worked (``preferred_flavor``) goes first, so a healthy App
  costs one request per exchange;
* a reply whose outcome ends the chain (a dead grant, a transient failure, a benign
  "too early", a wrong endpoint) stops it at once: one request, not six.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache

from connections.models import App, ConfigVariable
from oauthflow import client, inputs
from oauthflow.client import HttpReply, TransportError
from oauthflow.exceptions import ProviderError, provider_error
from oauthflow.flavors import (
    BodyFormat,
    Flavor,
    basic_authorization,
    build_token_request,
    flavor_order,
)
from oauthflow.models import TokenRequest
from oauthflow.outcomes import Key, Outcome, Verdict, classify_transport, conclude
from oauthflow.outcomes import retry_after_seconds as _retry_after_seconds
from oauthflow.redaction import (
    REDACTED,
    redact_body,
    redact_fields,
    redact_headers,
    redact_text,
    storable,
)
from oauthflow.reply_rules import ReplyFacts, verdict_for_reply
from oauthflow.tokens import TokenResponse, read_reply

logger = logging.getLogger(__name__)

KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "www-authenticate", "location")


@dataclass(frozen=True)
class ChainResult:
    """The tokens and the flavor that produced them; ``attempts`` requests were sent;
    ``sent_at`` (UTC) is when the successful request left, which lifetimes count from."""

    token: TokenResponse
    flavor: Flavor
    attempts: int
    chain_id: uuid.UUID
    sent_at: datetime


@lru_cache(maxsize=512)
def _redacted_body(
    flavor: Flavor,
    client_id: str,
    fields: tuple[tuple[str, str], ...],
    params: tuple[str, str] = ("client_id", "client_secret"),
) -> str:
    """The request body re-encoded with secrets masked: the stored body has the sent
    shape, not the values. Cached: every renewal of an App logs the same one."""
    redacted = build_token_request(
        flavor,
        client_id=client_id,
        client_secret=REDACTED,
        fields=dict(fields),
        client_id_param=params[0],
        client_secret_param=params[1],
    )
    return redacted.body.decode()


@dataclass
class _ChainRun:
    """One run's shared context: records each attempt, redacted, with its verdict."""

    app: App
    config_variable: ConfigVariable | None
    kind: str
    fields: dict[str, str]
    chain_id: uuid.UUID
    sink: list[TokenRequest] | None = None  # collect unsaved, for one bulk INSERT
    token_url: str = ""  # the App's token URL with the customer's inputs filled in

    @cached_property
    def secrets(self) -> tuple[str | None, ...]:
        names = ("code", "code_verifier", "refresh_token")
        secret = self.app.client_secret or ""
        # An app may echo the Authorization header: its base64 of id:secret is a secret.
        basics = tuple(
            basic_authorization(self.app.client_id, secret, urlencoded=urlencoded).split()[-1]
            for urlencoded in (True, False)
            if secret
        )
        return (secret, *basics, *(self.fields.get(name) for name in names))

    def record(
        self,
        *,
        flavor: Flavor,
        headers: dict[str, str],
        reply: HttpReply | None,
        duration_ms: int,
        verdict: Verdict,
        message: str = "",
    ) -> None:
        excerpt = redact_body(reply.body, self.secrets) if reply else ""
        redacted_fields = tuple(redact_fields(self.fields).items())
        params = (self.app.client_id_param, self.app.client_secret_param)
        record = TokenRequest(
            chain_id=self.chain_id,
            app=self.app,
            config_variable=self.config_variable,
            kind=self.kind,
            flavor=flavor.number,
            url=self.token_url,
            request_headers=redact_headers(headers),
            request_body=_redacted_body(flavor, self.app.client_id, redacted_fields, params),
            status_code=reply.status if reply else None,
            response_headers={
                name: reply.headers[name]
                for name in KEPT_RESPONSE_HEADERS
                if reply and name in reply.headers
            },
            response_excerpt=excerpt,
            duration_ms=duration_ms,
            outcome=verdict.outcome,
            error=redact_text(storable(verdict.error), self.secrets)[:200],
            message=redact_text(message, self.secrets)[:2000],
            diagnosis=verdict.key,
        )
        if self.sink is None:
            record.save()
        else:
            self.sink.append(record)


def flavor_remember(*, app: App, flavor: Flavor) -> None:
    """Make ``flavor`` the App's preferred flavor, tried first next time (one UPDATE,
    none when the App pins a flavor or already prefers this one)."""
    if app.pinned_flavor is None and app.preferred_flavor != flavor.number:
        App.objects.filter(pk=app.pk).update(preferred_flavor=flavor.number)
        app.preferred_flavor = flavor.number


def _message(verdict: Verdict) -> str:
    if not verdict.answered:
        return verdict.text or f"No reply ({verdict.error})"
    status = f"HTTP {verdict.status}"
    said = verdict.error or ("no access_token in the reply" if verdict.answered else "")
    text = f" ({verdict.text[:300]})" if verdict.text else ""
    return f"{status}: {said}{text}" if said else f"{status}{text}"


def _judge_reply(
    run: _ChainRun, flavor: Flavor, reply: HttpReply, sent_at: float
) -> tuple[TokenResponse | None, Verdict]:
    """Parse a reply: the tokens when it carries them, else the reply's ``Verdict``
    (judged on the app's text with our secrets masked: an echoed code means nothing)."""
    app = run.app
    read = read_reply(reply, token_path=app.token_path, sent_at=sent_at)
    if read.token is not None:
        return read.token, Verdict(key=Key.OK, outcome=Outcome.SUCCEEDED, status=reply.status)
    facts = ReplyFacts(
        status=reply.status,
        error=read.error.code,
        text=redact_text(read.error.text, run.secrets),
        grant=run.kind,
        json_flavor=flavor.body_format is BodyFormat.JSON,
        known_flavor=flavor.number in (app.preferred_flavor, app.pinned_flavor),
        html="html" in reply.content_type or reply.body.lstrip()[:1] == b"<",
        readable=read.data is not None,
    )
    retry_after = _retry_after_seconds(reply.headers, read.data)
    return None, verdict_for_reply(facts, retry_after=retry_after, flavor=flavor.number)


def _keeps_going(app: App, verdict: Verdict, *, first: bool) -> bool:
    """Whether the chain tries another flavor after this refusal."""
    if verdict.outcome.ends_chain:
        return False
    # A pinned flavor is the only one tried, unless the app could not read its body.
    return not (first and app.pinned_flavor) or verdict.key is Key.FORMAT_REJECTED


def run_token_chain(
    *,
    app: App,
    fields: dict[str, str],
    kind: str,
    config_variable: ConfigVariable | None = None,
    records: list[TokenRequest] | None = None,
) -> ChainResult:
    """Send the grant ``fields`` to ``app.token_url`` flavor by flavor (guide flavors 1-6).

    Each attempt is logged as a ``TokenRequest``: saved at once, or, when ``records``
    is given, appended to it unsaved. With ``records`` the chain makes no query at all,
    so it may run on any thread: the caller saves the records (``bulk_create``) and
    calls ``flavor_remember`` with the result's flavor (batch renewal).

    Returns the first reply carrying an ``access_token``. Else raises the
    ``ProviderError`` subclass that fits the chain's ``Outcome``
    (``exceptions.provider_error``: ``ProviderUnavailable`` when transient, with
    ``retry_after`` seconds; ``ReauthorizationRequired`` when the grant is dead), its
    ``diagnosis`` a ``Key`` and its ``outcome`` set.
    """
    token_url = _token_url(app, config_variable)
    run = _ChainRun(app, config_variable, kind, fields, uuid.uuid4(), records, token_url)
    verdicts: list[Verdict] = []
    for number, flavor in enumerate(
        flavor_order(preferred=app.preferred_flavor, pinned=app.pinned_flavor), start=1
    ):
        token, verdict, sent_at = _attempt(run, flavor)
        if token is not None:
            if records is None:
                flavor_remember(app=app, flavor=flavor)
            return ChainResult(
                token=token,
                flavor=flavor,
                attempts=number,
                chain_id=run.chain_id,
                sent_at=datetime.fromtimestamp(sent_at, tz=UTC),
            )
        verdicts.append(verdict)
        # No reply (a transport failure): no other flavor would get one either.
        if not verdict.answered or not _keeps_going(app, verdict, first=number == 1):
            break
    raise _chain_error(app, run, verdicts)


def _token_url(app: App, config_variable: ConfigVariable | None) -> str:
    """The App's token URL with the customer's inputs filled in; raises a
    ``WRONG_ENDPOINT`` ``ProviderError`` when they do not make a valid one."""
    values = config_variable.customer_inputs if config_variable is not None else None
    try:
        return inputs.endpoint(app, "token_url", values)
    except inputs.InvalidCustomerInput as exc:
        raise provider_error(
            f"The customer's inputs do not make a valid token URL: {exc}",
            outcome=Outcome.WRONG_ENDPOINT,
            url=app.token_url,
            diagnosis=Key.INVALID_CUSTOMER_INPUT,
            answered=False,
        ) from exc


def _attempt(run: _ChainRun, flavor: Flavor) -> tuple[TokenResponse | None, Verdict, float]:
    """Send the grant in ``flavor`` and record the attempt: ``(tokens, verdict,
    sent_at)``, the tokens None when refused or unanswered, ``sent_at`` when the
    request left (epoch seconds)."""
    app = run.app
    spec = build_token_request(
        flavor,
        client_id=app.client_id,
        client_secret=app.client_secret or "",
        fields=run.fields,
        client_id_param=app.client_id_param,
        client_secret_param=app.client_secret_param,
    )
    headers = {**(app.extra_token_headers or {}), **spec.headers}
    logger.info(
        "oauthflow.token_request.attempt app=%s kind=%s flavor=%s",
        app.slug,
        run.kind,
        flavor.number,
        extra={"app": app.slug, "kind": run.kind, "flavor": flavor.number},
    )
    sent_at = time.time()
    try:
        reply = client.post(run.token_url, headers=headers, body=spec.body)
    except TransportError as exc:
        verdict = classify_transport(exc.kind, flavor=flavor.number, text=str(exc))
        run.record(
            flavor=flavor,
            headers=headers,
            reply=None,
            duration_ms=exc.duration_ms,
            verdict=verdict,
            message=str(exc),
        )
        return None, verdict, sent_at
    token, verdict = _judge_reply(run, flavor, reply, sent_at)
    run.record(
        flavor=flavor,
        headers=headers,
        reply=reply,
        duration_ms=reply.duration_ms,
        verdict=verdict,
        message="" if token else _message(verdict),
    )
    return token, verdict, sent_at


def _chain_error(app: App, run: _ChainRun, verdicts: list[Verdict]) -> ProviderError:
    """The error a refused chain raises: its conclusion, every attempt summarised."""
    concluded = conclude(verdicts)
    summary = "; ".join(f"#{v.flavor}: {_message(v)}" for v in verdicts)
    if len(verdicts) == 1:
        message = _message(verdicts[0])
    else:
        message = f"No flavor returned an access token ({len(verdicts)} attempts). {summary}"
    if concluded.outcome in (Outcome.GRANT_DEAD, Outcome.WRONG_ENDPOINT):
        message += " No flavor can fix this, so the chain stopped."
    if concluded.detail:
        message += f" {concluded.detail}"
    # The app's text may echo what we sent; it travels on into statuses, transition
    # reasons and alerts, so it is redacted here, where the secrets are known.
    return provider_error(
        redact_text(message, run.secrets),
        outcome=concluded.outcome,
        url=run.token_url,
        status=concluded.verdict.status,
        error=concluded.verdict.error,
        retry_after=concluded.verdict.retry_after,
        diagnosis=concluded.key,
        answered=any(v.answered for v in verdicts),
    )
