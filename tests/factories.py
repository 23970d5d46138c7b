"""factory_boy factories for the portal's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from connections.models import App, ConfigVariable, Connection, Customer, CustomerUser


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    name = factory.Sequence(lambda n: f"App {n}")
    slug = factory.Sequence(lambda n: f"app-{n}")
    authorize_url = "https://auth.example.com/authorize"
    token_url = "https://app.example.com/oauth2/token"
    client_id = "my-client-id"
    client_secret = "my-client-secret"
    default_scopes = "widgets:read widgets:write offline_access"
    use_pkce = False


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    app = factory.SubFactory(AppFactory)
    name = factory.Sequence(lambda n: f"Connection {n}")
    slug = factory.Sequence(lambda n: f"connection-{n}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def customer(self, create: bool, extracted: Customer | None, **kwargs: object) -> None:
        if create:
            self.save()
            if extracted is not None:
                CustomerUser.objects.create(user=self, customer=extracted)


class ConfigVariableFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigVariable

    customer = factory.SubFactory(CustomerFactory)
    connection = factory.SubFactory(ConnectionFactory)


def staff_client(*permissions: str) -> Client:
    """A test client logged in as a new staff user holding only ``permissions``
    (codenames), for what each admin permission lets an operator do."""
    user = UserFactory()
    user.is_staff = True
    user.save()
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client
