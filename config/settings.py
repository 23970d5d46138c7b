"""Settings: every value comes from the environment, with a local default.

One module for every environment (12-factor): production differs only by environment
variables, listed with their defaults in README.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import schedule
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE

from config.local_keys import ensure_local_env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
DEBUG = env.bool("DJANGO_DEBUG", default=True)
if DEBUG:
    # Random dev keys on first run; never committed (var/ is git-ignored).
    LOCAL_ENV_FILE = VAR_DIR / "local.env"
    ensure_local_env(LOCAL_ENV_FILE)
    environ.Env.read_env(LOCAL_ENV_FILE, overwrite=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# Old secret keys, newest first: sessions and signed states stay valid, and secrets at
# rest (whose keys derive from SECRET_KEY too) stay readable until re-encrypted.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- Applications -----------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",  # failed-login lockout
    "csp",  # Content-Security-Policy
    "connections",
    "oauthflow",
    "webhooks",  # event webhooks to the integrating product
    "connect_sessions",  # connect links for the integrating product's end users
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by the portal (no CDN)
    "api",  # the integrating backend's API, /api/v1/
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into its 429 page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",  # {{ CSP_NONCE }} for inline scripts
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Workers and the web process share the file: wait for locks instead of failing.
    # IMMEDIATE: a writing transaction takes the lock at BEGIN and so waits its turn,
    # instead of failing with "database is locked" when it upgrades from a read.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("timeout", 20)
    _options.setdefault("transaction_mode", "IMMEDIATE")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)  # seconds
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, sessions, security -----------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "connections:portal"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if not DEBUG else None

# The cache holds the token API's failed-key counters: set CACHE_URL (e.g. redis://…) when
# more than one web process serves, or each process counts on its own.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Throttling failed logins (portal and admin; django-axes, counted in the database) and
# failed API keys (token API; connections.api_keys, counted in the cache). A client IP,
# a username or an API key prefix with this many failures within the window is refused
# (429) until the window passes; successful requests are never counted.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=20)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=300)  # seconds
API_KEY_FAILURE_LIMIT = env.int("API_KEY_FAILURE_LIMIT", default=20)
API_KEY_FAILURE_WINDOW = env.int("API_KEY_FAILURE_WINDOW", default=300)  # seconds
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out logins
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_FAILURE_WINDOW)
# Per client address, and per user name from one address: never a user name alone, which
# would let anyone lock an admin out by failing from many addresses.
AXES_LOCKOUT_PARAMETERS = ["ip_address", ["username", "ip_address"]]
AXES_LOCKOUT_CALLABLE = "connections.lockout.login_locked_out"
AXES_COOLOFF_MESSAGE = (
    "Too many failed login attempts from this address or for this account. "
    f"Try again in {max(1, round(LOGIN_FAILURE_WINDOW / 60))} minutes."
)
# The client IP (logins and the token API): REMOTE_ADDR unless a proxy in front sets a
# header, e.g. CLIENT_IP_HEADERS=HTTP_X_FORWARDED_FOR with CLIENT_IP_PROXY_COUNT=1.
AXES_IPWARE_META_PRECEDENCE_ORDER = tuple(env.list("CLIENT_IP_HEADERS", default=["REMOTE_ADDR"]))
AXES_IPWARE_PROXY_COUNT = env.int("CLIENT_IP_PROXY_COUNT", default=None)

# Secrets at rest (django-fernet-encrypted-fields): the first key encrypts, every key
# decrypts, so a new key goes first and old ones stay until rows are re-encrypted.
SALT_KEY = env.list("FIELD_ENCRYPTION_KEYS")

# --- Internationalisation and static files ----------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static"))

# --- OAuth flow -------------------------------------------------------------------------
# The public URL the third-party apps send users back to; register it at each app.
OAUTH_CALLBACK_PATH = env.str("OAUTH_CALLBACK_PATH", default="oauth2/callback").strip("/")
OAUTH_PUBLIC_CALLBACK_URL = env.str(
    "OAUTH_PUBLIC_CALLBACK_URL", default=f"http://localhost:8000/{OAUTH_CALLBACK_PATH}"
)
OAUTH_STATE_MAX_AGE = env.int("OAUTH_STATE_MAX_AGE", default=600)  # seconds
# http:// authorize and token URLs are accepted only for loopback hosts, and only when on.
OAUTH_ALLOW_HTTP_LOOPBACK = env.bool("OAUTH_ALLOW_HTTP_LOOPBACK", default=DEBUG)
# Token requests to private, loopback or link-local addresses (SSRF) only when on.
OAUTH_ALLOW_PRIVATE_NETWORKS = env.bool("OAUTH_ALLOW_PRIVATE_NETWORKS", default=DEBUG)
OAUTH_MAX_RESPONSE_BYTES = env.int("OAUTH_MAX_RESPONSE_BYTES", default=1_048_576)
OAUTH_HTTP_TIMEOUT = env.float("OAUTH_HTTP_TIMEOUT", default=10.0)  # seconds per attempt
OAUTH_EXPIRY_MARGIN = env.int("OAUTH_EXPIRY_MARGIN", default=30)  # seconds
# Renew this long before expiry: a share of the token's lifetime, clamped (seconds).
RENEWAL_LEAD_FRACTION = env.float("RENEWAL_LEAD_FRACTION", default=0.1)
RENEWAL_LEAD_MIN = env.int("RENEWAL_LEAD_MIN", default=60)
RENEWAL_LEAD_MAX = env.int("RENEWAL_LEAD_MAX", default=900)
RENEWAL_JITTER = env.int("RENEWAL_JITTER", default=15)  # seconds, added at random
# A renewal's claim; its holder extends it (a heartbeat every third of it), so a dead
# holder frees the row within this long.
RENEWAL_LEASE_SECONDS = env.int("RENEWAL_LEASE_SECONDS", default=15)
# Seconds a row the sweep enqueued is not enqueued again (a queued renewal's grace).
# A broker that loses queued tasks (Redis restarted without persistence) delays those rows
# by this long plus one sweep: keep the sum under RENEWAL_LEAD_MIN (checked at start-up,
# connections.W002) so even the shortest-lived tokens are renewed before they run out.
RENEWAL_ENQUEUE_GUARD = env.int("RENEWAL_ENQUEUE_GUARD", default=45)
# A due row waits for the next sweep: the interval bounds the renewal lag. The sweep is
# an index-only range scan (flat from 10 k to 1 M rows), so sweeping often is cheap.
RENEWAL_SWEEP_INTERVAL = env.float("RENEWAL_SWEEP_INTERVAL", default=15.0)  # seconds
RENEWAL_SWEEP_BATCH = env.int("RENEWAL_SWEEP_BATCH", default=500)
SWEEP_LATE_INTERVALS = env.int("SWEEP_LATE_INTERVALS", default=20)  # missed sweeps → alert
# A fresh deploy's first sweep may take this long (seconds) before it counts as late.
SWEEP_GRACE_SECONDS = env.int("SWEEP_GRACE_SECONDS", default=600)
# Seconds between a worker's watchdog checks (beat late, broker down).
WATCHDOG_INTERVAL = env.float("WATCHDOG_INTERVAL", default=60.0)
RENEWAL_SWEEP_MAX_BATCHES = env.int("RENEWAL_SWEEP_MAX_BATCHES", default=100)
# Due rows per renewal task: one lease claim and one load per task, not per row. Several
# times RENEWAL_BATCH_THREADS, so a task's requests in flight stay that many.
RENEWAL_TASK_BATCH = env.int("RENEWAL_TASK_BATCH", default=200)
# Renewed rows per write: one UPDATE + one INSERT for them. Also the most rotated refresh
# tokens a worker killed mid-batch can lose (they were spent, not yet written).
RENEWAL_WRITE_BATCH = env.int("RENEWAL_WRITE_BATCH", default=20)
# Token requests in flight per renewal task: their HTTP waits overlap (queries stay on
# the task's thread). Providers answer in 100-500 ms: 64 in flight renew about 300 a
# second per worker process at 200 ms (benchmarks/inflight.py).
RENEWAL_BATCH_THREADS = env.int("RENEWAL_BATCH_THREADS", default=64)
RENEWAL_BACKOFF_BASE = env.int("RENEWAL_BACKOFF_BASE", default=30)  # seconds, doubled per failure
RENEWAL_BACKOFF_MAX = env.int("RENEWAL_BACKOFF_MAX", default=3600)  # seconds
TOKEN_REQUEST_RETENTION_DAYS = env.int("TOKEN_REQUEST_RETENTION_DAYS", default=30)
# The bounded token-request log (oauthflow.log_summary): successes kept in full per
# ConfigVariable, rows per DELETE (and ids per roll-up step), steps per run, seconds
# between runs and before a seen id is counted, days the hourly summaries are kept.
TOKEN_LOG_KEEP_SUCCESSES = env.int("TOKEN_LOG_KEEP_SUCCESSES", default=3)
TOKEN_LOG_BATCH = env.int("TOKEN_LOG_BATCH", default=5000)
TOKEN_LOG_MAX_BATCHES = env.int("TOKEN_LOG_MAX_BATCHES", default=40)
TOKEN_LOG_ROLLUP_INTERVAL = env.float("TOKEN_LOG_ROLLUP_INTERVAL", default=60.0)
TOKEN_LOG_SETTLE_SECONDS = env.int("TOKEN_LOG_SETTLE_SECONDS", default=30)
TOKEN_LOG_SUMMARY_RETENTION_DAYS = env.int("TOKEN_LOG_SUMMARY_RETENTION_DAYS", default=400)
RENEWAL_FAILING_AFTER = env.int("RENEWAL_FAILING_AFTER", default=3)  # failures in a row
# Seconds a code exchange waits for a renewal holding the connection's lease.
EXCHANGE_LEASE_WAIT = env.float("EXCHANGE_LEASE_WAIT", default=30.0)
# Seconds a row may sit in "exchanging" with no lease before the sweep recovers it.
STUCK_EXCHANGE_AFTER = env.int("STUCK_EXCHANGE_AFTER", default=240)
# Renew every renewable connection at least this often (seconds), even when its access
# token lives longer: many apps expire refresh tokens that sit unused.
RENEWAL_MAX_IDLE = env.int("RENEWAL_MAX_IDLE", default=86400)
# Warn operators and the customer this long (seconds) before a refresh token lapses.
REFRESH_TOKEN_EXPIRY_WARNING = env.int("REFRESH_TOKEN_EXPIRY_WARNING", default=7 * 86400)

# Seconds a connect session's link works (issue 12; the API's expires_at).
CONNECT_SESSION_SECONDS = env.int("CONNECT_SESSION_SECONDS", default=1800)
# Event webhook delivery (webhooks/README.md): backoff base and cap (seconds), attempts.
WEBHOOK_RETRY_BASE = env.float("WEBHOOK_RETRY_BASE", default=10.0)
WEBHOOK_RETRY_MAX = env.float("WEBHOOK_RETRY_MAX", default=3600.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)

# --- Content-Security-Policy ------------------------------------------------------------
# django-csp, on every page: inline scripts need the request's
# nonce ({{ CSP_NONCE }}); inline styles stay allowed (the admin uses them).
CONTENT_SECURITY_POLICY: dict[str, dict[str, list[object]]] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        # Also checked on the redirect after a form post (Chromium): Connect posts to the
        # portal, which redirects to the App's authorize URL, an https:// origin an admin
        # registers. CSP_FORM_ACTION narrows it, e.g. to the Apps' origins.
        "form-action": [SELF, *env.list("CSP_FORM_ACTION", default=["https:"])],
    },
}
if OAUTH_ALLOW_HTTP_LOOPBACK:  # loopback authorize URLs (the sandbox) are http://
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += [
        "http://localhost:*",
        "http://127.0.0.1:*",
    ]

# --- The API (/api/v1/; Django REST framework, drf-spectacular) --------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.authentication.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_METADATA_CLASS": None,  # OPTIONS is a 405: the OpenAPI document describes it
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Connection portal API",
    "DESCRIPTION": "Connections, tokens and connect sessions for the integrating backend. "
    "Authenticate with `Authorization: Bearer <key>`: a customer key (cpk_…) reaches its "
    "own customer's connections with every scope; an environment key (cpe_…) reaches every "
    'customer within its scopes. Errors are JSON `{"error", "message"}`.',
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge fetched from the public validator: nothing leaves the portal.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Celery -----------------------------------------------------------------------------
# No broker: tasks run eagerly in-process (one machine, nothing to set up). Production
# sets a Redis URL; `manage.py demo` uses kombu's file-system transport under var/.
_broker = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not _broker
CELERY_BROKER_URL = _broker or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database connection around every task unless told
# to reuse it: reconnecting cost more than the token request itself (benchmarks/).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=120)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=100)
CELERY_TASK_DEFAULT_QUEUE = "refresh"
CELERY_TASK_ROUTES = {
    "oauthflow.exchange_code": {"queue": "exchange"},
    "oauthflow.renew_config_variable": {"queue": "refresh"},
    "oauthflow.renew_config_variables": {"queue": "refresh"},
    "oauthflow.sweep_renewals": {"queue": "refresh"},
    "oauthflow.prune_token_requests": {"queue": "refresh"},
    "connections.send_alert_webhook": {"queue": "refresh"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-renewals": {
        "task": "oauthflow.sweep_renewals",
        "schedule": schedule(RENEWAL_SWEEP_INTERVAL),
    },
    "prune-token-requests": {
        "task": "oauthflow.prune_token_requests",
        "schedule": schedule(TOKEN_LOG_ROLLUP_INTERVAL),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env.str("CELERY_FILESYSTEM_DIR", default=str(VAR_DIR / "broker")))
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

# --- Mail and alerts --------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="connection-portal@localhost")
OPERATOR_EMAILS = env.list("OPERATOR_EMAILS", default=[])
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
ALERT_WEBHOOK_SECRET = env.str("ALERT_WEBHOOK_SECRET", default="")
ALERT_COOLDOWN_SECONDS = env.int("ALERT_COOLDOWN_SECONDS", default=3600)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # Bearer token /metrics requires

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_query": {"()": "config.logging_filters.RedactQueryFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_query"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default "django" logger has its own console handler (DEBUG only), which
        # would print django.request lines ("Not Found: /connect/cst_…") unfiltered: no
        # handler of its own here, so its records reach the root's filtered console once.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # runserver's request lines: the callback's query string carries the code.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
