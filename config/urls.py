from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from connections import health

# The admin is the product's, not "Django administration".
admin.site.site_header = "Connection portal"
admin.site.site_title = "Connection portal admin"
admin.site.index_title = "Apps, connections and their health"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/v1/", include("api.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("connect_sessions.urls")),
    path("", include("oauthflow.urls")),
    path("", include("connections.urls")),
]
