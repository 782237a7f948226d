"""Engine, sessions and the declarative Base shared by every feature's models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Double, MetaData, String, TypeDecorator, create_engine, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

# Stable constraint names so Alembic produces the same migration on SQLite and
# PostgreSQL and can drop/alter constraints by name later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC.

    SQLite has no time zone type, so values are normalised to UTC on the way in
    and marked UTC on the way out; naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: all times are timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class posix_seconds(FunctionElement[float]):
    """POSIX seconds of a `UTCDateTime` column, computed by the database: the
    float `datetime.timestamp()` gives for the column's value (the exact count
    of microseconds divided by 10**6, correctly rounded, on both databases), so
    a query reading many moments gets floats without a datetime per row."""

    type = Double()
    name = "posix_seconds"
    inherit_cache = True


@compiles(posix_seconds, "postgresql")
def _posix_seconds_postgresql(element: posix_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # date_part (double precision), not extract (numeric since PostgreSQL 14)
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(posix_seconds, "sqlite")
def _posix_seconds_sqlite(element: posix_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds from the first
    # 19 characters (strftime would round a fraction to milliseconds), the
    # microseconds from the rest, added as integers before the one division
    x = compiler.process(element.clauses, **kw)
    return (
        f"((CAST(strftime('%s', substr({x}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({x}, 21, 6) AS INTEGER)) / 1000000.0)"
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), str: String()}


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # One writer at a time; wait for the lock instead of failing at once.
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below own transaction boundaries.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; take the write lock
        # at the first statement so concurrent writers queue instead of deadlocking.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_timeout", 5)
    kwargs.setdefault("connect_args", {"connect_timeout": 3})
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
