"""The encrypted field for secrets at rest.

django-fernet-encrypted-fields returns the stored ciphertext as if it were the value
when no configured key decrypts it; for credentials that would mean sending ciphertext
to an app as a client secret and blaming the app. This field fails loudly instead.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.exceptions import ImproperlyConfigured
from encrypted_fields.fields import EncryptedTextField


class SecretField(EncryptedTextField):
    """Text encrypted with ``FIELD_ENCRYPTION_KEYS`` (Fernet); never readable without."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        try:
            return self.f.decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise ImproperlyConfigured(
                f"{self.model._meta.label}.{self.name}: no key in FIELD_ENCRYPTION_KEYS "
                "decrypts a stored value (was a key removed before rotate_encryption_key?)."
            ) from exc
