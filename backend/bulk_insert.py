"""Insert many rows of one table inside the session's transaction.

On PostgreSQL a batch of rows goes through `COPY ... FROM STDIN`: psycopg's
`executemany` sends one INSERT per row (pipelined), and for a 500-row batch of
spirometry sessions the server's per-statement work and the per-row parameter
handling were about half of the whole request. COPY streams the same values in
one statement. The values are first passed through each column type's own bind
processor for this dialect (UTC normalisation, JSON wrapping...), so the server
receives exactly what the INSERT would have sent; constraints, defaults on the
server side and the transaction behave as for INSERT (a unique violation aborts
the transaction either way).

On SQLite the processed rows go to the driver's own `executemany` as tuples,
which skips SQLAlchemy's per-row parameter assembly (a tenth of a batch request)
and leaves the same values to the same C loop.

Small batches (where COPY's fixed cost does not pay off) and other drivers use
one Core `executemany`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

DIRECT_MIN_ROWS = 16
_UNSET = object()

_INSERTS: dict[str, Any] = {}  # built once per table: building costs about what running costs
_Processors = list[tuple[str, Callable[[Any], Any] | None]]
_PROCESSORS: dict[tuple[str, str, tuple[str, ...]], _Processors] = {}


def _processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Processors:
    key = (table.name, dialect.name, columns)
    found = _PROCESSORS.get(key)
    if found is None:
        found = [(name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in columns]
        _PROCESSORS[key] = found
    return found


def _direct_possible(table: Table, columns: tuple[str, ...]) -> bool:
    """The direct paths send only the given columns: every column with a
    client-side default or onupdate must be among them (server defaults still apply)."""
    given = set(columns)
    return all(c.name in given for c in table.columns if c.default is not None or c.onupdate is not None)


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) into `table`."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = tuple(rows[0])
    driver_kind = (dialect.name, dialect.driver)
    if (
        driver_kind not in (("postgresql", "psycopg"), ("sqlite", "pysqlite"))
        or len(rows) < DIRECT_MIN_ROWS
        or not _direct_possible(table, columns)
    ):
        insert = _INSERTS.get(table.name)
        if insert is None:
            insert = _INSERTS[table.name] = table.insert()
        session.execute(insert, rows)
        return
    session.flush()  # pending ORM changes reach the server first, as with session.execute
    processors = _processors(table, columns, dialect)

    pick = itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
    processed = [(i, process) for i, (_, process) in enumerate(processors) if process is not None]
    # A value that is the very object of the row before (the batch's `created_at`,
    # a None in a JSON column) is processed once.
    last_in: list[Any] = [_UNSET] * len(columns)
    last_out: list[Any] = [None] * len(columns)

    def values(row: dict[str, Any]) -> list[Any]:
        if len(row) != len(columns):
            raise ValueError("bulk_insert: every row must have the same keys")
        out = list(pick(row))
        for i, process in processed:
            value = out[i]
            if value is not last_in[i]:
                last_in[i] = value
                last_out[i] = process(value)
            out[i] = last_out[i]
        return out

    preparer = dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in columns)})"
    driver = connection.connection.driver_connection
    assert driver is not None
    if dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(values(row))
    else:
        cursor = driver.cursor()
        try:
            # table and column names come from the model, quoted by the dialect
            cursor.executemany(
                f"INSERT INTO {target} VALUES ({', '.join('?' * len(columns))})",  # noqa: S608
                [values(row) for row in rows],
            )
        finally:
            cursor.close()
