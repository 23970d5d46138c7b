"""Keep authorization codes and states out of access logs.

The development server (and most WSGI servers) log each request line; the OAuth
callback's query string carries the authorization code, which must never be logged.
"""

from __future__ import annotations

import logging
import re

SECRET_QUERY = re.compile(r"((?:[?&])(?:code|state|access_token|refresh_token)=)[^&\s\"]*")
# A connect link's path carries its session token (connect_sessions.services).
CONNECT_TOKEN = re.compile(r"(/connect/)cst_[^/?#\s\"]*")


def redact_query(text: str) -> str:
    """``text`` with the values of ``code``, ``state`` and token query parameters, and a
    connect link's session token, masked."""
    return CONNECT_TOKEN.sub(r"\1[REDACTED]", SECRET_QUERY.sub(r"\1[REDACTED]", text))


class RedactQueryFilter(logging.Filter):
    """A logging filter applying ``redact_query`` to the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_query(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
