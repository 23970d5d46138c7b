from django.conf import settings
from django.urls import path

from oauthflow import views

app_name = "oauthflow"
urlpatterns = [
    path("oauth2/connect/<slug:slug>", views.connect, name="connect"),
    path(settings.OAUTH_CALLBACK_PATH, views.callback, name="callback"),
]
