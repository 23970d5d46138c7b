"""Environment keys: admin-created API keys that act across customers, limited by scopes."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class Scope(models.TextChoices):
    """What an environment key may do. A customer key holds all of them, for its own
    customer only."""

    CONNECT_SESSIONS_WRITE = "connect_sessions:write", "Create connect sessions"
    CONNECTIONS_READ = "connections:read", "List and read connections"
    CONNECTIONS_WRITE = "connections:write", "Disconnect connections"
    TOKENS_READ = "tokens:read", "Get access tokens and report rejected ones"


class EnvironmentKey(models.Model):
    """An environment's key for the API (``cpe_<prefix>_<secret>``), acting across
    customers within its ``scopes``. Only a SHA-256 hash of the secret is stored; the key
    is shown once, when created. A revoked key stays revoked."""

    name = models.CharField(max_length=200, help_text="Who uses it, e.g. 'production backend'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="What the key may do (Scope values).")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)
    # Set by the admin on the instance it just created, for the one page that shows the
    # key; never saved.
    _created_key: str

    class Meta:
        verbose_name = "environment key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (cpe_{self.prefix}_…)"

    def clean(self) -> None:
        if not isinstance(self.scopes, list) or not self.scopes:
            raise ValidationError({"scopes": "Choose at least one scope."})
        unknown = sorted(set(map(str, self.scopes)) - set(Scope.values))
        if unknown:
            raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(unknown)}."})
