"""Shared fixtures. Unit tests never leave the machine: non-loopback sockets are refused."""

from __future__ import annotations

import ipaddress
import socket

import pytest
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
