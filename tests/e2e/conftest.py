"""End-to-end fixtures: the real sandbox authorization server and a scripted browser.

``sandbox_server`` runs ``python -m sandbox serve`` (django-oauth-toolkit) in its own
process, with its own temporary database, registered with the portal's live-server
callback URL. ``browser`` is a ``requests.Session`` that fills in the portal's and the
sandbox's HTML forms the way a person would. No mocks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from django.contrib.auth import get_user_model

from connections.models import App, Customer, CustomerUser, GrantType

REPO_DIR = Path(__file__).resolve().parents[2]
CALLBACK_PATH = "/oauth2/callback"
START_TIMEOUT = 60.0  # seconds: the first start migrates a fresh database
HTTP_TIMEOUT = 15.0  # seconds per request of the scripted browser


@dataclass(frozen=True)
class SandboxServer:
    """A running sandbox: where it listens and its fixed demo credentials."""

    base_url: str
    redirect_uri: str
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    client_id: str = "portal-demo-client"
    client_secret: str = "portal-demo-secret"  # the sandbox's public demo secret
    cc_client_id: str = "portal-demo-cc"
    cc_client_secret: str = "portal-demo-cc-secret"  # the sandbox's public demo secret
    username: str = "alice"
    password: str = "alice-password"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/o/authorize/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/o/token/"

    @property
    def introspect_url(self) -> str:
        return f"{self.base_url}/o/introspect/"

    def create_app(self, **overrides: Any) -> App:
        """An authorization-code App for the sandbox's demo client (PKCE, offline access)."""
        values = {
            "name": "Sandbox",
            "slug": "sandbox",
            "authorize_url": self.authorize_url,
            "token_url": self.token_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "default_scopes": "read write offline_access",
            "use_pkce": True,
        }
        return App.objects.create(**{**values, **overrides})

    def create_machine_app(self, **overrides: Any) -> App:
        """A client-credentials App for the sandbox's machine client."""
        values = {
            "name": "Sandbox machine",
            "slug": "sandbox-machine",
            "grant_type": GrantType.CLIENT_CREDENTIALS,
            "token_url": self.token_url,
            "client_id": self.cc_client_id,
            "client_secret": self.cc_client_secret,
            "default_scopes": "read",
        }
        return App.objects.create(**{**values, **overrides})

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection of an access token, as the demo client."""
        reply = requests.post(
            self.introspect_url,
            data={"token": token},
            auth=(self.client_id, self.client_secret),
            timeout=HTTP_TIMEOUT,
        )
        reply.raise_for_status()
        return reply.json()

    def refresh(self, refresh_token: str) -> requests.Response:
        """Spend ``refresh_token`` at the token endpoint directly (RFC 6749 §6)."""
        return requests.post(
            self.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self.client_id, self.client_secret),
            timeout=HTTP_TIMEOUT,
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the sandbox wrote, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(server: SandboxServer, deadline: float) -> bool:
    """Poll the login page until it answers; False when the process died first."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if requests.get(f"{server.base_url}/accounts/login/", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def sandbox_server(
    live_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    """The sandbox authorization server, registered with the live portal's callback URL."""
    workdir = tmp_path_factory.mktemp("sandbox")
    redirect_uri = f"{live_server.url}{CALLBACK_PATH}"
    env = {
        **os.environ,
        "SANDBOX_DB": str(workdir / "sandbox.sqlite3"),
        "SANDBOX_ACCESS_TOKEN_SECONDS": "60",
        "PYTHONUNBUFFERED": "1",
    }
    problems = []
    for attempt in range(3):  # a port picked free can be taken before the server binds
        port = _free_port()
        log_path = workdir / f"sandbox-{attempt}.log"
        command = [sys.executable, "-m", "sandbox", "serve", "--port", str(port)]
        command += ["--redirect-uri", redirect_uri]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                command,
                cwd=REPO_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = SandboxServer(
            base_url=f"http://127.0.0.1:{port}",
            redirect_uri=redirect_uri,
            process=process,
            log_path=log_path,
        )
        if _wait_until_up(server, time.monotonic() + START_TIMEOUT):
            break
        _stop(process)
        problems.append(server.log_tail())
    else:
        pytest.fail("The sandbox did not start:\n" + "\n---\n".join(problems))
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(autouse=True)
def portal_callback_url(settings: Any, live_server: Any) -> str:
    """Point the portal's public callback URL at the live server (what the sandbox has)."""
    settings.OAUTH_PUBLIC_CALLBACK_URL = f"{live_server.url}{CALLBACK_PATH}"
    return settings.OAUTH_PUBLIC_CALLBACK_URL


class _FormParser(HTMLParser):
    """Collects each ``<form>``'s attributes and its named ``<input>`` elements."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"attrs": values, "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(values)


@dataclass
class Form:
    """A parsed HTML form: where it posts and the values a browser would send."""

    action: str
    fields: dict[str, str]


def find_form(response: requests.Response, *, action_contains: str = "", form_id: str = "") -> Form:
    """The first form on the page whose action contains ``action_contains`` (and whose
    id is ``form_id``, when given), with its non-submit inputs' values."""
    parser = _FormParser()
    parser.feed(response.text)
    for form in parser.forms:
        action = form["attrs"].get("action", "")
        if action_contains not in action or (form_id and form["attrs"].get("id") != form_id):
            continue
        fields = {
            item["name"]: item.get("value", "")
            for item in form["inputs"]
            if item.get("name") and item.get("type", "text") != "submit"
        }
        return Form(action=urljoin(response.url, action), fields=fields)
    raise AssertionError(
        f"No form (action ~ {action_contains!r}, id {form_id!r}) on {response.url}: "
        f"HTTP {response.status_code}\n{response.text[:2000]}"
    )


class Browser:
    """A customer's browser, scripted: the portal on the live server, the sandbox app."""

    def __init__(self, *, portal_url: str, sandbox: SandboxServer) -> None:
        self.portal_url = portal_url
        self.sandbox = sandbox
        self.session = requests.Session()

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, timeout=HTTP_TIMEOUT, **kwargs)

    def submit(self, form: Form, extra: dict[str, str] | None = None, **kwargs: Any):
        return self.session.post(
            form.action, data={**form.fields, **(extra or {})}, timeout=HTTP_TIMEOUT, **kwargs
        )

    def portal_login(self, username: str, password: str) -> requests.Response:
        """Sign in to the portal; returns the portal page it lands on."""
        page = self.get(f"{self.portal_url}/accounts/login/")
        form = find_form(page)
        reply = self.submit(form, {"username": username, "password": password})
        assert reply.status_code == 200, reply.text[:2000]
        assert "/accounts/login/" not in reply.url, "the portal refused the login"
        return reply

    def press_connect(self, slug: str) -> str:
        """Press Connect on the portal page; returns where the portal redirects to."""
        page = self.get(f"{self.portal_url}/")
        form = find_form(page, action_contains=f"/oauth2/connect/{slug}")
        reply = self.submit(form, allow_redirects=False)
        assert reply.status_code == 302, reply.text[:2000]
        return urljoin(reply.url, reply.headers["Location"])

    def consent_at_sandbox(self, authorize_url: str, *, allow: bool = True) -> str:
        """Open the app's authorize URL, sign in as the demo user if asked, and answer
        the consent page; returns the callback URL the app redirects back to."""
        page = self.get(authorize_url)
        if "/accounts/login/" in page.url:
            form = find_form(page, action_contains="/accounts/login/")
            page = self.submit(
                form, {"username": self.sandbox.username, "password": self.sandbox.password}
            )
        assert page.status_code == 200, page.text[:2000]
        form = find_form(page, form_id="authorizationForm")
        reply = self.submit(form, {"allow": "Authorize"} if allow else {}, allow_redirects=False)
        assert reply.status_code == 302, reply.text[:2000]
        return reply.headers["Location"]


@pytest.fixture
def browser(live_server: Any, sandbox_server: SandboxServer) -> Iterator[Browser]:
    """A fresh scripted browser (no cookies) for one test."""
    scripted = Browser(portal_url=live_server.url, sandbox=sandbox_server)
    yield scripted
    scripted.session.close()


PORTAL_USERNAME = "carol"
PORTAL_PASSWORD = "carol-portal-password"


@pytest.fixture
def portal_customer(transactional_db: None) -> Customer:
    """A customer with one portal user, ``carol``."""
    customer = Customer.objects.create(name="Acme")
    user = get_user_model().objects.create_user(PORTAL_USERNAME, password=PORTAL_PASSWORD)
    CustomerUser.objects.create(user=user, customer=customer)
    return customer
