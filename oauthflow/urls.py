from django.conf import settings
from django.urls import path

from oauthflow import views

app_name = "oauthflow"
urlpatterns = [
    path("oauth2/connect/<slug:slug>", views.connect, name="connect"),
    # The connect-session page's Connect (connect_sessions.actor: the URL decides who acts).
    path("connect-session/connect/<slug:slug>", views.session_connect, name="session_connect"),
    path(settings.OAUTH_CALLBACK_PATH, views.callback, name="callback"),
]
