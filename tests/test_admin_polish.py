"""The admin as a new user meets it (issue 13): branded, one date format, no Save button
where nothing can be changed, fields that apply to the App's grant, flavors by name, and
403 (never a 500) on every custom URL for staff without the permission."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from connections.admin_common import utc
from connections.forms import AppForm
from connections.models import App, GrantType, Status
from oauthflow.flavors import FLAVORS_BY_NUMBER
from oauthflow.models import TokenRequest
from tests.factories import (
    AppFactory,
    ConfigVariableFactory,
    ConnectionFactory,
    staff_client,
)

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 1, 31, 14, 5, 9, tzinfo=UTC)
ISO = "2026-01-31 14:05:09 UTC"


def _save_buttons(html: str) -> list[str]:
    return re.findall(r'<input type="submit"[^>]*name="(_save|_continue|_addanother)"', html)


def test_the_admin_is_branded_as_the_product(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Connection portal" in html
    assert "Django administration" not in html
    assert "<title>Apps, connections and their health | Connection portal admin</title>" in html


def test_the_admin_index_links_the_health_dashboard(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:connections_dashboard") in html
    assert "Connection health dashboard" in html


def test_staff_without_the_view_permission_see_no_dashboard_link():
    html = staff_client().get(reverse("admin:index")).content.decode()
    assert reverse("admin:connections_dashboard") not in html


def test_dates_are_iso_with_seconds_in_utc():
    assert utc(WHEN) == ISO
    assert utc(None) == "—"


def test_config_variable_list_names_customer_and_connection_with_utc_dates(admin_client):
    cv = ConfigVariableFactory(status=Status.CONNECTED, expires_at=WHEN, refresh_at=WHEN)
    html = admin_client.get(reverse("admin:connections_configvariable_changelist")).content.decode()
    assert cv.customer.name in html
    assert cv.connection.name in html
    # Columns say UTC in the header and keep each date on one line.
    assert "Expires (UTC)" in html
    assert "<span style='white-space:nowrap'>2026-01-31 14:05:09</span>" in html
    # The UUID appears shortened (whole on hover), not as a column of wrapped text.
    assert f"<code title='{cv.pk}'>{str(cv.pk)[:8]}…</code>" in html
    assert f">{cv.pk}<" not in html
    # Searching by the whole UUID still finds the row.
    found = admin_client.get(
        reverse("admin:connections_configvariable_changelist"), {"q": str(cv.pk)}
    )
    assert cv.customer.name in found.content.decode()


def test_config_variable_page_dates_are_utc_and_it_has_no_save_button(admin_client):
    cv = ConfigVariableFactory(status=Status.CONNECTED, expires_at=WHEN, connected_at=WHEN)
    cv.transitions.create(from_status=Status.EXCHANGING, to_status=Status.CONNECTED, reason="x")
    response = admin_client.get(reverse("admin:connections_configvariable_change", args=[cv.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert ISO in html
    assert _save_buttons(html) == []
    assert "Close" in html
    # The list's actions still change rows: change permission is untouched.
    assert (
        "renew_now"
        in admin_client.get(reverse("admin:connections_configvariable_changelist")).content.decode()
    )


def test_token_request_page_has_no_save_button_and_a_utc_date(admin_client):
    app = AppFactory()
    record = TokenRequest.objects.create(
        app=app, kind="exchange", flavor=1, url=app.token_url, created_at=WHEN
    )
    html = admin_client.get(
        reverse("admin:oauthflow_tokenrequest_change", args=[record.pk])
    ).content.decode()
    assert _save_buttons(html) == []
    assert ISO in html
    # The curl block wraps and scrolls inside its box.
    assert "overflow-wrap:anywhere" in html
    assert "overflow:auto" in html
    listing = admin_client.get(reverse("admin:oauthflow_tokenrequest_changelist")).content.decode()
    assert "When (UTC)" in listing
    assert "2026-01-31 14:05:09" in listing


def test_app_page_still_has_save_buttons(admin_client):
    app = AppFactory()
    html = admin_client.get(reverse("admin:connections_app_change", args=[app.pk])).content.decode()
    assert "_save" in " ".join(_save_buttons(html))


def test_pinned_flavor_choices_name_each_flavor(admin_client):
    app = AppFactory()
    html = admin_client.get(reverse("admin:connections_app_change", args=[app.pk])).content.decode()
    assert "#3: credentials in the body, form body" in html
    assert "Flavor 3" not in html
    assert "the guide" not in html
    field = App._meta.get_field("pinned_flavor")
    assert dict(field.choices) == {n: f.label for n, f in FLAVORS_BY_NUMBER.items()}


def test_the_flavor_that_works_is_named(admin_client):
    app = AppFactory(preferred_flavor=4)
    html = admin_client.get(reverse("admin:connections_app_change", args=[app.pk])).content.decode()
    assert FLAVORS_BY_NUMBER[4].label in html
    listing = admin_client.get(reverse("admin:connections_app_changelist")).content.decode()
    assert FLAVORS_BY_NUMBER[4].label in listing


def test_keep_the_current_secret_is_said_only_when_one_is_set():
    with_secret = AppForm(instance=AppFactory(client_secret="s3cret"))
    assert "Leave blank to keep it" in str(with_secret.fields["client_secret"].help_text)
    public = AppForm(instance=AppFactory(client_secret=None))
    assert "Leave blank" not in str(public.fields["client_secret"].help_text)
    new = AppForm()
    assert "Leave blank" not in str(new.fields["client_secret"].help_text)


def test_app_url_inputs_are_wide(admin_client):
    html = admin_client.get(reverse("admin:connections_app_add")).content.decode()
    for name in ("authorize_url", "token_url", "revocation_url", "docs_url"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
        assert 'size="80"' in tag, tag


CODE_ONLY = ("authorize_url", "use_pkce", "prompt_consent", "offline_strategy")


def test_a_client_credentials_app_hides_what_only_the_code_grant_uses(admin_client, settings):
    app = AppFactory(grant_type=GrantType.CLIENT_CREDENTIALS, authorize_url="")
    html = admin_client.get(reverse("admin:connections_app_change", args=[app.pk])).content.decode()
    for name in CODE_ONLY:
        assert f'name="{name}"' not in html, name
    assert "Callback URL to register" not in html
    assert "Authorize URL preview" not in html
    assert 'name="token_url"' in html


def test_an_authorization_code_app_shows_them(admin_client, settings):
    app = AppFactory(grant_type=GrantType.AUTHORIZATION_CODE)
    html = admin_client.get(reverse("admin:connections_app_change", args=[app.pk])).content.decode()
    for name in CODE_ONLY:
        assert f'name="{name}"' in html, name
    assert settings.OAUTH_PUBLIC_CALLBACK_URL in html


def test_saving_a_client_credentials_app_keeps_its_hidden_fields(admin_client):
    app = AppFactory(grant_type=GrantType.CLIENT_CREDENTIALS, use_pkce=True, client_secret="s3cret")
    response = admin_client.post(
        reverse("admin:connections_app_change", args=[app.pk]),
        {
            "name": app.name,
            "slug": app.slug,
            "grant_type": app.grant_type,
            "token_url": app.token_url,
            "client_id": "id-2",
            "client_secret": "",
            "default_scopes": "read",
            "scope_separator": " ",
            "pinned_flavor": "",
            "extra_token_params": "{}",
            "extra_token_headers": "{}",
            "client_id_param": "client_id",
            "client_secret_param": "client_secret",
            "customer_inputs": "[]",
            "reply_metadata": "[]",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    app.refresh_from_db()
    assert (app.client_id, app.client_secret, app.use_pkce) == ("id-2", "s3cret", True)


@pytest.mark.parametrize(
    ("url_name", "args"),
    [
        ("admin:connections_app_postman", "app"),
        ("admin:connections_app_add_from", None),
        ("admin:connections_apikey_add", None),
    ],
)
def test_custom_admin_urls_answer_403_without_the_permission(url_name, args):
    app = AppFactory()
    url = reverse(url_name, args=[app.pk] if args else [])
    response = staff_client().get(url)
    assert response.status_code == 403


def test_custom_admin_urls_answer_with_the_permission():
    app = AppFactory()
    viewer = staff_client("view_app")
    assert viewer.get(reverse("admin:connections_app_postman", args=[app.pk])).status_code == 200
    assert viewer.get(reverse("admin:connections_app_add_from")).status_code == 403
    adder = staff_client("add_app")
    assert adder.get(reverse("admin:connections_app_add_from")).status_code == 200


def test_the_api_key_created_page_needs_the_add_permission(admin_client):
    ConnectionFactory()
    customer = ConfigVariableFactory().customer
    response = staff_client("view_apikey").post(
        reverse("admin:connections_apikey_add"), {"customer": customer.pk, "name": "k"}
    )
    assert response.status_code == 403
    response = admin_client.post(
        reverse("admin:connections_apikey_add"), {"customer": customer.pk, "name": "k"}
    )
    assert response.status_code == 200
    assert "cpk_" in response.content.decode()


def test_the_admin_history_groups_renewals_and_keeps_every_row(admin_client):
    from connections.models import Status
    from connections.services import config_variable_transition
    from tests.factories import ConfigVariableFactory

    cv = ConfigVariableFactory(status=Status.EXCHANGING)
    config_variable_transition(config_variable=cv, to_status=Status.CONNECTED, reason="exchanged")
    for _ in range(5):
        config_variable_transition(config_variable=cv, to_status=Status.CONNECTED, reason="renewed")
    page = admin_client.get(
        reverse("admin:connections_configvariable_change", args=[cv.pk])
    ).content.decode()
    assert "Renewed repeatedly since" in page
    assert page.count("renewed</td>") + page.count(">renewed<") >= 5  # the raw rows stay
