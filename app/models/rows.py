"""Plain multi-row INSERTs for the rows written on every enqueue and every mail.

The ORM's create() spends more time in Python (instance, save machinery, SQL compiler) than the
database spends on the row: 0.44 ms against 0.26 ms for an outbox row on PostgreSQL, and a fifth
of a bulk mail job's time on SQLite. Values are still prepared by the model's own fields, so
JSON, datetimes and foreign keys are stored exactly as the ORM would store them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router
from django.db.models.constants import OnConflict


def insert_rows(model: type[models.Model], field_names: Sequence[str], rows: Sequence[Sequence[Any]], ignore_conflicts: bool = False) -> None:
    """INSERT `rows` (values in `field_names` order) in as few statements as the database allows."""
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    head = f"{connection.ops.insert_statement(on_conflict=on_conflict)} {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
    tail = connection.ops.on_conflict_suffix_sql(fields, on_conflict, None, None) or ""
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    max_params = connection.features.max_query_params or 65_535
    per_statement = max(1, min(5_000, max_params // len(fields)))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [field.get_db_prep_save(value, connection) for values in chunk for field, value in zip(fields, values)]
            cursor.execute(f"{head}{', '.join([row_sql] * len(chunk))} {tail}", params)
