"""Re-encrypting secrets at rest under the newest key (``FIELD_ENCRYPTION_KEYS``).

django-fernet-encrypted-fields encrypts with the first key and decrypts with any; after
a new key is put first, ``encryption_rotate`` walks every encrypted column in primary-key
batches and rewrites each value still under an old key (``MultiFernet.rotate``). Values
already under the newest key are skipped, so an interrupted run is resumed by running
it again. Each rewrite is a compare-and-set on the old ciphertext: a renewal that wrote
the row meanwhile wins, and nothing is lost. Then the old key can be removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.db import connection, models

from connections.fields import SecretField, column_of


@dataclass
class RotationReport:
    """Counts per run: ``rotated`` rewritten, ``current`` already under the newest key,
    ``unreadable`` under no configured key (listed as ``table.column pk``)."""

    rotated: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


def encrypted_columns() -> Iterator[tuple[type[models.Model], SecretField]]:
    """Every (model, field) stored encrypted (a ``SecretField``), across installed apps."""
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, SecretField):
                yield model, model_field


def reset_key_cache() -> None:
    """Forget derived keys (after ``FIELD_ENCRYPTION_KEYS`` or ``SECRET_KEY`` changed)."""
    for _, model_field in encrypted_columns():
        model_field.__dict__.pop("keys", None)
        model_field.__dict__.pop("f", None)


def _fernets(model_field: SecretField) -> tuple[Fernet, MultiFernet]:
    fernets = [Fernet(key) for key in model_field.keys]
    return fernets[0], MultiFernet(fernets)


def encryption_rotate(
    *, batch_size: int = 500, progress: Callable[[str], None] | None = None
) -> RotationReport:
    """Re-encrypt every secret not yet under the newest key; returns the counts."""
    report = RotationReport()
    quote = connection.ops.quote_name
    for model, model_field in encrypted_columns():
        newest, every_key = _fernets(model_field)
        table, column = quote(model._meta.db_table), quote(column_of(model_field))
        pk = quote(column_of(model._meta.pk))
        last = None
        while True:
            after = f"AND {pk} > %s " if last is not None else ""
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL "  # noqa: S608 - names from model meta
                    f"{after}ORDER BY {pk} LIMIT %s",
                    [last, batch_size] if last is not None else [batch_size],
                )
                rows = cursor.fetchall()
            if not rows:
                break
            for row_pk, token in rows:
                data = token.encode()
                try:
                    newest.decrypt(data)
                    report.current += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    rotated = every_key.rotate(data).decode()
                except InvalidToken:
                    report.unreadable.append(
                        f"{model._meta.db_table}.{model_field.column} {row_pk}"
                    )
                    continue
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",  # noqa: S608
                        [rotated, row_pk, token],
                    )
                    report.rotated += cursor.rowcount
            last = rows[-1][0]
            if progress:
                progress(f"{model._meta.label}.{model_field.name}: up to {last}")
    return report
