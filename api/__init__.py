"""The integrating backend's API under ``/api/v1/`` (Django REST framework, documented by
drf-spectacular): environment and customer keys, scopes, connections, tokens and
connect sessions."""
