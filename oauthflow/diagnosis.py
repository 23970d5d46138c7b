"""Diagnosis: every failure the troubleshooting guide teaches a human to debug, explained.

What a reply means is decided in ``oauthflow.outcomes`` (a ``Key`` and an ``Outcome``);
``explain`` turns a key into a specific message and a fix for admins and operators, and
a plain sentence for customers. Keys are stored (on token requests and ConfigVariables),
explanations are rendered when shown, so they always name the App's current token URL
and the callback URL to register.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Diagnosis:
    """A diagnosis: ``message`` says what went wrong, ``fix`` what to change (both for
    admins); ``customer_message`` is the plain-language version for customers."""

    key: str
    message: str
    fix: str
    customer_message: str


_RECONNECT = "Please press Reconnect; if that fails too, contact your administrator."
_ADMIN = "This needs a change by the portal's administrator; please try again later."

# key → (message, fix, customer message). Placeholders: {token_url}, {callback_url},
# {detail}, {offline_hint}.
DIAGNOSES: dict[str, tuple[str, str, str]] = {
    "ok": ("The token request succeeded.", "Nothing to do.", "Connected."),
    "wrong_token_url": (
        "The token URL answered 404/405: {token_url} is not the app's token endpoint.",
        "Check the token URL in the app's OAuth documentation (often …/oauth/token or "
        "…/oauth2/token) and correct it on the App.",
        _ADMIN,
    ),
    "bad_client_credentials": (
        "The app rejected the client ID or secret (invalid_client / 401) on every flavor "
        "it could read.{detail}",
        "Copy the client ID and secret again from the app's developer console; check for "
        "leading or trailing whitespace and that the secret was not rotated.",
        _ADMIN,
    ),
    "code_rejected": (
        "The app refused the authorization code (invalid_grant): it expired, was already "
        "used, or the redirect URI differs from the one registered. Ours is {callback_url}."
        "{detail}",
        "No flavor fixes this, so the chain stopped. Make sure {callback_url} is registered "
        "at the app exactly, then have the customer connect again.",
        "The sign-in took too long or was already used. " + _RECONNECT,
    ),
    "redirect_uri_mismatch": (
        "The app says the redirect URI does not match the one registered. Ours is "
        "{callback_url}.{detail}",
        "Register {callback_url} at the app exactly (scheme, host, path, no trailing slash "
        "unless ours has one). No flavor fixes this, so the chain stopped.",
        "The app is not set up to send you back here yet. " + _ADMIN,
    ),
    "not_a_token_endpoint": (
        "{token_url} answered with an HTML page, not a token response: it is a web page "
        "(a login or docs page), not the token endpoint.",
        "Use the app's token endpoint URL (an API URL, not the authorize or login page).",
        _ADMIN,
    ),
    "not_a_token_reply": (
        "The reply from {token_url} is not a token response (no access_token).{detail}",
        "Replay the request with the copy-as-curl command and read the reply; check the "
        "token URL and the App's extra token parameters.",
        _ADMIN,
    ),
    "format_rejected": (
        "The app could not read this flavor's body (415, or a form-only endpoint refusing "
        "JSON). That is expected: the chain moves on to the next flavor.",
        "Nothing to do for this attempt.",
        "Connecting…",
    ),
    "all_formats_rejected": (
        "The app rejected the body format of every flavor.{detail}",
        "Read the replies in the token requests below; the app may need extra token "
        "parameters or headers (set them on the App).",
        _ADMIN,
    ),
    "server_error": (
        "The app's token endpoint failed (HTTP 5xx).{detail}",
        "A problem at the app: renewals retry with backoff. If it persists, check the app's "
        "status page.",
        "The app is having trouble right now; we will keep trying.",
    ),
    "rate_limited": (
        "The app is rate-limiting us (HTTP 429).{detail}",
        "Renewals wait for Retry-After and back off; reduce how often this App is called.",
        "The app asked us to slow down; we will retry shortly.",
    ),
    "timeout": (
        "No reply from {token_url} within the timeout.",
        "Check that the app is up and reachable from the workers; raise OAUTH_HTTP_TIMEOUT "
        "if it is just slow.",
        "The app did not answer in time; we will keep trying.",
    ),
    "tls_error": (
        "The TLS handshake with {token_url} failed (certificate or protocol).",
        "Check the token URL's host name and that its certificate is valid.",
        _ADMIN,
    ),
    "dns_error": (
        "The host name in {token_url} does not resolve (DNS).",
        "Check the token URL for typos.",
        _ADMIN,
    ),
    "connection_error": (
        "Could not connect to {token_url} (refused or unreachable).",
        "Check the token URL's host and port, and that the workers can reach it.",
        "The app could not be reached; we will keep trying.",
    ),
    "blocked_destination": (
        "The request to {token_url} was refused before sending.{detail}",
        "Use the app's public https token URL. Private, loopback and link-local addresses "
        "are refused in production (SSRF protection; OAUTH_ALLOW_PRIVATE_NETWORKS).",
        _ADMIN,
    ),
    "revocation_failed": (
        "The app did not confirm revoking the token (RFC 7009).{detail}",
        "Check the App's revocation URL; the token stays valid at the app until it expires.",
        "Disconnected.",
    ),
    "operator_reconnect": (
        "An operator marked this connection for reconnection.",
        "The customer must press Reconnect.",
        "Please press Reconnect to sign in to the app again.",
    ),
    "unauthorized_client": (
        "The app says this client may not use this grant type (unauthorized_client).{detail}",
        "Enable the grant (authorization code, refresh token or client credentials) for "
        "this client in the app's developer console.",
        _ADMIN,
    ),
    "invalid_scope": (
        "The app rejected the requested scopes (invalid_scope).{detail}",
        "Remove or correct the scopes on the Connection (check the app's scope names).",
        _ADMIN,
    ),
    "refresh_token_revoked": (
        "The refresh token was refused (invalid_grant): revoked by the user or the app, "
        "expired, or already used (rotating refresh tokens).{detail}",
        "The customer must reconnect. If it recurs, the app may expire refresh tokens "
        "without {offline_hint}.",
        "Your connection has expired or was revoked. Please press Reconnect.",
    ),
    "no_refresh_token": (
        "The app returned no refresh token, so the connection stops working when the "
        "access token expires.",
        "Ask for offline access: {offline_hint}.",
        "This connection will need to be renewed by hand when it expires.",
    ),
    "too_early": (
        "The app refused to renew a token that has not expired yet.{detail}",
        "Nothing to fix: the tokens were kept and renewal is rescheduled for after the "
        "access token expires. This does not count as a failure.",
        "Connected.",
    ),
    "refresh_token_expiring": (
        "The refresh token lapses soon (the app gave it a fixed lifetime).{detail}",
        "Only a reconnect gives a new refresh token: ask the customer to press Reconnect "
        "before it lapses.",
        "This connection stops working soon unless you press Reconnect.",
    ),
    "access_token_rejected": (
        "An integration reported that the app rejects a freshly renewed access token too "
        "(HTTP 401 after a forced renewal).{detail}",
        "The token is valid at the token endpoint but refused by the API: check the scopes "
        "granted, the app-side permissions of the user or client, and that the integration "
        "calls the API host the app expects (say the reply's instance_url).",
        "The app refuses access with this connection. " + _ADMIN,
    ),
    "invalid_customer_input": (
        "The values the customer typed before Connect do not make a valid URL for this "
        "App.{detail}",
        "Check the App's customer inputs, their patterns and its allowed host suffix; the "
        "customer can connect again with corrected values.",
        "The details you entered for this app look wrong. Please press Connect and check them.",
    ),
    "connection_busy": (
        "A renewal held this connection for longer than EXCHANGE_LEASE_WAIT while the "
        "customer's new code waited.{detail}",
        "Check the workers' logs for a stuck renewal; the customer can press Reconnect.",
        "We could not finish connecting because the connection was busy. Please press "
        "Reconnect again.",
    ),
    "stuck_exchange": (
        "Connecting stopped half-way (a worker died, or the task never reached one); the "
        "sweep recovered the connection.{detail}",
        "Check that the workers and the broker are up.",
        "Connecting did not finish. Please press Connect again.",
    ),
    "rejected": (
        "The app rejected the token request.{detail}",
        "Read the reply in the token requests below and replay it with copy-as-curl.",
        _ADMIN,
    ),
    # Errors the app sends back to the callback (RFC 6749 §4.1.2.1).
    "callback_access_denied": (
        "The user (or the app's policy) declined consent (access_denied).{detail}",
        "Nothing to fix unless the app's admin blocks this client; the customer can connect "
        "again when ready.",
        "You declined access at the app, so nothing was connected. Press Connect when you "
        "are ready to allow access.",
    ),
    "callback_invalid_scope": (
        "The app refused the requested scopes at consent (invalid_scope).{detail}",
        "Correct the scopes on the Connection or the App's default scopes.",
        "The app did not accept the permissions we asked for. " + _ADMIN,
    ),
    "callback_unauthorized_client": (
        "The app does not allow this client to use the authorization-code flow "
        "(unauthorized_client).{detail}",
        "Enable the authorization-code grant for this client at the app.",
        "The app is not set up to allow this connection yet. " + _ADMIN,
    ),
    "callback_invalid_request": (
        "The app rejected the authorization request (invalid_request): often an unknown "
        "client ID or a redirect URI that is not registered. Ours is {callback_url}.{detail}",
        "Check the client ID (no whitespace) and register {callback_url} at the app.",
        "The app could not start the sign-in. " + _ADMIN,
    ),
    "callback_server_error": (
        "The app's authorization server failed (server_error).{detail}",
        "A problem at the app; try again later.",
        "The app had a problem. Please try again in a few minutes.",
    ),
    "callback_temporarily_unavailable": (
        "The app's authorization server is temporarily unavailable.{detail}",
        "Try again later.",
        "The app is busy right now. Please try again in a few minutes.",
    ),
    "callback_unsupported_response_type": (
        "The app does not support response_type=code.{detail}",
        "Check that the app supports the authorization-code flow for this client.",
        "The app could not start the sign-in. " + _ADMIN,
    ),
    "callback_error": (
        "The app returned an error on the callback.{detail}",
        "Read the error and its description; see the app's OAuth documentation.",
        "The app did not complete the sign-in. Please try again.",
    ),
}


def offline_hint(app: object | None) -> str:
    """How this App is asked for a refresh token, in words: its actual offline
    strategy, and for OpenID Connect and ``access_type=offline`` apps the consent
    prompt that must go with it."""
    strategy = getattr(app, "offline_strategy", "offline_access")
    prompt = bool(getattr(app, "prompt_consent", True))
    if strategy == "offline_access":
        hint = "add the offline_access scope to the Connection or the App's default scopes"
        if not prompt:
            hint += (
                ", and turn on prompt=consent: OpenID Connect servers grant offline_access "
                "only with it (OIDC Core §11)"
            )
        return hint
    if strategy == "access_type=offline":
        return (
            "access_type=offline is sent, but such apps issue a refresh token only on a "
            "fresh consent: re-consent is needed"
            + ("" if prompt else " (turn on prompt=consent on the App)")
            + ", so the customer should press Reconnect"
        )
    if strategy == "none":
        return "check the app's documentation for how it grants offline access"
    return f"the App's offline switch ({strategy}) must be sent"


def explain(key: str, *, app: object | None = None, detail: str = "") -> Diagnosis:
    """The ``Diagnosis`` for ``key``, naming ``app``'s URLs; ``detail`` is appended to the
    admin message (say the app's error description). Unknown keys explain as
    ``rejected``."""
    message, fix, customer = DIAGNOSES.get(key, DIAGNOSES["rejected"])
    values = {
        "token_url": getattr(app, "token_url", "") or "the token URL",
        "callback_url": settings.OAUTH_PUBLIC_CALLBACK_URL,
        "detail": f" {detail.strip()}" if detail.strip() else "",
        "offline_hint": offline_hint(app),
    }
    extra = ""
    if key == "bad_client_credentials" and app is not None:
        warnings = getattr(app, "credential_whitespace_warnings", [])
        extra = " " + " ".join(warnings) if warnings else ""
    return Diagnosis(
        key=key if key in DIAGNOSES else "rejected",
        message=message.format(**values) + extra,
        fix=fix.format(**values),
        customer_message=customer,
    )
