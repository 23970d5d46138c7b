"""Reads about connect sessions for other parts of the portal."""

from __future__ import annotations

from connect_sessions.models import ConnectSession, SessionOutcome
from connections.models import ConfigVariable


def connect_session_for(config_variable: ConfigVariable) -> ConnectSession | None:
    """The connect session whose end user made (or is making) ``config_variable``'s
    connection: the newest one that worked on it and did not end in error or denial.
    None when it was connected in the portal, not through a connect session."""
    return (
        ConnectSession.objects.filter(config_variable=config_variable)
        .exclude(outcome__in=[SessionOutcome.ERROR, SessionOutcome.DENIED])
        .order_by("-created_at", "-pk")
        .first()
    )


def end_user_for(config_variable: ConfigVariable) -> dict[str, str] | None:
    """``{"id", "email", "display_name"}`` of the end user who connected
    ``config_variable`` through a connect session (``connect_session_for``), or None."""
    connect_session = connect_session_for(config_variable)
    return connect_session.end_user if connect_session is not None else None
