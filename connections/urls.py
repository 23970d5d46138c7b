from django.urls import path

from connections import views

app_name = "connections"
urlpatterns = [
    path("", views.portal, name="portal"),
    path("live", views.portal_live, name="portal_live"),
    path("connections/<uuid:pk>/", views.config_variable_detail, name="detail"),
    path("connections/<uuid:pk>/live", views.config_variable_live, name="detail_live"),
    path("connections/<uuid:pk>/status", views.config_variable_status, name="status"),
    path("connections/<uuid:pk>/disconnect", views.disconnect, name="disconnect"),
]
