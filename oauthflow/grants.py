"""The body fields of each grant's token request, built in one place.

RFC 6749 §4.1.3 (authorization code), §6 (refresh) and §4.4.2 (client credentials).
The App's extra token parameters (``extra_token_params``, say an ``audience``) are sent
with every grant, refresh included; the grant's own fields win over them.
"""

from __future__ import annotations

from connections.models import App, ConfigVariable, GrantType
from oauthflow import inputs
from oauthflow.authorize import callback_url, scope_string
from oauthflow.exceptions import ReauthorizationRequired
from oauthflow.models import TokenRequestKind
from oauthflow.outcomes import Key


def _with_extras(
    app: App, fields: dict[str, str], config_variable: ConfigVariable | None = None
) -> dict[str, str]:
    values = config_variable.customer_inputs if config_variable is not None else None
    extras = inputs.params(app, app.extra_token_params, values)
    return {**fields, **{name: value for name, value in extras.items() if name not in fields}}


def authorization_code_fields(config_variable: ConfigVariable) -> dict[str, str]:
    """Trading ``pending_code`` for tokens: the ``redirect_uri`` is the one the
    authorization request carried (``flow_redirect_uri``), byte for byte."""
    app = config_variable.connection.app
    return _with_extras(
        app,
        {
            "grant_type": "authorization_code",
            "scope": scope_string(app, config_variable.connection.effective_scopes),
            "redirect_uri": config_variable.flow_redirect_uri or callback_url(),
            "code": config_variable.pending_code or "",
            "code_verifier": config_variable.code_verifier or "",
        },
        config_variable,
    )


def client_credentials_fields(
    app: App, scopes: list[str], config_variable: ConfigVariable | None = None
) -> dict[str, str]:
    """A client-credentials token request for ``scopes``."""
    return _with_extras(
        app,
        {"grant_type": GrantType.CLIENT_CREDENTIALS, "scope": scope_string(app, scopes)},
        config_variable,
    )


def renewal_fields(config_variable: ConfigVariable) -> tuple[str, dict[str, str]]:
    """``(kind, fields)`` renewing ``config_variable``: a client-credentials fetch, or a
    refresh with its refresh token (RFC 6749 §6). Raises ``ReauthorizationRequired``
    when an authorization-code connection has no refresh token."""
    connection = config_variable.connection
    if connection.grant_type == GrantType.CLIENT_CREDENTIALS:
        return TokenRequestKind.CLIENT_CREDENTIALS, client_credentials_fields(
            connection.app, connection.effective_scopes, config_variable
        )
    if not config_variable.refresh_token:
        raise ReauthorizationRequired(
            "There is no refresh token to renew with; the app issued none "
            "(ask for offline access), so the customer must reconnect.",
            diagnosis=Key.NO_REFRESH_TOKEN,
        )
    return TokenRequestKind.REFRESH, _with_extras(
        connection.app,
        {"grant_type": "refresh_token", "refresh_token": config_variable.refresh_token},
        config_variable,
    )
