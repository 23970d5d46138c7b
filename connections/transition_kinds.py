"""What a recorded transition was, when its statuses alone do not say.

A renewal and a Reconnect of a working connection are both connected → connected; the
code exchange's reason tells them apart. The history (``connections.selectors``), the
transition log's pruning (``connections.transition_log``) and the event webhooks
(``webhooks.services``) ask here.
"""

from __future__ import annotations

from connections.choices import Status

# How a code exchange's transition reason starts (``oauthflow.exchange`` writes it).
EXCHANGED_REASON = "Code exchanged for tokens"


def is_reconnect_of_working(*, from_status: str, to_status: str, reason: str) -> bool:
    """True for connected → connected written by a code exchange (the customer consented
    again while the old tokens still worked), not by a renewal."""
    return from_status == to_status == Status.CONNECTED and reason.startswith(EXCHANGED_REASON)
