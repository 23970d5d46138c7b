from django.urls import path

from connections import views

app_name = "connections"
urlpatterns = [
    path("", views.portal, name="portal"),
    path("connections/<uuid:pk>/", views.config_variable_detail, name="detail"),
    path("connections/<uuid:pk>/status", views.config_variable_status, name="status"),
    path("connections/<uuid:pk>/disconnect", views.disconnect, name="disconnect"),
]
