"""Settings of the sandbox authorization server (django-oauth-toolkit).

Environment:

* ``SANDBOX_DB``: SQLite file (default ``var/sandbox.sqlite3`` under the repository);
* ``SANDBOX_SECRET_KEY``: Django secret key (default: random, kept next to the database);
* ``SANDBOX_DEBUG``: Django's DEBUG (default on: this is a development tool);
* ``SANDBOX_ACCESS_TOKEN_SECONDS``: access token lifetime (default 60);
* ``SANDBOX_REFRESH_TOKEN_REUSE_PROTECTION``: revoke the whole grant when a rotated
  refresh token is replayed (RFC 9700 §4.14; default off, as DOT's default);
* ``SANDBOX_REFRESH_NEEDS_OFFLINE_ACCESS``: issue refresh tokens only when the
  ``offline_access`` scope was granted, as many real apps do (default off);
* ``SANDBOX_REFRESH_TOKEN_SECONDS``: refresh tokens lapse after this many seconds and
  token replies say so in ``refresh_token_expires_in``, as GitHub's and LinkedIn's do
  (default 7776000, 90 days; 0: never, and not said).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parent
REPO_DIR = SANDBOX_DIR.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _secret_key(db_path: Path) -> str:
    """``SANDBOX_SECRET_KEY``, else a random key generated once and kept beside the DB."""
    from_env = os.environ.get("SANDBOX_SECRET_KEY", "").strip()
    if from_env:
        return from_env
    key_file = db_path.with_name(db_path.name + ".secret-key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SANDBOX_DB = Path(os.environ.get("SANDBOX_DB") or REPO_DIR / "var" / "sandbox.sqlite3").resolve()
SANDBOX_DB.parent.mkdir(parents=True, exist_ok=True)

SECRET_KEY = _secret_key(SANDBOX_DB)
DEBUG = _env_bool("SANDBOX_DEBUG", True)
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Like the real providers that sign users in inside popups: a page opened by another
# origin keeps its window.opener (Django's default same-origin would cut a popup off).
SECURE_CROSS_ORIGIN_OPENER_POLICY = "unsafe-none"

ROOT_URLCONF = "sandbox.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SANDBOX_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# WAL lets readers and a writer overlap; the timeout makes concurrent writers (two
# renewals at once) wait for each other instead of failing with "database is locked",
# and IMMEDIATE transactions take the write lock up front, where the timeout applies.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SANDBOX_DB,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Own cookie names: on localhost, cookies ignore the port, so the portal's and the
# sandbox's must never share a name.
SESSION_COOKIE_NAME = "sandbox_sessionid"
CSRF_COOKIE_NAME = "sandbox_csrftoken"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

SANDBOX_REFRESH_TOKEN_SECONDS = int(os.environ.get("SANDBOX_REFRESH_TOKEN_SECONDS") or 7776000)
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("SANDBOX_ACCESS_TOKEN_SECONDS") or 60),
    "REFRESH_TOKEN_EXPIRE_SECONDS": SANDBOX_REFRESH_TOKEN_SECONDS or None,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": _env_bool("SANDBOX_REFRESH_TOKEN_REUSE_PROTECTION", False),
    # PKCE is accepted (and checked) when the client sends it, not demanded.
    "PKCE_REQUIRED": False,
    "SCOPES": {
        "read": "Read your widgets",
        "write": "Change your widgets",
        "offline_access": "Keep access while you are away (refresh tokens)",
    },
    "DEFAULT_SCOPES": ["read"],
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "REQUEST_APPROVAL_PROMPT": "force",
    "OAUTH2_VALIDATOR_CLASS": "sandbox.validators.SandboxValidator",
}
SANDBOX_REFRESH_NEEDS_OFFLINE_ACCESS = _env_bool("SANDBOX_REFRESH_NEEDS_OFFLINE_ACCESS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SANDBOX_LOG_LEVEL", "INFO")},
    # Django's own console handler would print every warning a second time.
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
