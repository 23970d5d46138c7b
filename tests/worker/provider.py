"""The worker tests' token endpoint: the benchmark's fake rotating endpoint
(``benchmarks.fake_endpoint``, one implementation for both), requiring this client.

It answers ``POST /token`` as a strict production authorization server does: refresh
tokens rotate and a spent one gets ``invalid_grant``; tokens it did not issue are
unknown; it records every request and can be scripted (429, 503, ``invalid_grant``).
"""

from __future__ import annotations

from benchmarks.fake_endpoint import (
    RETRY_AFTER_SECONDS,
    RotatingTokenEndpoint,
    Scripted,
    SeenRequest,
)

CLIENT_ID = "worker-test-client"
CLIENT_SECRET = "worker-test-secret"

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "RETRY_AFTER_SECONDS",
    "RotatingTokenProvider",
    "Scripted",
    "SeenRequest",
]


class RotatingTokenProvider(RotatingTokenEndpoint):
    """The endpoint with this suite's client credentials; strict about unknown tokens."""

    def __init__(self, *, access_token_seconds: int = 3600, reply_delay: float = 0.0) -> None:
        super().__init__(
            lifetime=access_token_seconds,
            reply_delay=reply_delay,
            client=(CLIENT_ID, CLIENT_SECRET),
        )
