"""Connections and tokens under ``/api/v1/``: parse the request, call one service or
selector, present the result. Who may do what is ``api.authentication``'s; the error
body is ``api.errors``'."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, status
from rest_framework.exceptions import MethodNotAllowed, NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import principal_of
from api.errors import ApiError
from api.models import Scope
from api.schema import RequiredBodySchema, error_responses
from api.serializers import (
    TOKEN_REJECTED_REQUEST,
    AccessTokenSerializer,
    ConnectionDetailSerializer,
    ConnectionFilterSerializer,
    ConnectionSerializer,
    TokenRejectedSerializer,
)
from connections.models import ConfigVariable
from oauthflow.access import AccessToken, AccessTokenRejected, get_access_token
from oauthflow.access import report_rejected_token as access_report_rejected_token
from oauthflow.exceptions import ProviderUnavailable, ReauthorizationRequired
from oauthflow.revocation import config_variable_disconnect_revoking

ID = OpenApiParameter("id", uuid.UUID, OpenApiParameter.PATH, description="A connection's ID.")


@csrf_exempt  # changes nothing; a POST gets the same JSON 404, not the CSRF page
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other URL under /api/v1/ (say an ID that is not a UUID): the API's 404 body,
    not the portal's HTML page."""
    return JsonResponse(
        {"error": "not_found", "message": "No such API URL; see /api/v1/docs."}, status=404
    )


class MethodFirst:
    """A method the URL does not offer is a 405 before any key is checked (as before v1
    moved to DRF): it says what is wrong whoever asks, and counts no failed key."""

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        method = request.method or ""
        if not hasattr(self, method.lower()) or method.lower() == "options":
            raise MethodNotAllowed(method)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class ConnectionPagination(CursorPagination):
    """Cursor pagination, newest first: stable while connections are added. ``page_size``
    must be a whole number from 1 to 200, and ``cursor`` one this API gave: anything else
    is a 400 (DRF would silently use the default size, and answer 404 for a cursor)."""

    ordering = ("-created_at", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        given = request.query_params.get(self.page_size_query_param)
        if given is not None and not (given.isdigit() and 1 <= int(given) <= self.max_page_size):
            raise ValidationError(
                {"page_size": f"A whole number of connections, 1 to {self.max_page_size}."}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters

    def decode_cursor(self, request: Request) -> Cursor | None:
        if not request.query_params.get(self.cursor_query_param):
            return None  # ?cursor= is the first page
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError(
                {"cursor": "Not a cursor this API gave; follow `next`, or start without it."}
            ) from exc


class ConnectionList(MethodFirst, generics.ListAPIView):
    required_scopes = {"GET": Scope.CONNECTIONS_READ}
    serializer_class = ConnectionSerializer
    pagination_class = ConnectionPagination

    @extend_schema(
        operation_id="connections_list",
        summary="List connections",
        description="The connections (ConfigVariables) this key reaches, newest first; "
        "filters combine with AND. Paginated by cursor: follow `next`. "
        "Scope: connections:read.",
        parameters=[ConnectionFilterSerializer],
        responses={
            200: ConnectionSerializer(many=True),
            **error_responses(400, 403),
        },
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[ConfigVariable]:
        # A plain dict: DRF would read a blank parameter in a QueryDict as absent.
        query = ConnectionFilterSerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        rows = principal_of(self.request).config_variables()
        if "customer_external_id" in filters:
            rows = rows.filter(customer__external_id=filters["customer_external_id"])
        if "app" in filters:
            rows = rows.filter(connection__app__slug=filters["app"])
        if "connection" in filters:
            rows = rows.filter(connection__slug=filters["connection"])
        if "status" in filters:
            rows = rows.filter(status=filters["status"])
        return rows


class ConnectionDetail(MethodFirst, APIView):
    required_scopes = {"GET": Scope.CONNECTIONS_READ, "DELETE": Scope.CONNECTIONS_WRITE}

    def _get(self, request: Request, pk: uuid.UUID) -> ConfigVariable:
        return get_object_or_404(principal_of(request).config_variables(), pk=pk)

    @extend_schema(
        operation_id="connections_retrieve",
        summary="Get a connection",
        description="Status, scopes, expiry, customer inputs, reply metadata, the last "
        "diagnosis and the end user who connected it; never a token, code or secret. "
        "Scope: connections:read.",
        parameters=[ID],
        responses={200: ConnectionDetailSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, pk: uuid.UUID) -> Response:
        return Response(ConnectionDetailSerializer(self._get(request, pk)).data)

    @extend_schema(
        operation_id="connections_destroy",
        summary="Disconnect a connection",
        description="Revokes the token at the app where it offers RFC 7009 revocation, "
        "then forgets the tokens; the connection stays, disconnected, and the customer "
        "may connect it again. Scope: connections:write.",
        parameters=[ID],
        responses={204: OpenApiResponse(description="Disconnected."), **error_responses(403, 404)},
    )
    def delete(self, request: Request, pk: uuid.UUID) -> Response:
        config_variable_disconnect_revoking(
            config_variable=self._get(request, pk),
            reason=f"Disconnected through the API by the key {principal_of(request).key}.",
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _token_response(fetch: Callable[[], AccessToken]) -> Response:
    """The token ``fetch`` gets, or the error integrations act on (409: the customer must
    reconnect, or a renewed token was rejected again; 503: retry later)."""
    try:
        token = fetch()
    except AccessTokenRejected as exc:
        raise ApiError(status=409, error="access_token_rejected", message=str(exc)) from exc
    except ReauthorizationRequired as exc:
        raise ApiError(status=409, error="reauthorization_required", message=str(exc)) from exc
    except ProviderUnavailable as exc:
        raise ApiError(
            status=503,
            error="temporarily_unavailable",
            message=str(exc),
            headers={"Retry-After": str(int(exc.retry_after or 30))},
        ) from exc
    body = AccessTokenSerializer(
        {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_at": token.expires_at,
            "scope": token.scopes,
            "metadata": token.metadata,
        }
    ).data
    return Response(body, headers={"Cache-Control": "no-store"})  # RFC 6749 §5.1


class _TokenView(MethodFirst, APIView):
    required_scopes = {"GET": Scope.TOKENS_READ, "POST": Scope.TOKENS_READ}

    def _check(self, request: Request, pk: uuid.UUID) -> None:
        if not principal_of(request).config_variables().filter(pk=pk).exists():
            raise NotFound()


class ConnectionToken(_TokenView):
    @extend_schema(
        operation_id="connections_token_retrieve",
        summary="Get an access token",
        description="A valid access token, renewed first if it expires within 60 s (under "
        "the same lease as the renewal sweep: concurrent callers wait for one renewal). "
        "Scope: tokens:read.",
        parameters=[ID],
        responses={200: AccessTokenSerializer, **error_responses(403, 404, 409, 503)},
    )
    def get(self, request: Request, pk: uuid.UUID) -> Response:
        self._check(request, pk)
        return _token_response(lambda: get_access_token(config_variable_id=pk))


class ConnectionTokenRejected(_TokenView):
    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="connections_token_rejected_create",
        summary="Report a rejected access token",
        description="The app answered 401 to a token the portal believes valid: the portal "
        "renews once and answers the new token; concurrent reports of one token cause one "
        "renewal; a report of the token that renewal produced is a 409 "
        "access_token_rejected (operators are alerted). Scope: tokens:read.",
        parameters=[ID],
        request=TOKEN_REJECTED_REQUEST,
        responses={200: AccessTokenSerializer, **error_responses(400, 403, 404, 409, 503)},
    )
    def post(self, request: Request, pk: uuid.UUID) -> Response:
        self._check(request, pk)
        report = TokenRejectedSerializer(data=request.data)
        report.is_valid(raise_exception=True)
        reported = report.validated_data["fingerprint"]
        return _token_response(
            lambda: access_report_rejected_token(config_variable_id=pk, token_fingerprint=reported)
        )


# v1's first URLs, kept for existing integrations: documented as deprecated aliases.
_ALIAS = "Deprecated alias of the same operation under /api/v1/connections/."


@extend_schema_view(
    get=extend_schema(
        operation_id="config_variables_token_retrieve", deprecated=True, description=_ALIAS
    )
)
class ConfigVariableToken(ConnectionToken):
    pass


@extend_schema_view(
    post=extend_schema(
        operation_id="config_variables_token_rejected_create", deprecated=True, description=_ALIAS
    )
)
class ConfigVariableTokenRejected(ConnectionTokenRejected):
    pass
