"""Creating the sandbox's demo user and clients (idempotent).

The credentials here are the sandbox's fixed, public demo values: they protect nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management import call_command
from oauth2_provider.models import Application

DEMO_USERNAME = "alice"
DEMO_PASSWORD = "alice-password"  # noqa: S105 - the sandbox's public demo login
CLIENT_ID = "portal-demo-client"
CLIENT_SECRET = "portal-demo-secret"  # noqa: S105 - the sandbox's public demo client
CC_CLIENT_ID = "portal-demo-cc"
CC_CLIENT_SECRET = "portal-demo-cc-secret"  # noqa: S105 - the sandbox's public demo client
DEFAULT_REDIRECT_URI = "http://localhost:8000/oauth2/callback"


@dataclass(frozen=True)
class DemoClient:
    """One demo client the sandbox registers."""

    name: str
    client_id: str
    client_secret: str
    grant_type: str


DEMO_CLIENTS = (
    DemoClient(
        "Connection portal (authorization code)",
        CLIENT_ID,
        CLIENT_SECRET,
        Application.GRANT_AUTHORIZATION_CODE,
    ),
    DemoClient(
        "Connection portal (client credentials)",
        CC_CLIENT_ID,
        CC_CLIENT_SECRET,
        Application.GRANT_CLIENT_CREDENTIALS,
    ),
)


def _save_client(client: DemoClient, redirect_uris: Sequence[str]) -> Application:
    application = Application.objects.filter(client_id=client.client_id).first() or Application(
        client_id=client.client_id
    )
    application.name = client.name
    application.client_type = Application.CLIENT_CONFIDENTIAL
    application.authorization_grant_type = client.grant_type
    application.redirect_uris = (
        " ".join(redirect_uris) if client.grant_type == Application.GRANT_AUTHORIZATION_CODE else ""
    )
    application.skip_authorization = False
    application.algorithm = Application.NO_ALGORITHM
    # Stored hashed (DOT's default); clients authenticate with the plaintext.
    application.hash_client_secret = True
    application.client_secret = client.client_secret
    application.full_clean(exclude=["client_secret", "user"])
    application.save()
    return application


def sandbox_setup(*, redirect_uris: Sequence[str]) -> None:
    """Migrate the sandbox database and (re)create the demo user and clients.

    The authorization-code client's redirect URIs become exactly ``redirect_uris``.
    """
    call_command("migrate", interactive=False, verbosity=0)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=DEMO_USERNAME)
    user.set_password(DEMO_PASSWORD)
    user.save()
    for client in DEMO_CLIENTS:
        _save_client(client, redirect_uris or [DEFAULT_REDIRECT_URI])
