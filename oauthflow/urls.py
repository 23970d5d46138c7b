from django.conf import settings
from django.urls import path

from oauthflow import api, views

app_name = "oauthflow"
urlpatterns = [
    path("oauth2/connect/<slug:slug>", views.connect, name="connect"),
    path(settings.OAUTH_CALLBACK_PATH, views.callback, name="callback"),
    path(
        "api/v1/config-variables/<uuid:pk>/token",
        api.config_variable_token,
        name="api_token",
    ),
    path(
        "api/v1/config-variables/<uuid:pk>/token/rejected",
        api.config_variable_token_rejected,
        name="api_token_rejected",
    ),
]
