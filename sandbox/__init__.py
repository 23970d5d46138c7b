"""A local OAuth 2.0 authorization server for the demo and the end-to-end tests.

A separate Django project serving django-oauth-toolkit in its own process, with its own
settings (``sandbox.settings``), database and cookies. It plays the third-party app;
the portal (``config``, ``connections``, ``oauthflow``) never imports it.

Run ``python -m sandbox serve --port 8001 --redirect-uri URI`` (see ``sandbox.cli``).
"""
