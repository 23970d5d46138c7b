"""The encrypted field for secrets at rest.

django-fernet-encrypted-fields returns the stored ciphertext as if it were the value
when no configured key decrypts it; for credentials that would mean sending ciphertext
to an app as a client secret and blaming the app. This field fails loudly instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography.fernet import InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from encrypted_fields.fields import EncryptedTextField

if TYPE_CHECKING:  # the library is untyped: mypy checks the TextField it is (str values)
    _EncryptedText = models.TextField
else:
    _EncryptedText = EncryptedTextField


class SecretField(_EncryptedText):
    """Text encrypted with ``FIELD_ENCRYPTION_KEYS`` (Fernet); never readable without."""

    if TYPE_CHECKING:  # set by the library from the keys, newest first
        keys: list[bytes]
        f: MultiFernet

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


def column_of(field: models.Field) -> str:
    """The database column of a concrete field, for hand-written SQL. Raises
    ``ValueError`` for a field without one (a reverse relation), which is why the stubs
    type ``Field.column`` as optional."""
    if field.column is None:
        raise ValueError(f"{field!r} has no database column")
    return field.column
