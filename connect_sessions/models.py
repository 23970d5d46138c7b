"""Connect sessions: how an integrating product's end user connects without a portal login.

The integrating backend creates a session (``connect_sessions.services``) and hands its
end user the connect link; the link works once, until ``expires_at``, and binds the
browser that opened it to the session's customer and allowed Connections. Only the
SHA-256 of the session token is stored. Times are UTC.

A ``return_url`` must match a ``ReturnUrlAllowed`` entry (``ReturnUrlAllowed.matches``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from connections.models import ConfigVariable, Connection, Customer
from oauthflow.netguard import scheme_problem

DEFAULT_PORTS = {"http": 80, "https": 443}


class Mode(models.TextChoices):
    """How the connect flow ends: a redirect to ``return_url``, or a message to the page
    that opened the popup (``window.opener``)."""

    REDIRECT = "redirect", "Redirect to the return URL"
    POPUP = "popup", "Message to the opener (popup)"


class SessionOutcome(models.TextChoices):
    """How a connect session ended; sent to the return URL as ``outcome``."""

    CONNECTED = "connected", "Connected"
    ERROR = "error", "Could not connect"
    DENIED = "denied", "Access denied at the app"


def url_parts(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, lower-case host, port, path) of an http(s) URL; None when it has no
    host, carries a user name or password, or names an impossible port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return (
        parts.scheme,
        parts.hostname.lower(),
        port or DEFAULT_PORTS[parts.scheme],
        parts.path or "/",
    )


def path_problem(url: str) -> str:
    """Why the path of ``url`` could lead a browser elsewhere than it reads, or "".

    Browsers resolve ``.`` and ``..`` segments, percent-encoded ones too (``%2e``, any
    case; WHATWG URL, "single-dot" and "double-dot" segments) and read ``\\`` as ``/``,
    so ``/integrations/%2e%2e/admin`` lands on ``/admin``. These, and ``;`` path
    parameters, are refused rather than normalised: a return URL never needs them, and
    a prefix check on the path as written then means what it says."""
    path = urlsplit(url.strip()).path
    if "\\" in path:
        return "Its path has a backslash (\\); browsers read it as /."
    if ";" in path:
        return "Its path has a ; (path parameters are not allowed)."
    segments = (segment.lower().replace("%2e", ".") for segment in path.split("/"))
    if any(segment in {".", ".."} for segment in segments):
        return "Its path has a . or .. segment (also as %2e); browsers resolve it."
    return ""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (the default port left out): the exact target
    origin a popup posts its message to (HTML's ``postMessage``)."""
    parts = url_parts(url)
    if parts is None:
        raise ValueError("Not an http(s) URL.")
    scheme, host, port, _ = parts
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


class ReturnUrlAllowed(models.Model):
    """An allowed return URL prefix, set by an admin.

    Matching rule: a ``return_url`` matches when its scheme, host (case-insensitive) and
    port (the scheme's default when absent) equal the entry's, its path has no dot
    segment, ``;`` or backslash (``path_problem``), and its path starts with
    the entry's path at a segment boundary: the entry ``https://app.example.com/embed``
    allows ``/embed`` and ``/embed/done`` but not ``/embedded``; an entry with no path
    (an origin) allows every path. Query and fragment never matter. The list is the
    portal's, one for all customers (not per customer)."""

    url = models.CharField(
        "allowed URL",
        max_length=2000,
        unique=True,
        help_text="An origin (https://app.example.com) or a URL prefix "
        "(https://app.example.com/integrations/). Return URLs must start with it.",
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "allowed return URL"
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        self.url = self.url.strip()
        parts = url_parts(self.url)
        if parts is None:
            raise ValidationError(
                {"url": "Enter an http(s) URL with a host, e.g. https://app.example.com."}
            )
        problem = scheme_problem(self.url)
        if problem:
            raise ValidationError({"url": problem})
        if urlsplit(self.url).query or urlsplit(self.url).fragment:
            raise ValidationError({"url": "Leave out the query and fragment (?…, #…)."})
        if path_problem(self.url):
            raise ValidationError({"url": path_problem(self.url)})

    def matches(self, url: str) -> bool:
        """Whether ``url`` is allowed by this entry (the rule in the class docstring)."""
        if path_problem(url):
            return False
        mine, theirs = url_parts(self.url), url_parts(url)
        if mine is None or theirs is None or mine[:3] != theirs[:3]:
            return False
        prefix, path = mine[3], theirs[3]
        if prefix == "/" or path == prefix:
            return True
        return path.startswith(prefix if prefix.endswith("/") else prefix + "/")


class ConnectSession(models.Model):
    """A single-use, expiring permission for one end user to connect the customer's
    allowed Connections (DESIGN.md, "connect session").

    ``token_hash`` is the SHA-256 (hex) of the token; the token itself is shown once,
    in the create answer. ``opened_at`` is set once, atomically, when the link is
    opened; ``config_variable`` is the ConfigVariable its Connect worked on (last
    pressed at ``begun_at``), and ``outcome`` how it ended (``finished_at``)."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="connect_sessions"
    )
    end_user_id = models.CharField("end user ID", max_length=200)
    end_user_email = models.EmailField("end user email", blank=True)
    end_user_display_name = models.CharField("end user name", max_length=200, blank=True)
    connections = models.ManyToManyField(Connection, related_name="connect_sessions")
    reconnect_config_variable = models.ForeignKey(
        ConfigVariable,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The existing connection the end user was asked to reconnect.",
    )
    return_url = models.CharField(max_length=2000)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.REDIRECT)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    begun_at = models.DateTimeField(
        null=True, blank=True, help_text="When the end user last pressed Connect."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=SessionOutcome.choices, blank=True)
    config_variable = models.ForeignKey(
        ConfigVariable,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="connect_sessions",
        help_text="The connection this session's Connect made or reconnected.",
    )

    class Meta:
        verbose_name = "connect session"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["config_variable", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.customer} / {self.end_user_id} ({self.created_at:%Y-%m-%d %H:%M} UTC)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def can_connect(self) -> bool:
        """Opened, not finished and not expired: a Connect may start."""
        return self.opened_at is not None and self.finished_at is None and not self.is_expired

    @property
    def end_user(self) -> dict[str, str]:
        """The end user as the API and the webhook payload show it."""
        return {
            "id": self.end_user_id,
            "email": self.end_user_email,
            "display_name": self.end_user_display_name,
        }
