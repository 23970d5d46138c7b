"""``/api/v1/``: the API, its OpenAPI 3 document and its reference page (served by the
portal: Swagger UI from drf-spectacular-sidecar, no CDN)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from api import connect_sessions, views

app_name = "api"
urlpatterns = [
    path("schema", SpectacularJSONAPIView.as_view(), name="schema"),
    # The split view serves its script from a URL, not inline: the CSP needs no exception.
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path(
        "connect-sessions",
        connect_sessions.ConnectSessionCreate.as_view(),
        name="connect_session_create",
    ),
    path("connections", views.ConnectionList.as_view(), name="connection_list"),
    path("connections/<uuid:pk>", views.ConnectionDetail.as_view(), name="connection_detail"),
    path("connections/<uuid:pk>/token", views.ConnectionToken.as_view(), name="connection_token"),
    path(
        "connections/<uuid:pk>/token/rejected",
        views.ConnectionTokenRejected.as_view(),
        name="connection_token_rejected",
    ),
    # v1's first URLs (README, existing integrations): the same views.
    path(
        "config-variables/<uuid:pk>/token",
        views.ConfigVariableToken.as_view(),
        name="config_variable_token",
    ),
    path(
        "config-variables/<uuid:pk>/token/rejected",
        views.ConfigVariableTokenRejected.as_view(),
        name="config_variable_token_rejected",
    ),
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found, name="not_found"),  # last: JSON, not HTML
]
