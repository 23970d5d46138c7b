"""Failed credentials are throttled: API keys on the token API (per client IP and per key
prefix, in the cache) and logins on the portal and the admin (per IP and per username,
django-axes). Successful requests are never counted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from connections.api_keys import PREFIX, api_key_create
from connections.models import Status
from tests.factories import ConfigVariableFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    """Small limits, and no counters left over from other tests (or for later ones)."""
    settings.API_KEY_FAILURE_LIMIT = 5
    settings.API_KEY_FAILURE_WINDOW = 300
    settings.AXES_FAILURE_LIMIT = 5
    cache.clear()
    AccessAttempt.objects.all().delete()
    yield
    cache.clear()
    AccessAttempt.objects.all().delete()


@pytest.fixture
def api():
    cv = ConfigVariableFactory(
        status=Status.CONNECTED,
        access_token="live-access",
        refresh_token="live-refresh",
        expires_at=timezone.now() + timedelta(hours=1),
        refresh_at=timezone.now() + timedelta(minutes=50),
    )
    _, key = api_key_create(customer=cv.customer, name="integration")
    return reverse("api:config_variable_token", args=[cv.pk]), key


def _get(client, url, key, ip="203.0.113.7"):
    return client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


def _wrong(key: str) -> str:
    """The same prefix, another secret."""
    head, _, _secret = key.rpartition("_")
    return f"{head}_not-the-secret"


def test_failed_api_keys_from_one_ip_get_429_with_retry_after(client, api):
    url, _ = api
    for n in range(5):
        assert _get(client, url, f"{PREFIX}{n:012x}_guess").status_code == 401
    response = _get(client, url, f"{PREFIX}{99:012x}_guess")
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_requests"
    assert 1 <= int(response["Retry-After"]) <= 300
    # Another client is not affected.
    assert _get(client, url, f"{PREFIX}{99:012x}_guess", ip="198.51.100.1").status_code == 401


def test_while_throttled_the_right_key_still_works(client, api):
    """Whoever learned a key's prefix (or shares an address) cannot cut the integration
    off; a 40-character secret is not guessed in 20 tries."""
    url, key = api
    for _ in range(5):
        assert _get(client, url, _wrong(key)).status_code == 401
    assert _get(client, url, _wrong(key)).status_code == 429
    assert _get(client, url, key).status_code == 200


def test_failures_for_one_key_prefix_from_many_ips_are_throttled(client, api):
    url, key = api
    for n in range(5):
        assert _get(client, url, _wrong(key), ip=f"192.0.2.{n}").status_code == 401
    response = _get(client, url, _wrong(key), ip="192.0.2.200")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_the_window_ends_and_the_client_may_try_again(client, api, settings, monkeypatch):
    url, _key = api
    for _ in range(5):
        _get(client, url, "cpk_nope_nope")
    assert _get(client, url, "cpk_nope_nope").status_code == 429
    import connections.api_keys as api_keys

    later = api_keys.time.time() + settings.API_KEY_FAILURE_WINDOW
    monkeypatch.setattr(api_keys.time, "time", lambda: later)
    assert _get(client, url, "cpk_nope_nope").status_code == 401  # counted afresh


def test_successful_requests_are_never_throttled(client, api):
    url, key = api
    for _ in range(4):
        assert _get(client, url, "cpk_nope_nope").status_code == 401
    for _ in range(30):
        response = _get(client, url, key)
        assert response.status_code == 200
        assert response.json()["access_token"] == "live-access"
    assert _get(client, url, "cpk_nope_nope").status_code == 401  # the 5th failure


def test_no_credential_is_a_401_and_not_counted(client, api):
    url, key = api
    for _ in range(10):
        assert client.get(url, REMOTE_ADDR="203.0.113.7").status_code == 401
    assert _get(client, url, key).status_code == 200


def _portal_login(client, username, password, ip="203.0.113.9"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def _admin_login(client, username, password, ip="203.0.113.9"):
    return client.post(
        reverse("admin:login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


@pytest.mark.parametrize("login", [_portal_login, _admin_login])
def test_failed_logins_from_one_ip_are_locked_out_with_a_clear_message(client, login):
    for n in range(4):
        assert login(client, f"nobody{n}", "wrong").status_code == 200  # the form again
    assert login(client, "nobody4", "wrong").status_code == 429  # the limit-th failure
    UserFactory(username="real")
    response = login(client, "real", "pw-for-tests")
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.content.decode()
    assert int(response["Retry-After"]) >= 60
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("login", [_portal_login, _admin_login])
def test_failures_for_one_username_from_many_ips_cannot_lock_its_owner_out(client, login):
    UserFactory(username="target", is_staff=True)
    for n in range(5):
        login(client, "target", "wrong", ip=f"192.0.2.{n}")
    response = login(client, "target", "pw-for-tests", ip="198.51.100.50")
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


def test_successful_logins_are_not_counted(client):
    UserFactory(username="regular")
    for _ in range(10):
        response = _portal_login(client, "regular", "pw-for-tests")
        assert response.status_code == 302
        client.logout()
    assert _portal_login(client, "regular", "wrong").status_code == 200
