"""Who is calling: a customer key (``cpk_``, one customer, every scope) or an environment
key (``cpe_``, every customer, its scopes). Read by every API view.

``Authorization: Bearer <key>`` (RFC 6750 §2.1). No or a malformed header, or an unknown
or revoked key, is a 401; failed keys are throttled (429 with ``Retry-After``) by the
same counters for both kinds (``connections.api_keys.key_check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.keys import PREFIX as ENVIRONMENT_PREFIX
from api.keys import environment_key_authenticate
from api.models import EnvironmentKey, Scope
from connections.api_keys import ApiKeyThrottled, api_key_authenticate, client_ip, key_check
from connections.models import ApiKey, ConfigVariable, Customer

REALM = 'Bearer realm="connection-portal"'


@dataclass(frozen=True)
class ApiPrincipal:
    """The caller: ``customer`` is the customer key's customer, None for an environment
    key (which reaches every customer)."""

    key: ApiKey | EnvironmentKey
    customer: Customer | None
    scopes: frozenset[str]
    is_authenticated: ClassVar[bool] = True  # what DRF and Django ask of request.user

    def config_variables(self) -> QuerySet[ConfigVariable]:
        """The ConfigVariables this caller reaches: anything else is a 404."""
        rows = ConfigVariable.objects.select_related("customer", "connection__app")
        return rows if self.customer is None else rows.filter(customer=self.customer)


def principal_of(request: Request) -> ApiPrincipal:
    """The caller of a request that passed ``HasScope`` (which refuses anyone else)."""
    principal = request.user
    if not isinstance(principal, ApiPrincipal):
        raise exceptions.NotAuthenticated()
    return principal


def principal_for_key(raw: str) -> ApiPrincipal | None:
    """The caller a raw key stands for, or None (malformed, unknown, revoked)."""
    if raw.startswith(ENVIRONMENT_PREFIX):
        environment_key = environment_key_authenticate(raw)
        if environment_key is None:
            return None
        return ApiPrincipal(environment_key, None, frozenset(environment_key.scopes))
    api_key = api_key_authenticate(raw)
    if api_key is None:
        return None
    return ApiPrincipal(api_key, api_key.customer, frozenset(Scope.values))


class ApiKeyAuthentication(BaseAuthentication):
    """DRF authentication by a Bearer API key of either kind."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, object] | None:
        scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            return None  # no credential: a 401, not counted as a failure
        try:
            principal = key_check(
                raw, ip=client_ip(request._request), authenticate=principal_for_key
            )
        except ApiKeyThrottled as exc:
            throttled = exceptions.Throttled(wait=exc.retry_after)
            # Our sentence already gives the wait; DRF's detail would append it again.
            throttled.detail = exceptions.ErrorDetail(str(exc), code=throttled.default_code)
            raise throttled from exc
        if principal is None:
            raise exceptions.AuthenticationFailed("The API key is unknown, malformed or revoked.")
        return principal, principal.key

    def authenticate_header(self, request: Request) -> str:
        return REALM


class MissingScope(exceptions.PermissionDenied):
    """The key lacks ``scope`` (RFC 6750 §3.1 ``insufficient_scope``)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"This API key lacks the scope {scope}.", code="insufficient_scope")
        self.scope = scope


class HasScope(BasePermission):
    """The view's ``required_scopes`` (HTTP method → Scope) must be held by the key."""

    def has_permission(self, request: Request, view: object) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return False  # DRF answers 401
        method = "GET" if request.method == "HEAD" else request.method
        scope = getattr(view, "required_scopes", {}).get(method)
        if scope is not None and scope not in principal.scopes:
            raise MissingScope(scope)
        return True
