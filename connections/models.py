"""Apps, Connections, Customers and ConfigVariables (see DESIGN.md's vocabulary).

Secrets (the client secret, tokens, an in-flight authorization code and PKCE verifier)
are encrypted at rest by django-fernet-encrypted-fields with ``FIELD_ENCRYPTION_KEYS``.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

# The choices live in connections.choices; callers import them from here, with the models.
from connections.choices import OFFLINE_SCOPE, GrantType, OfflineStrategy, Status
from connections.fields import SecretField
from connections.validators import flat_mapping_problem, validate_endpoint_url
from oauthflow import inputs
from oauthflow.flavors import FLAVORS
from oauthflow.presets import preset_exists

# Migrations 0001 and 0005 name the validator by its former place.
_validate_endpoint_url = validate_endpoint_url


class Customer(models.Model):
    """A tenant. Its users see and act on its own ConfigVariables only."""

    name = models.CharField(max_length=200, unique=True)
    # The integrating product's own tenant ID; connect sessions create customers by it.
    external_id = models.CharField(
        max_length=200,
        unique=True,
        null=True,
        blank=True,
        help_text="The integrating product's ID for this customer (its tenant ID).",
    )
    contact_email = models.EmailField(
        blank=True, help_text="Told when a connection needs the customer to reconnect."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomerUser(models.Model):
    """Links a Django user to the one Customer they belong to."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_membership"
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="members")

    class Meta:
        verbose_name = "customer user"

    def __str__(self) -> str:
        return f"{self.user} @ {self.customer}"


class App(models.Model):
    """A third-party OAuth 2.0 application registered by an admin.

    ``client_id`` and ``client_secret`` are the credentials the app issued (RFC 6749 §2.3);
    ``authorize_url`` is its authorization endpoint (§3.1) and ``token_url`` its token
    endpoint (§3.2). ``preferred_flavor`` remembers the token-request flavor (the guide's
    numbers 1-6) that last worked; ``pinned_flavor``, when set, is the only one tried.
    """

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    grant_type = models.CharField(
        max_length=32, choices=GrantType.choices, default=GrantType.AUTHORIZATION_CODE
    )
    authorize_url = models.CharField(
        max_length=2000, blank=True, validators=[validate_endpoint_url]
    )
    token_url = models.CharField(max_length=2000, validators=[validate_endpoint_url])
    revocation_url = models.CharField(
        max_length=2000,
        blank=True,
        validators=[validate_endpoint_url],
        help_text="RFC 7009 token revocation endpoint; Disconnect revokes there when set.",
    )
    client_id = models.CharField(max_length=500)
    client_secret = SecretField(blank=True, null=True)  # null: a public client
    default_scopes = models.CharField(
        max_length=2000, blank=True, help_text="Space-separated, e.g. 'read write offline_access'."
    )
    scope_separator = models.CharField(
        max_length=4, default=" ", blank=True, help_text="Sent between scopes; RFC 6749 §3.3."
    )
    offline_strategy = models.CharField(
        max_length=32, choices=OfflineStrategy.choices, default=OfflineStrategy.OFFLINE_ACCESS_SCOPE
    )
    use_pkce = models.BooleanField("PKCE (S256)", default=True, help_text="RFC 7636.")
    prompt_consent = models.BooleanField(
        default=True,
        help_text="Send prompt=consent when asking for offline access (the offline_access "
        "scope, or access_type=offline): OpenID Connect servers issue a refresh token for "
        "offline_access only with it (OIDC Core §11), and Google only on a fresh consent.",
    )
    token_path = models.CharField(
        max_length=200,
        blank=True,
        help_text="Where the tokens are in the reply when not at the top level, dotted (Slack "
        "user tokens: authed_user). Blank: the top level, else the first nested object "
        "holding an access_token.",
    )
    client_id_param = models.CharField(
        max_length=64,
        default="client_id",
        blank=True,
        help_text="The name of the client ID parameter in the authorize URL and token "
        "request bodies (TikTok: client_key). Blank: client_id.",
    )
    client_secret_param = models.CharField(
        max_length=64,
        default="client_secret",
        blank=True,
        help_text="The name of the client secret parameter in token request bodies. "
        "Blank: client_secret.",
    )
    extra_authorize_params = models.JSONField(default=dict, blank=True)
    extra_token_params = models.JSONField(default=dict, blank=True)
    extra_token_headers = models.JSONField(default=dict, blank=True)
    preferred_flavor = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    pinned_flavor = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        choices=[(flavor.number, flavor.label) for flavor in FLAVORS],
        help_text="Try only this flavor (the guide's numbering). Blank: try all six.",
    )
    # Where the App came from: a preset (oauthflow.presets) and/or discovery (RFC 8414).
    preset = models.CharField(max_length=64, blank=True, help_text="The preset it was made from.")
    docs_url = models.URLField(max_length=2000, blank=True, help_text="The app's OAuth docs.")
    customer_inputs = models.JSONField(
        default=list,
        blank=True,
        help_text='Values each customer types before Connect, e.g. [{"name": "subdomain", '
        '"label": "Your subdomain", "help": "…", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}]; '
        "URLs and extra parameters use them as {subdomain}.",
    )
    allowed_host_suffix = models.CharField(
        max_length=253,
        blank=True,
        help_text="With customer inputs: every URL's host must end with this domain "
        "(e.g. zendesk.com).",
    )
    reply_metadata = models.JSONField(
        default=list,
        blank=True,
        help_text="Token-reply fields integrations get with the token (e.g. instance_url); "
        "blank: every non-secret field.",
    )
    callback_metadata = models.JSONField(
        default=list,
        blank=True,
        help_text="Callback query parameters to keep (e.g. realmId).",
    )
    discovery_url = models.URLField(max_length=2000, blank=True, editable=False)
    discovered_at = models.DateTimeField(null=True, blank=True, editable=False)
    discovered_metadata = models.JSONField(default=dict, blank=True, editable=False)
    # The last App check: one row per flavor tried with a deliberately invalid code.
    check_results = models.JSONField(default=list, blank=True, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.grant_type == GrantType.AUTHORIZATION_CODE and not self.authorize_url:
            errors["authorize_url"] = "Authorization-code apps need one."
        for name in ("authorize_url", "token_url"):
            if "@" in urlsplit(getattr(self, name) or "").netloc:
                errors[name] = (
                    "Remove the user name or password from the URL; client credentials go "
                    "in the client ID and secret fields."
                )
        if any(ord(char) < 32 or ord(char) == 127 for char in self.client_id or ""):
            errors["client_id"] = "The client ID contains a line break or control character."
        for name in ("extra_authorize_params", "extra_token_params", "extra_token_headers"):
            problem = flat_mapping_problem(getattr(self, name), header=name.endswith("headers"))
            if problem:
                errors[name] = problem
        if self.preset and not preset_exists(self.preset):
            errors["preset"] = f"No preset named {self.preset!r}; leave it blank for none."
        shape = inputs.shape_problems(
            urls=inputs.templated_texts(self),
            inputs=self.customer_inputs or [],
            suffix=self.allowed_host_suffix,
        )
        if shape:
            errors["customer_inputs"] = " ".join(shape)
        if errors:
            raise ValidationError(errors)

    @property
    def credential_whitespace_warnings(self) -> list[str]:
        """Warnings for leading or trailing whitespace in the client ID or secret."""
        warnings = []
        for label, value in (("client ID", self.client_id), ("client secret", self.client_secret)):
            if value and value != value.strip():
                warnings.append(
                    f"The {label} has leading or trailing whitespace; apps reject it as "
                    "invalid_client. Remove it unless the app really issued it so."
                )
        return warnings

    def offline_access_warning(self, scopes: str) -> str | None:
        """The warning to show when ``scopes`` will not get a refresh token: they lack
        ``offline_access`` (for Apps that ask by scope), or they ask an OpenID Connect
        server for it without ``prompt=consent`` (OIDC Core §11). None: no warning."""
        if self.scopes_lack_offline_access(scopes):
            return (
                "The scopes lack offline_access: many apps then issue no refresh token, and "
                "connections die when the first access token expires."
            )
        words = scopes.split()
        if OFFLINE_SCOPE in words and "openid" in words and not self.prompt_consent:
            return (
                "prompt=consent is off: OpenID Connect servers grant offline_access (a "
                "refresh token) only with prompt=consent (OIDC Core §11). Turn it on."
            )
        return None

    def scopes_lack_offline_access(self, scopes: str) -> bool:
        """True when this App asks for offline access by scope and ``scopes`` lacks it."""
        return (
            self.grant_type == GrantType.AUTHORIZATION_CODE
            and self.offline_strategy == OfflineStrategy.OFFLINE_ACCESS_SCOPE
            and OFFLINE_SCOPE not in scopes.split()
        )


class Connection(models.Model):
    """A connection customers can make to an App: its name, scopes and grant type."""

    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="connections")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    scopes = models.CharField(
        max_length=2000, blank=True, help_text="Space-separated; blank uses the App's default."
    )
    grant_type = models.CharField(
        max_length=32, choices=GrantType.choices, default=GrantType.AUTHORIZATION_CODE
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.app_id and self.grant_type != self.app.grant_type:
            raise ValidationError(
                {
                    "grant_type": f"The App {self.app} is registered for "
                    f"{self.app.get_grant_type_display().lower()}; use the same grant type."
                }
            )

    @property
    def effective_scopes(self) -> list[str]:
        """The scopes requested, as a list (Connection's, else the App's default)."""
        return (self.scopes or self.app.default_scopes).split()


class ConfigVariable(models.Model):
    """One customer's instance of a Connection: its tokens and its status.

    Its UUID is what the signed OAuth ``state`` carries. Times are UTC. ``expires_at`` is
    when the access token stops working, less a safety margin; ``refresh_at`` is when
    the renewal sweep picks the row up (null: nothing to renew).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="config_variables"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="config_variables"
    )
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PENDING)
    access_token = SecretField(blank=True, null=True)
    refresh_token = SecretField(blank=True, null=True)
    token_type = models.CharField(max_length=40, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    refresh_at = models.DateTimeField(null=True, blank=True)
    refresh_token_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the refresh token lapses, when the app said (UTC); only a reconnect "
        "gives a new one.",
    )
    scopes_granted = models.TextField(blank=True)
    token_extra = models.JSONField(
        default=dict, blank=True, help_text="Extra fields of the token response, no tokens."
    )
    warnings = models.JSONField(default=list, blank=True)
    last_error = models.TextField(blank=True)
    diagnosis = models.CharField(
        max_length=64, blank=True, help_text="Why the last attempt failed (a diagnosis key)."
    )
    # In-flight authorization: the newest Connect's state nonce (older callbacks are
    # refused), and the code and PKCE verifier, encrypted, cleared once the exchange ends.
    flow_nonce = models.CharField(max_length=64, blank=True, editable=False)
    # The redirect_uri sent at authorize, sent again byte for byte at the token step
    # (RFC 6749 §4.1.3), whatever the settings say by then.
    flow_redirect_uri = models.CharField(max_length=2000, blank=True, editable=False)
    customer_inputs = models.JSONField(
        default=dict, blank=True, help_text="What the customer typed before Connect."
    )
    callback_metadata = models.JSONField(
        default=dict, blank=True, help_text="Values the app sent on the callback (realmId)."
    )
    pending_code = SecretField(blank=True, null=True)
    code_verifier = SecretField(blank=True, null=True)
    # Renewal claim: the worker holding lease_token may spend the refresh token until
    # lease_expires_at; an expired lease can be taken over after a crash.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set when the sweep enqueues a renewal, cleared when it ends: no duplicate messages.
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The fingerprint of the token a rejection report renewed into: a report naming it
    # again is a second rejection, reported rather than renewed in a loop.
    forced_renewal_fingerprint = models.CharField(max_length=32, blank=True, editable=False)
    failure_count = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "config variable"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "connection"], name="one_config_variable_per_customer"
            )
        ]
        indexes = [
            # The renewal sweep reads due rows only: its cost follows due rows, not all.
            # Every column the sweep reads is in the index (PostgreSQL: an index-only
            # scan in refresh_at order, whatever the table's size).
            models.Index(
                fields=["refresh_at", "lease_expires_at", "enqueued_at"],
                include=["id"],
                name="config_variable_due",
                condition=Q(status__in=list(Status.renewable()), refresh_at__isnull=False),
            ),
            # The pages at a million rows (benchmarks/pages.py): the admin list filtered
            # by status in its default order (-id), the dashboard's lists of broken,
            # unrenewable and lapsing connections: each reads its few rows, not all.
            models.Index(fields=["status", "-id"], name="config_variable_status"),
            models.Index(
                fields=["failing_since", "updated_at"],
                name="config_variable_attention",
                condition=Q(status__in=list(Status.attention())),
            ),
            models.Index(
                fields=["expires_at"],
                name="config_variable_no_refresh",
                condition=Q(status=Status.CONNECTED, refresh_token__isnull=True),
            ),
            models.Index(
                fields=["refresh_token_expires_at"],
                name="config_variable_refresh_lapse",
                condition=Q(
                    status__in=list(Status.renewable()), refresh_token_expires_at__isnull=False
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} / {self.connection}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def expires_in(self) -> float | None:
        """Seconds until the access token expires (negative once expired), or None."""
        if self.expires_at is None:
            return None
        return (self.expires_at - timezone.now()).total_seconds()


class StatusTransition(models.Model):
    """One recorded change of a ConfigVariable's status, with its reason."""

    config_variable = models.ForeignKey(
        ConfigVariable, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=32, choices=Status.choices)
    to_status = models.CharField(max_length=32, choices=Status.choices)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class ApiKey(models.Model):
    """A customer's key for the token API. Only a SHA-256 hash is stored; the key is
    shown once, when created. Keys look like ``cpk_<prefix>_<secret>``."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)
    # Set by the admin on the instance it just created, for the one page that shows the
    # key; never saved.
    _created_key: str

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (cpk_{self.prefix}_…)"


class Heartbeat(models.Model):
    """When a periodic job last ran (``renewal_sweep``): health checks read its age."""

    name = models.CharField(max_length=64, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


class AlertIncident(models.Model):
    """One open incident (a connection failing, beat stopped): alerts are sent once per
    incident, not once per failure, until it is resolved."""

    key = models.CharField(max_length=200, unique=True)
    subject = models.CharField(max_length=300)
    opened_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    occurrences = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.subject


class StatusSnapshot(models.Model):
    """ConfigVariables by status at one moment, taken by the renewal sweep at most once
    per ``slot`` (5 minutes) and kept 7 days: the dashboard's "connections by status over
    time" (``connections.metrics_history``)."""

    slot = models.DateTimeField(unique=True, help_text="Start of the 5-minute slot (UTC)")
    taken_at = models.DateTimeField()
    counts = models.JSONField(default=dict, help_text="Status → number of ConfigVariables")

    class Meta:
        ordering = ["-slot"]

    def __str__(self) -> str:
        return f"Status counts at {self.taken_at:%Y-%m-%d %H:%M:%S}"
