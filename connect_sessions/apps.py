from django.apps import AppConfig


class ConnectSessionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "connect_sessions"
    verbose_name = "Connect sessions"
