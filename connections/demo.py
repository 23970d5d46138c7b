"""Seed data for ``manage.py demo``: an admin, a customer with a user, and the sandbox
App (django-oauth-toolkit on loopback) with an authorization-code and a
client-credentials Connection. Idempotent: running it again resets the demo logins and
points the Apps at the given sandbox URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from connections.models import App, Connection, Customer, CustomerUser, GrantType

if TYPE_CHECKING:
    from django.contrib.auth.models import User  # AUTH_USER_MODEL

# The sandbox's fixed, public demo clients (sandbox/provisioning.py registers them there;
# the two run in separate processes, so they share these values, not code).
SANDBOX_CLIENT = ("portal-demo-client", "portal-demo-secret")
SANDBOX_CC_CLIENT = ("portal-demo-cc", "portal-demo-cc-secret")
SANDBOX_USER = ("alice", "alice-password")
ADMIN_LOGIN = ("admin", "admin-password")
CUSTOMER_LOGIN = ("customer", "customer-password")


@dataclass(frozen=True)
class DemoLogins:
    """Who can log in where, for the banner."""

    admin: tuple[str, str]
    customer: tuple[str, str]
    sandbox_user: tuple[str, str]


def _user(username: str, password: str, *, staff: bool) -> User:
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = staff
    # Setting an unchanged password anew would log the user out of running sessions.
    if not user.check_password(password):
        user.set_password(password)
    user.save()
    return user


@transaction.atomic
def demo_seed(*, sandbox_url: str) -> DemoLogins:
    """Create or refresh the demo rows; ``sandbox_url`` is e.g. ``http://127.0.0.1:8001``."""
    _user(*ADMIN_LOGIN, staff=True)
    customer, _ = Customer.objects.get_or_create(name="Acme Widgets Inc.")
    CustomerUser.objects.update_or_create(
        user=_user(*CUSTOMER_LOGIN, staff=False), defaults={"customer": customer}
    )
    app, _ = App.objects.update_or_create(
        slug="sandbox",
        defaults={
            "name": "Sandbox (django-oauth-toolkit)",
            "grant_type": GrantType.AUTHORIZATION_CODE,
            "authorize_url": f"{sandbox_url}/o/authorize/",
            "token_url": f"{sandbox_url}/o/token/",
            "client_id": SANDBOX_CLIENT[0],
            "client_secret": SANDBOX_CLIENT[1],
            "default_scopes": "read write offline_access",
            "use_pkce": True,
        },
    )
    Connection.objects.update_or_create(
        slug="sandbox-widgets",
        defaults={
            "app": app,
            "name": "Sandbox widgets",
            "description": "Authorization code with PKCE; the access token lives 60 s.",
        },
    )
    cc_app, _ = App.objects.update_or_create(
        slug="sandbox-service",
        defaults={
            "name": "Sandbox service account",
            "grant_type": GrantType.CLIENT_CREDENTIALS,
            "authorize_url": "",
            "token_url": f"{sandbox_url}/o/token/",
            "client_id": SANDBOX_CC_CLIENT[0],
            "client_secret": SANDBOX_CC_CLIENT[1],
            "default_scopes": "read",
        },
    )
    Connection.objects.update_or_create(
        slug="sandbox-service",
        defaults={
            "app": cc_app,
            "name": "Sandbox service account",
            "grant_type": GrantType.CLIENT_CREDENTIALS,
            "description": "Client credentials: no consent screen, renewed by fetching anew.",
        },
    )
    return DemoLogins(admin=ADMIN_LOGIN, customer=CUSTOMER_LOGIN, sandbox_user=SANDBOX_USER)
