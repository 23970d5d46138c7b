"""``POST /api/v1/connect-sessions``: a single-use link for one end user of one customer
to connect the named Connections (``connect_sessions.services``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import principal_of
from api.errors import ApiError
from api.models import Scope
from api.schema import ErrorSerializer, error_responses
from api.serializers import StrictUUIDField
from api.services import CustomerNotAllowed, connect_session_issue
from api.views import MethodFirst
from connect_sessions.models import Mode
from connect_sessions.services import MAX_CONNECTIONS, ConnectSessionRejected, EndUser

# The service's field names → the request body's.
BODY_FIELDS = {"reconnect_config_variable_id": "config_variable_id"}


class EndUserSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200, help_text="Your ID for the end user.")
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    display_name = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200
    )


class SessionCustomerSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200, help_text="Your ID for the customer.")
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        help_text="Its name, used when the customer is created (default: the ID).",
    )


class ConnectSessionCreateSerializer(serializers.Serializer):
    end_user = EndUserSerializer()
    customer = SessionCustomerSerializer(
        required=False,
        help_text="Required with an environment key (created on first use). With a "
        "customer key leave it out: the key's customer is used, and naming another "
        "customer is a 403.",
    )
    connections = serializers.ListField(
        child=serializers.SlugField(max_length=100),
        min_length=1,
        max_length=MAX_CONNECTIONS,
        help_text="Slugs of the Connections the end user may connect.",
    )
    config_variable_id = StrictUUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="An existing connection (its ID, a UUID string) of this customer to "
        "reconnect; its Connection must be among `connections`. It is checked and kept "
        "on the session. A customer has one connection per Connection, so a session "
        "naming that Connection reconnects it whether or not this is given.",
    )
    return_url = serializers.CharField(
        max_length=2000,
        help_text="Where the end user's browser goes at the end; must match the portal's "
        "allow-list (Admin → Connect sessions → Allowed return URLs).",
    )
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.REDIRECT)


class ConnectSessionSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The session token (cst_…), shown only now.")
    connect_link = serializers.URLField(help_text="Open it (or pass it to connect.js).")
    expires_at = serializers.DateTimeField(help_text="UTC; the link works once until then.")


class ConnectSessionCreate(MethodFirst, APIView):
    required_scopes = {"POST": Scope.CONNECT_SESSIONS_WRITE}

    @extend_schema(
        operation_id="connect_sessions_create",
        summary="Create a connect session",
        description="A single-use connect link for one end user, limited to one customer "
        "and the named Connections, valid for 30 minutes by default. Scope: "
        "connect_sessions:write.",
        request=ConnectSessionCreateSerializer,
        responses={
            201: OpenApiResponse(
                ConnectSessionSerializer,
                description="The session: its token (shown only now), the link to open "
                "and when it expires (UTC). Exactly these three fields.",
            ),
            **error_responses(400),
            403: OpenApiResponse(
                ErrorSerializer,
                description="The key lacks connect_sessions:write, or a customer key named "
                "another customer (error forbidden).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = ConnectSessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        principal = principal_of(request)
        customer = data.get("customer")
        try:
            issued = connect_session_issue(
                principal=principal,
                customer_external_id=customer["external_id"] if customer else None,
                customer_name=customer["name"] if customer else "",
                end_user=EndUser(**data["end_user"]),
                connection_slugs=data["connections"],
                return_url=data["return_url"],
                mode=data["mode"],
                reconnect_config_variable_id=data["config_variable_id"],
            )
        except CustomerNotAllowed as exc:
            raise ApiError(status=403, error="forbidden", message=str(exc)) from exc
        except ConnectSessionRejected as exc:
            raise ApiError(
                status=400,
                error="invalid_request",
                message=str(exc),
                field=BODY_FIELDS.get(exc.field, exc.field),
            ) from exc
        answer = ConnectSessionSerializer(
            {
                "token": issued.token,
                "connect_link": issued.connect_link,
                "expires_at": issued.expires_at,
            }
        ).data
        # The token is a credential shown once: no cache keeps it.
        return Response(
            answer, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )
