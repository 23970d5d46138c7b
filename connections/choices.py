"""The choices of the connections models: grant types, offline strategies and the
ConfigVariable status with its groups (DESIGN.md, "Status of a ConfigVariable").

Import them from :mod:`connections.models`, which re-exports them with the models.
"""

from __future__ import annotations

from django.db import models


class GrantType(models.TextChoices):
    """OAuth 2.0 grants the portal drives (RFC 6749 §4.1 and §4.4)."""

    AUTHORIZATION_CODE = "authorization_code", "Authorization code"
    CLIENT_CREDENTIALS = "client_credentials", "Client credentials"


class OfflineStrategy(models.TextChoices):
    """How an App is asked for a refresh token (long-lived, offline access)."""

    OFFLINE_ACCESS_SCOPE = "offline_access", "offline_access scope"
    ACCESS_TYPE_OFFLINE = "access_type=offline", "access_type=offline parameter"
    DURATION_PERMANENT = "duration=permanent", "duration=permanent parameter"
    TOKEN_ACCESS_TYPE_OFFLINE = "token_access_type=offline", "token_access_type=offline"
    NONE = "none", "None: the app always issues refresh tokens, or never"


OFFLINE_SCOPE = "offline_access"


class Status(models.TextChoices):
    """Life cycle of a ConfigVariable (DESIGN.md, "Status of a ConfigVariable")."""

    PENDING = "pending", "Not connected"
    AUTHORIZING = "authorizing", "Waiting for consent at the app"
    EXCHANGING = "exchanging", "Connecting"
    CONNECTED = "connected", "Connected"
    FAILING = "failing", "Failing (retrying)"
    REAUTHORIZATION_REQUIRED = "reauthorization_required", "Reauthorization required"
    ERROR = "error", "Could not connect"  # the portal's words too
    DISCONNECTED = "disconnected", "Disconnected"

    # The groups are methods: a tuple assigned in the class body would become a choice.
    @classmethod
    def working(cls) -> tuple[Status, ...]:
        """The tokens work: ``connected``, or ``failing`` (renewals failing, retried).
        A failed Reconnect of a working connection keeps it working."""
        return (cls.CONNECTED, cls.FAILING)

    @classmethod
    def renewable(cls) -> tuple[Status, ...]:
        """What the renewal sweep renews, and its partial index covers: the working
        ones (a token that works is kept working)."""
        return cls.working()

    @classmethod
    def attention(cls) -> tuple[Status, ...]:
        """Someone must act or watch: ``failing``, ``reauthorization_required``,
        ``error``. A transition into one alerts the operators; the dashboard counts
        them as broken and the portal says why."""
        return (cls.FAILING, cls.REAUTHORIZATION_REQUIRED, cls.ERROR)

    @classmethod
    def in_progress(cls) -> tuple[Status, ...]:
        """Work runs while the customer watches (the portal polls quickly):
        ``exchanging``. ``authorizing`` waits on the customer at the app's consent
        page, so polling for it would never end."""
        return (cls.EXCHANGING,)
