"""The portal's live fragments, the customer's history in runs, and the state enum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connections.models import ConfigVariable, GrantType, Status, StatusTransition
from connections.selectors import (
    CustomerState,
    customer_history,
    customer_view,
    renewals_sentence,
    token_times,
)
from connections.views import LIVE_VERSION_HEADER
from oauthflow.outcomes import Key
from tests.factories import ConfigVariableFactory, ConnectionFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 4, 9, 12, 5, tzinfo=UTC)


def _at(config_variable: ConfigVariable, when: datetime, from_status: str, to_status: str):
    return StatusTransition.objects.create(
        config_variable=config_variable,
        from_status=from_status,
        to_status=to_status,
        reason="test",
        created_at=when,
    )


def _renewals(config_variable: ConfigVariable, start: datetime, count: int, every: int = 30):
    for i in range(count):
        _at(config_variable, start + timedelta(seconds=every * i), Status.CONNECTED, "connected")


@pytest.fixture
def customer():
    return CustomerFactory()


@pytest.fixture
def signed_in(customer) -> Client:
    client = Client()
    client.force_login(UserFactory(customer=customer))
    return client


@pytest.fixture
def connected(customer) -> ConfigVariable:
    now = timezone.now()
    return ConfigVariableFactory(
        customer=customer,
        status=Status.CONNECTED,
        access_token="at",
        refresh_token="rt",
        refreshed_at=now,
        expires_at=now + timedelta(seconds=45),
        refresh_at=now + timedelta(seconds=30),
    )


# --- history ------------------------------------------------------------------------


def test_a_run_of_renewals_is_one_line_with_its_times():
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    _at(cv, T0 - timedelta(minutes=2), Status.PENDING, Status.AUTHORIZING)
    _at(cv, T0 - timedelta(minutes=1), Status.AUTHORIZING, Status.EXCHANGING)
    _at(cv, T0 - timedelta(seconds=30), Status.EXCHANGING, Status.CONNECTED)
    _renewals(cv, T0, 41, every=650)  # 09:12:05 … 16:25:25

    history = customer_history(cv)

    last = T0 + timedelta(seconds=650 * 40)
    assert history == [
        (last, f"Renewed repeatedly since 09:12 (last {last:%H:%M})"),
        (T0 - timedelta(seconds=30), "Connected"),
        (T0 - timedelta(minutes=1), "Access allowed; connecting"),
        (T0 - timedelta(minutes=2), "Sent to the app to allow access"),
    ]


def test_other_events_split_runs_and_a_single_renewal_reads_as_before():
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    _at(cv, T0, Status.EXCHANGING, Status.CONNECTED)
    _renewals(cv, T0 + timedelta(minutes=1), 3)
    _at(cv, T0 + timedelta(minutes=5), Status.CONNECTED, Status.FAILING)
    _at(cv, T0 + timedelta(minutes=6), Status.FAILING, Status.CONNECTED)
    _renewals(cv, T0 + timedelta(minutes=7), 1)

    words = [what for _, what in customer_history(cv)]

    assert words == [
        "Access renewed automatically",
        "Connected",
        "Trouble renewing access; retrying",
        "Renewed repeatedly since 09:13 (last 09:14)",
        "Connected",
    ]


def test_history_keeps_the_newest_limit_lines():
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    for i in range(6):
        _at(cv, T0 + timedelta(minutes=10 * i), Status.EXCHANGING, Status.CONNECTED)
        _renewals(cv, T0 + timedelta(minutes=10 * i + 1), 2)

    history = customer_history(cv, limit=4)

    assert [what for _, what in history] == [
        "Renewed repeatedly since 10:03 (last 10:03)",
        "Connected",
        "Renewed repeatedly since 09:53 (last 09:53)",
        "Connected",
    ]


def test_a_run_over_midnight_names_the_day_it_started():
    start = datetime(2025, 3, 4, 23, 50, tzinfo=UTC)
    assert renewals_sentence(5, start, start + timedelta(minutes=20)) == (
        "Renewed repeatedly since 2025-03-04 23:50 (last 00:10)"
    )


def test_client_credentials_history_says_fetching_a_token_not_access_allowed():
    connection = ConnectionFactory(grant_type=GrantType.CLIENT_CREDENTIALS)
    cv = ConfigVariableFactory(connection=connection, status=Status.CONNECTED)
    _at(cv, T0, Status.PENDING, Status.EXCHANGING)
    _at(cv, T0 + timedelta(seconds=1), Status.EXCHANGING, Status.CONNECTED)

    assert [what for _, what in customer_history(cv)] == ["Connected", "Fetching a token"]


# --- the state enum and the buttons ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "action", "primary"),
    [
        (Status.PENDING, CustomerState.NOT_CONNECTED, "Connect", True),
        (Status.EXCHANGING, CustomerState.CONNECTING, "", True),
        (Status.CONNECTED, CustomerState.CONNECTED, "Reconnect", False),
        (Status.REAUTHORIZATION_REQUIRED, CustomerState.NEEDS_RECONNECTION, "Reconnect", True),
        (Status.ERROR, CustomerState.COULD_NOT_CONNECT, "Try again", True),
    ],
)
def test_each_status_has_one_state_and_its_button(status, state, action, primary):
    view = customer_view(ConfigVariableFactory(status=status))
    assert view.state is state
    assert view.action == action  # no "Connect again" while connecting
    assert view.primary is primary  # a healthy connection's Reconnect is not the filled one


def test_the_enum_values_are_the_labels_shown_and_templates_compare_against_it():
    assert CustomerState.COULD_NOT_CONNECT == "Could not connect"
    assert customer_view(None).state is CustomerState.NOT_CONNECTED
    declined = ConfigVariableFactory(status=Status.PENDING, diagnosis=Key.CALLBACK_ACCESS_DENIED)
    assert customer_view(declined).state is CustomerState.DECLINED
    template = Template("{% if view.state == State.CONNECTED %}yes{% else %}no{% endif %}")
    connected = customer_view(ConfigVariableFactory(status=Status.CONNECTED))
    assert template.render(Context({"view": connected, "State": CustomerState})) == "yes"
    pending = customer_view(None)
    assert template.render(Context({"view": pending, "State": CustomerState})) == "no"


def test_token_times_show_the_apps_expiry_and_the_margin_we_keep():
    issued = T0
    # A 60 s token: the portal keeps a 15 s margin (a quarter of its life, at most 30 s).
    cv = ConfigVariableFactory(refreshed_at=issued, expires_at=issued + timedelta(seconds=45))
    times = token_times(cv)
    assert times.lifetime == 60
    assert times.margin == 15
    assert times.app_expiry == issued + timedelta(seconds=60)
    # An hour-long token: the full 30 s margin.
    cv = ConfigVariableFactory(refreshed_at=issued, expires_at=issued + timedelta(seconds=3570))
    assert token_times(cv).lifetime == 3600
    assert token_times(ConfigVariableFactory(expires_at=None)) is None


# --- the fragments ------------------------------------------------------------------


def test_the_connection_fragment_shows_the_current_expiry_and_history(signed_in, connected):
    _at(connected, T0, Status.EXCHANGING, Status.CONNECTED)
    _renewals(connected, T0 + timedelta(minutes=1), 2)

    response = signed_in.get(reverse("connections:detail_live", args=[connected.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="connection-live"' in html
    assert "<html" not in html  # a fragment, not a page
    assert f"{connected.refresh_at:%Y-%m-%d %H:%M:%S} UTC" in html
    assert "Renewed repeatedly since 09:13 (last 09:13)" in html
    assert "the app said 60 s; we stop using it 15 s earlier" in html
    assert response["Cache-Control"].startswith("max-age=0")


def test_an_unchanged_fragment_is_a_204_and_a_renewal_changes_it(signed_in, connected):
    url = reverse("connections:detail_live", args=[connected.pk])
    version = signed_in.get(url).context["version"]

    assert signed_in.get(url, headers={LIVE_VERSION_HEADER: version}).status_code == 204

    later = timezone.now() + timedelta(seconds=20)
    ConfigVariable.objects.filter(pk=connected.pk).update(
        refreshed_at=later, refresh_at=later + timedelta(seconds=30)
    )
    _at(connected, later, Status.CONNECTED, Status.CONNECTED)
    response = signed_in.get(url, headers={LIVE_VERSION_HEADER: version})
    assert response.status_code == 200
    assert response.context["version"] != version


def test_another_customers_connection_fragment_is_a_404(signed_in):
    theirs = ConfigVariableFactory(status=Status.CONNECTED, access_token="their-token")
    response = signed_in.get(reverse("connections:detail_live", args=[theirs.pk]))
    assert response.status_code == 404
    assert b"their-token" not in response.content


def test_a_signed_out_poll_asks_htmx_to_reload_once(connected):
    for url in (
        reverse("connections:detail_live", args=[connected.pk]),
        reverse("connections:portal_live"),
    ):
        response = Client().get(url)
        assert response.status_code == 401
        assert response["HX-Refresh"] == "true"


def test_fragments_answer_get_only(signed_in, connected):
    url = reverse("connections:detail_live", args=[connected.pk])
    assert signed_in.post(url).status_code == 405


def test_the_portal_fragment_lists_only_this_customers_connections(signed_in, customer):
    mine = ConfigVariableFactory(customer=customer, status=Status.ERROR)
    theirs = ConfigVariableFactory(status=Status.CONNECTED)

    response = signed_in.get(reverse("connections:portal_live"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="portal-live"' in html
    assert "Could not connect" in html
    assert str(mine.pk) in html
    assert str(theirs.pk) not in html
    version = response.context["version"]
    again = signed_in.get(
        reverse("connections:portal_live"), headers={LIVE_VERSION_HEADER: version}
    )
    assert again.status_code == 204


def test_pages_poll_their_fragment_and_never_reload_themselves(signed_in, customer):
    cv = ConfigVariableFactory(customer=customer, status=Status.EXCHANGING)
    detail = signed_in.get(reverse("connections:detail", args=[cv.pk])).content.decode()
    listing = signed_in.get(reverse("connections:portal")).content.decode()

    assert f'hx-get="{reverse("connections:detail_live", args=[cv.pk])}"' in detail
    assert f'hx-get="{reverse("connections:portal_live")}"' in listing
    for html in (detail, listing):
        assert "location.reload" not in html
        assert "every 1s, live:refresh" in html  # quicker while connecting
        assert "/static/connections/htmx.min.js" in html
        assert "cdn" not in html.lower()
    assert "Connect again" not in detail + listing
