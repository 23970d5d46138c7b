"""The portal's error tree. Services raise these; views, admin and tasks present them.

``PortalError``
├── ``ConfigurationError``: an App or setting is wrong (an admin must fix it)
├── ``FlowError``: the browser flow went wrong (bad ``state``, consent refused)
│   ├── ``InvalidState``
│   └── ``AuthorizationDenied``
└── ``ProviderError``: a token endpoint refused or failed (status, URL, RFC 6749 ``error``)
    ├── ``ProviderUnavailable``: transient; retry with backoff
    └── ``ReauthorizationRequired``: permanent; the customer must reconnect
"""

from __future__ import annotations

from oauthflow.outcomes import Outcome


class PortalError(Exception):
    """Base of every error the portal raises on purpose."""


class ConfigurationError(PortalError):
    """An App or a setting is wrong; an admin can fix it."""


class FlowError(PortalError):
    """The authorization flow in the browser cannot go on."""


class InvalidState(FlowError):
    """The ``state`` parameter is forged, expired, replayed or from another session."""


class AuthorizationDenied(FlowError):
    """The app redirected back with ``error=`` (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str = "", *, kept_working: bool = False) -> None:
        self.error = error
        self.description = description
        self.kept_working = kept_working  # the connection still works with its old tokens
        super().__init__(f"{error}: {description}" if description else error)


class ProviderError(PortalError):
    """A token endpoint answered without tokens.

    ``status`` is the HTTP status (None when no response came), ``error`` the provider's
    error code when the reply had one, ``url`` the token URL, ``diagnosis`` a
    ``oauthflow.outcomes.Key`` value and ``outcome`` what it means
    (``oauthflow.outcomes.Outcome``); ``answered`` is False when no request got a reply
    (so no code was spent).
    """

    default_outcome = Outcome.NEXT_FLAVOR

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        error: str = "",
        retry_after: float | None = None,
        diagnosis: str = "",
        outcome: Outcome | None = None,
        answered: bool = True,
    ) -> None:
        self.url = url
        self.outcome = outcome or self.default_outcome
        self.answered = answered
        self.diagnosis = diagnosis  # a key of oauthflow.diagnosis.DIAGNOSES
        self.status = status
        self.error = error
        self.retry_after = retry_after
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    """Transient: timeout, connection error, 5xx or 429. Retry with backoff."""

    default_outcome = Outcome.TRANSIENT


class ReauthorizationRequired(ProviderError):
    """Permanent: the grant is gone (``invalid_grant``, revoked). Customer must reconnect."""

    default_outcome = Outcome.GRANT_DEAD


def provider_error(message: str, *, outcome: Outcome, **kwargs: object) -> ProviderError:
    """The error class that fits ``outcome``: ``ProviderUnavailable`` for transient
    failures, ``ReauthorizationRequired`` for a dead grant, else ``ProviderError``."""
    cls = {
        Outcome.TRANSIENT: ProviderUnavailable,
        Outcome.GRANT_DEAD: ReauthorizationRequired,
    }.get(outcome, ProviderError)
    return cls(message, outcome=outcome, **kwargs)  # type: ignore[arg-type]
