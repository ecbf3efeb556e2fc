"""The database: engine and sessions bound to the app, shared column types.

Plain SQLAlchemy 2.0: ``db.session`` is a scoped session, removed at the end of each
app context (request, job, command). Services own their transactions.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, any_, create_engine, event, literal
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

#: JSON that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")
#: A 64-bit primary key that is still an autoincrementing INTEGER on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    # pow() and exp() are built into some SQLite builds only; scores need them everywhere.
    dbapi_conn.create_function("pow", 2, math.pow, deterministic=True)
    dbapi_conn.create_function("exp", 1, math.exp, deterministic=True)


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kwargs: dict = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """Holds the engine and the scoped session; bound to an app with ``init_app``."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session = scoped_session(sessionmaker(expire_on_commit=False))

    def init_app(self, app) -> None:
        if self.engine is not None:
            self.engine.dispose()
        self.engine = make_engine(app.config["DATABASE_URL"])
        self.session.remove()
        self.session.configure(bind=self.engine)
        app.teardown_appcontext(self._teardown)
        app.extensions["abm.db"] = self

    def _teardown(self, _exc=None) -> None:
        self.session.remove()

    @property
    def dialect(self) -> str:
        assert self.engine is not None, "database not initialised: call create_app first"
        return self.engine.dialect.name

    def new_session(self) -> Session:
        """A session outside the scoped one (threads, background work)."""
        return Session(self.engine, expire_on_commit=False)


db = Database()


def in_list(column, values, item_type=None):
    """``column IN (values)``; on PostgreSQL one array parameter, ``column = ANY(:array)``.

    An ``IN`` of thousands of values is thousands of bound parameters that SQLAlchemy
    and the driver expand and the server parses on every call; an array is one. Batch
    lookups (thousands of ids or emails) use this. ``item_type``: the SQL type of the items
    when the column's own type is not a plain one (defaults to Integer for integer columns,
    else String).
    """

    values = list(values)
    if db.dialect != "postgresql":
        return column.in_(values)
    if item_type is None:
        try:
            item_type = Integer if column.type.python_type is int else String
        except NotImplementedError:
            item_type = String
    return column == any_(literal(values, ARRAY(item_type)))
