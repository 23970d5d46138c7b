from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Connections"

    def ready(self) -> None:
        from django.core.checks import Tags, register

        from connections.checks import enqueue_guard_check, metrics_token_check

        register(metrics_token_check, Tags.security, deploy=True)
        register(enqueue_guard_check)
