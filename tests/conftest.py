"""Shared fixtures. Unit tests never leave the machine: non-loopback sockets are refused."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import Client

from tests.factories import ConfigVariableFactory, CustomerFactory, UserFactory

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise OSError(f"tests may only reach loopback, not {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True, scope="session")
def _threads_close_their_db_connections() -> Iterator[None]:
    """Every thread a test starts (a Celery worker's pool, a lease heartbeat, a test's
    concurrent callers) closes its database connections when it ends. Django opens one
    connection per thread and keeps it (``CONN_MAX_AGE``); on PostgreSQL a connection
    left open by a finished thread keeps a session on the test database, and
    pytest-django then cannot drop it ("being accessed by other users")."""
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        try:
            original(self)
        finally:
            connections.close_all()

    threading.Thread.run = run
    try:
        yield
    finally:
        threading.Thread.run = original
        connections.close_all()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def customer():
    return CustomerFactory()


@pytest.fixture
def customer_user(customer):
    return UserFactory(customer=customer)


@pytest.fixture
def portal_client(customer_user) -> Client:
    client = Client()
    client.force_login(customer_user)
    return client


@pytest.fixture
def config_variable(customer):
    return ConfigVariableFactory(customer=customer)
