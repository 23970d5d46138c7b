"""URLs of the sandbox: DOT under ``/o/``, a login page, and a home page (at ``/`` and
``/o/``)."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import TemplateView
from oauth2_provider.urls import metadata_urlpatterns

urlpatterns = [
    path("", TemplateView.as_view(template_name="sandbox/home.html"), name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="sandbox/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The demo's banner prints /o/: the same home page, not a 404.
    path("o/", TemplateView.as_view(template_name="sandbox/home.html"), name="o-home"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    # RFC 8414 §3.1: the metadata of issuer http://host/o sits at the origin's root,
    # /.well-known/oauth-authorization-server/o (discovery tests use this form).
    path("", include((metadata_urlpatterns, "oauth2_metadata"))),
]
