"""POST /api/v1/connect-sessions: both kinds of key, the customer they act for, the
service's refusals as 400s naming the field, and the link the answer gives."""

from __future__ import annotations

import pytest
from django.urls import reverse

from api.models import Scope
from connect_sessions.models import ConnectSession, ReturnUrlAllowed
from connect_sessions.services import token_hash
from connections.models import Customer
from tests.api.conftest import env_client_with
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

URL = "api:connect_session_create"
RETURN_URL = "https://app.example.com/integrations/done"


@pytest.fixture(autouse=True)
def allowed():
    ReturnUrlAllowed.objects.create(url="https://app.example.com/integrations")


@pytest.fixture
def widgets():
    return ConnectionFactory(slug="widgets")


def _body(**changes):
    body = {
        "end_user": {"id": "u-7", "email": "ada@example.com", "display_name": "Ada"},
        "customer": {"external_id": "acme-1", "name": "Acme"},
        "connections": ["widgets"],
        "return_url": RETURN_URL,
        **changes,
    }
    return {name: value for name, value in body.items() if value is not None}


def _post(client, body):
    return client.post(reverse(URL), body, content_type="application/json")


def test_an_environment_key_creates_a_session_and_its_customer(env_client, widgets):
    response = _post(env_client, _body(customer={"external_id": "new-9", "name": "Newco"}))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"token", "connect_link", "expires_at"}
    assert body["token"].startswith("cst_")
    assert body["connect_link"].startswith("http://localhost:8000/connect/")
    assert response["Cache-Control"] == "no-store"
    session = ConnectSession.objects.get()
    assert session.token_hash == token_hash(body["token"])  # only the hash is kept
    assert session.customer == Customer.objects.get(external_id="new-9", name="Newco")
    assert session.end_user == {"id": "u-7", "email": "ada@example.com", "display_name": "Ada"}
    assert session.mode == "redirect"
    assert [c.slug for c in session.connections.all()] == ["widgets"]


def test_a_customer_key_creates_a_session_for_its_own_customer(customer_client, ours, widgets):
    response = _post(customer_client, _body(customer=None, mode="popup"))
    assert response.status_code == 201, response.json()
    session = ConnectSession.objects.get()
    assert session.customer == ours.customer
    assert session.mode == "popup"
    # Naming its own customer is fine too.
    assert _post(customer_client, _body()).status_code == 201


def test_a_customer_key_naming_another_customer_is_a_403(customer_client, theirs, widgets):
    response = _post(customer_client, _body(customer={"external_id": "globex-1"}))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "own customer" in response.json()["message"]
    assert not ConnectSession.objects.exists()


def test_an_environment_key_must_name_the_customer(env_client, widgets):
    response = _post(env_client, _body(customer=None))
    assert response.status_code == 400
    assert response.json()["field"] == "customer"


def test_the_scope_is_needed(widgets):
    client = env_client_with(Scope.CONNECTIONS_READ, Scope.TOKENS_READ)
    response = _post(client, _body())
    assert response.status_code == 403
    assert response.json()["scope"] == "connect_sessions:write"
    assert not ConnectSession.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"return_url": "https://evil.example.net/done"}, "return_url"),
        ({"connections": ["no-such-connection"]}, "connections"),
        ({"connections": []}, "connections"),
        ({"end_user": {"email": "x@example.com"}}, "end_user.id"),
        ({"end_user": {"id": "u-7", "email": "not an email"}}, "end_user.email"),
        ({"mode": "iframe"}, "mode"),
        ({"config_variable_id": "not-a-uuid"}, "config_variable_id"),
        ({"config_variable_id": "00000000-0000-4000-8000-000000000000"}, "config_variable_id"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field_and_writes_nothing(
    env_client, widgets, changes, field
):
    response = _post(env_client, _body(customer={"external_id": "fresh-1"}, **changes))
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == field
    assert body["message"]
    assert not ConnectSession.objects.exists()
    assert not Customer.objects.filter(external_id="fresh-1").exists()


def test_another_customers_connection_cannot_be_reconnected(env_client, theirs):
    """An environment key acting for acme cannot put globex's connection in acme's
    session: the service answers as if it did not exist."""
    body = _body(connections=[theirs.connection.slug], config_variable_id=str(theirs.pk))
    response = _post(env_client, body)
    assert response.status_code == 400
    assert response.json()["field"] == "config_variable_id"


def test_the_link_opens_the_connect_page(env_client, widgets, client):
    link = _post(env_client, _body()).json()["connect_link"]
    page = client.get(link.removeprefix("http://localhost:8000"), follow=True)
    assert page.status_code == 200
    assert ConnectSession.objects.get().opened_at is not None


@pytest.mark.parametrize(
    "path",
    [
        "/integrations/../admin",
        "/integrations/%2e%2e/admin",
        "/integrations/%2E%2E/%2E%2E/evil",
        "/integrations/.%2e/admin",
        "/integrations/x;/../../admin",
        "/integrations/./../admin",
        "/integrations/./done",
        "/integrations/x;p=1/done",
        "/integrations/a\\..\\admin",
        "/integrations/.\t./admin",
    ],
)
def test_a_return_url_escaping_the_allowed_prefix_is_refused(env_client, widgets, path):
    """Browsers resolve dot segments (also %2e) and read \\ as /: the end user would land
    outside /integrations, so the API refuses them."""
    response = _post(env_client, _body(return_url="https://app.example.com" + path))
    assert response.status_code == 400
    assert response.json()["field"] == "return_url"
    assert not ConnectSession.objects.exists()


def test_an_allow_list_entry_with_a_dot_segment_is_refused_in_the_admin():
    from django.core.exceptions import ValidationError

    entry = ReturnUrlAllowed(url="https://app.example.com/a/../b")
    with pytest.raises(ValidationError, match="segment"):
        entry.clean()


def test_the_link_is_on_the_portals_public_origin_whatever_host_the_api_was_called_on(
    env_client, widgets, settings
):
    """The backend may call the API as 127.0.0.1 or an internal name; the end user's
    browser must be on the public host the app's callback comes back to."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.OAUTH_PUBLIC_CALLBACK_URL = "https://portal.example.com/oauth2/callback"
    response = env_client.post(
        reverse(URL), _body(), content_type="application/json", HTTP_HOST="10.0.0.7:8300"
    )
    assert response.status_code == 201
    assert response.json()["connect_link"].startswith("https://portal.example.com/connect/cst_")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 2000 + "]" * 2000,  # deeper than Python's JSON decoder recurses
        '{"end_user": "' + "x" * 3_000_000 + '"}',  # over DATA_UPLOAD_MAX_MEMORY_SIZE
    ],
    ids=["nested", "too-big"],
)
def test_an_unreadable_body_is_a_json_400(env_client, body):
    response = env_client.post(reverse(URL), body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_request"


def test_config_variable_id_must_be_a_uuid_string(env_client, widgets):
    response = _post(env_client, _body(config_variable_id=123))
    assert response.status_code == 400
    assert response.json()["field"] == "config_variable_id"
    assert "7b" not in response.json()["message"]


def test_a_customer_key_whose_customer_has_no_external_id_is_told_so(widgets):
    from connections.api_keys import api_key_create
    from tests.api.conftest import bearer
    from tests.factories import CustomerFactory

    _, key = api_key_create(customer=CustomerFactory(external_id=None), name="old")
    response = _post(bearer(key), _body(customer={"external_id": "other"}))
    assert response.status_code == 403
    message = response.json()["message"]
    assert "None" not in message
    assert "has no external_id" in message


def test_a_customer_name_another_customer_has_is_display_only(env_client, widgets):
    Customer.objects.create(name="Acme")
    response = _post(env_client, _body(customer={"external_id": "acme-77", "name": "Acme"}))
    assert response.status_code == 201
    assert Customer.objects.get(external_id="acme-77").name == "Acme (acme-77)"


def test_the_document_names_the_request_body_once(client):
    document = client.get(reverse("api:schema")).json()
    assert "ConnectSessionCreateRequest" in document["components"]["schemas"]
    assert "ConnectSessionRequestRequest" not in document["components"]["schemas"]
    created = document["paths"]["/api/v1/connect-sessions"]["post"]["responses"]["201"]
    assert created["description"]
