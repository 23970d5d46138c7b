from django.apps import AppConfig


class OAuthFlowConfig(AppConfig):
    name = "oauthflow"
    verbose_name = "OAuth flow"
