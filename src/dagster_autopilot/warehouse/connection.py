"""Where the warehouse lives: the one place that talks to DuckDB or PostgreSQL.

The same switch that points dbt at a target points the Python assets at it: `DBT_TARGET=postgres`
selects PostgreSQL from the `POSTGRES_*` variables, anything else the DuckDB file in
`AUTOPILOT_DUCKDB_PATH`. So dbt models and Python assets always share one warehouse. Asset bodies
reach it through the `warehouse` resource (`resource.py`), which reads the same variables.
"""

import csv
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DUCKDB_PATH_ENV = "AUTOPILOT_DUCKDB_PATH"
TARGET_ENV = "DBT_TARGET"

# DuckDB lets one process write a file at a time. dbt and the Python steps of one run are separate
# processes, so a connection waits for the lock instead of failing the step.
DUCKDB_LOCK_WAIT_SECONDS = 120.0
# How often a waiting connection tries the lock again. A writer that gives the lock up between
# chunks pauses a little longer than this, so a waiting process gets its turn.
DUCKDB_LOCK_POLL_SECONDS = 0.5
# Every DuckDB file starts with a 8-byte checksum, then this magic.
DUCKDB_MAGIC = b"DUCK"
DUCKDB_MAGIC_OFFSET = 8

DUCKDB_PATH_MISSING = (
    f"{DUCKDB_PATH_ENV} is not set: set it to the DuckDB file of the warehouse, or set "
    f"{TARGET_ENV}=postgres and the POSTGRES_* variables."
)

# Rows per INSERT batch: large enough to be fast, small enough to bound memory for wide vector rows.
INSERT_BATCH_ROWS = 2_000


def use_project_warehouse_by_default(project_root: Path) -> Path:
    """Points DuckDB at `<project>/.data/warehouse.duckdb` unless `AUTOPILOT_DUCKDB_PATH` is set.

    The path must be absolute: dagster-dbt runs dbt inside a copy of the project, where a relative
    path would land in the copy and vanish with it. dbt reads it from the environment.
    """
    path = Path(os.environ.get(DUCKDB_PATH_ENV) or project_root / ".data" / "warehouse.duckdb")
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.environ[DUCKDB_PATH_ENV] = str(path)
    return path


class WarehouseUnusableError(RuntimeError):
    """The warehouse cannot be used at all (a damaged or foreign file): retrying will not help."""


def is_lock_conflict(error: BaseException) -> bool:
    """True for DuckDB's "another process holds the file" error, the one error worth waiting out.

    DuckDB raises `IOException` both for a lock conflict and for a damaged file, so the class alone
    cannot tell them apart; the message can.
    """
    return "could not set lock" in str(error).lower()


def check_duckdb_file(path: str | Path) -> None:
    """Raises `WarehouseUnusableError` naming `path` unless it is a DuckDB database (or absent).

    Reads the header, then opens the file read-only and lists its tables, which reads the catalog:
    a truncated or foreign file fails here in milliseconds. A lock conflict means another process
    is writing a working database, so it passes.
    """
    import duckdb

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return  # DuckDB creates it on first use
    with path.open("rb") as handle:
        header = handle.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    if header[DUCKDB_MAGIC_OFFSET:] != DUCKDB_MAGIC:
        raise WarehouseUnusableError(f"{path} is not a valid DuckDB database: no DuckDB header")
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        if is_lock_conflict(error):
            return
        raise _unusable(path, error) from None
    try:
        connection.execute("select count(*) from duckdb_tables()").fetchall()
    except duckdb.Error as error:
        raise _unusable(path, error) from None
    finally:
        connection.close()


def _unusable(path: str | Path, error: BaseException) -> WarehouseUnusableError:
    return WarehouseUnusableError(
        f"{path} is not a valid DuckDB database (damaged, truncated or not DuckDB): {error}. "
        "Restore it from a backup, or delete it to start an empty warehouse."
    )


def ensure_warehouse_usable() -> None:
    """Fails fast, naming the file, when the configured warehouse is damaged.

    For callers about to hand the warehouse to another tool (dbt retries every `IOException` for
    minutes, a damaged file included); the Python steps check on every connection.
    """
    Warehouse.from_env().ensure_usable()


Column = tuple[str, str]
"""A column name and its portable type: `text`, `integer`, `double`, `timestamp` or `vector`."""


@dataclass(frozen=True)
class PostgresServer:
    """Where a PostgreSQL warehouse is and who connects. A field left `None` is read from its
    `POSTGRES_*` variable when a connection opens, as dbt's `postgres` target reads it."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    # Kept out of the repr, so a logged or printed warehouse never shows it.
    password: str | None = field(default=None, repr=False)
    dbname: str | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        """psycopg2's keyword arguments; a missing `POSTGRES_USER` or `POSTGRES_DB` raises KeyError."""
        password = self.password
        if password is None:
            password = os.environ.get("POSTGRES_PASSWORD", "")
        return {
            "host": self.host or os.environ.get("POSTGRES_HOST", "localhost"),
            "port": self.port or int(os.environ.get("POSTGRES_PORT", "5432")),
            "user": self.user or os.environ["POSTGRES_USER"],
            "password": password,
            "dbname": self.dbname or os.environ["POSTGRES_DB"],
        }

    def describe(self, schema: str) -> str:
        """The server, database and schema, never the password."""
        host = self.host or os.environ.get("POSTGRES_HOST", "localhost")
        port = self.port or os.environ.get("POSTGRES_PORT", "5432")
        dbname = self.dbname or os.environ.get("POSTGRES_DB")
        return f"postgresql://{host}:{port}/{dbname} schema {schema}"


@dataclass(frozen=True)
class Warehouse:
    """A DuckDB file or a PostgreSQL schema, with the few operations the Python assets need.

    Table names are unqualified: DuckDB uses its `main` schema, PostgreSQL the dbt target schema,
    so a dbt source and a Python asset name the same table.
    """

    kind: Literal["duckdb", "postgres"]
    duckdb_path: str | None = None
    schema: str = "main"
    postgres: PostgresServer = PostgresServer()
    """The PostgreSQL server of a `postgres` warehouse; its unset fields come from the environment."""

    @classmethod
    def from_env(cls) -> "Warehouse":
        if os.environ.get(TARGET_ENV) == "postgres":
            return cls(kind="postgres", schema=os.environ.get("POSTGRES_SCHEMA", "analytics"))
        path = os.environ.get(DUCKDB_PATH_ENV)
        if not path:
            raise RuntimeError(DUCKDB_PATH_MISSING)
        return cls(kind="duckdb", duckdb_path=path)

    def describe(self) -> str:
        """Where the data is, for logs and metadata; never includes a password."""
        if self.kind == "duckdb":
            return f"duckdb:{self.duckdb_path}"
        return self.postgres.describe(self.schema)

    def ensure_usable(self) -> None:
        """Raises `WarehouseUnusableError` naming the file when the DuckDB file is damaged."""
        if self.kind == "duckdb":
            check_duckdb_file(self.duckdb_path)

    @contextmanager
    def connect(self) -> Iterator["Session"]:
        """One transaction: commits on success, rolls back on error."""
        connection = self._open()
        try:
            yield Session(self, connection)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()

    def _open(self) -> Any:
        if self.kind == "postgres":
            import psycopg2

            connection = psycopg2.connect(**self.postgres.connect_kwargs())
            with connection.cursor() as cursor:
                # The commit ends the turn; the session's own transaction starts after it.
                _take_turns_creating(cursor, f"schema {self.schema}")
                cursor.execute(f"create schema if not exists {self.schema}")
                connection.commit()
                cursor.execute(f"set search_path to {self.schema}")
            return connection

        import duckdb

        deadline = time.monotonic() + DUCKDB_LOCK_WAIT_SECONDS
        while True:
            try:
                connection = duckdb.connect(self.duckdb_path)
                connection.begin()
                return connection
            except duckdb.Error as error:
                if not is_lock_conflict(error):
                    raise _unusable(self.duckdb_path, error) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(DUCKDB_LOCK_POLL_SECONDS)

    def sql_type(self, portable: str, dimensions: int | None = None) -> str:
        if portable == "vector":
            # DuckDB's fixed-size array keeps the width in the schema; PostgreSQL has no such type
            # without pgvector, so `real[]` it is.
            return f"FLOAT[{dimensions}]" if self.kind == "duckdb" else "real[]"
        return {"text": "VARCHAR", "integer": "BIGINT", "double": "DOUBLE PRECISION"}.get(
            portable, "TIMESTAMP"
        )


def _take_turns_creating(cursor: Any, what: str) -> None:
    """Makes PostgreSQL transactions that create `what` take turns, until each one ends.

    `create schema/table if not exists` is not safe against itself: two transactions creating the
    same relation at once both try, and one fails on the catalog's unique index. A transaction
    advisory lock on the name serializes them.
    """
    cursor.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"autopilot: create {what}",))


class Session:
    """One open transaction on the warehouse, with the few operations the Python assets need."""

    def __init__(self, warehouse: Warehouse, connection: Any):
        self.warehouse = warehouse
        self._connection = connection
        # A DuckDB cursor is a separate connection with its own transaction, so DuckDB statements
        # go through the connection itself; psycopg2 needs a cursor.
        self._cursor = connection if warehouse.kind == "duckdb" else connection.cursor()
        self.placeholder = "?" if warehouse.kind == "duckdb" else "%s"

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, tuple(parameters))

    def write(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """Runs an insert, update or delete; returns how many rows it touched."""
        self._cursor.execute(sql, tuple(parameters))
        if self.warehouse.kind == "postgres":
            return self._cursor.rowcount
        return self._cursor.fetchone()[0]

    def commit(self) -> None:
        """Commits what this session wrote so far, and goes on in a new transaction."""
        self._connection.commit()
        if self.warehouse.kind == "duckdb":
            self._connection.begin()

    def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        self._cursor.execute(sql, tuple(parameters))
        return self._cursor.fetchall()

    def table_exists(self, table: str) -> bool:
        schema = "main" if self.warehouse.kind == "duckdb" else self.warehouse.schema
        mark = self.placeholder
        sql = (
            "select count(*) from information_schema.tables "
            f"where table_schema = {mark} and table_name = {mark}"
        )
        return bool(self.fetch_all(sql, (schema, table))[0][0])

    def create_table(
        self, table: str, columns: Sequence[Column], *, dimensions: int | None = None
    ) -> None:
        """Creates `table` unless it exists; column types are portable names (see `Column`)."""
        body = ", ".join(f"{name} {self.warehouse.sql_type(kind, dimensions)}" for name, kind in columns)
        if self.warehouse.kind == "postgres" and not self.table_exists(table):
            # The steps landing candidates and jobs both create the shared arrivals ledger on a
            # fresh warehouse. The turn lasts to this transaction's end, so the second creator
            # waits, then finds the table committed.
            _take_turns_creating(self._cursor, f"table {self.warehouse.schema}.{table}")
        self.execute(f"create table if not exists {table} ({body})")

    def insert(self, table: str, column_names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Appends rows in batches; returns how many were written."""
        written = 0
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= INSERT_BATCH_ROWS:
                written += self._insert_batch(table, column_names, batch)
                batch = []
        if batch:
            written += self._insert_batch(table, column_names, batch)
        return written

    def _insert_batch(self, table: str, column_names: Sequence[str], batch: list[Sequence[Any]]) -> int:
        names = ", ".join(column_names)
        if self.warehouse.kind == "postgres":
            from psycopg2.extras import execute_values

            sql = f"insert into {table} ({names}) values %s"
            execute_values(self._cursor, sql, batch, page_size=1000)
        else:
            marks = ", ".join("?" * len(column_names))
            self._cursor.executemany(f"insert into {table} ({names}) values ({marks})", batch)
        return len(batch)

    def bulk_insert(self, table: str, column_names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Appends rows through the database's own CSV loader; returns how many were written.

        Much faster than INSERT statements for many rows: PostgreSQL's `COPY ... FROM STDIN`,
        DuckDB's `read_csv` of a temporary file. Both read an empty field as NULL, so an empty
        string is stored as NULL too.
        """
        names = ", ".join(column_names)
        # A temporary file, not a string: the rows are not held twice in memory.
        with tempfile.NamedTemporaryFile("w+", suffix=".csv", encoding="utf-8", newline="") as staged:
            writer = csv.writer(staged, lineterminator="\n")
            written = 0
            for row in rows:
                writer.writerow(row)
                written += 1
            if not written:
                return 0
            staged.flush()
            if self.warehouse.kind == "postgres":
                staged.seek(0)
                self._cursor.copy_expert(f"copy {table} ({names}) from stdin with (format csv)", staged)
                return written
            columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(column_names))) + "}"
            self.execute(
                f"insert into {table} ({names}) select * from read_csv(?, header = false, "
                f"auto_detect = false, columns = {columns}, delim = ',', quote = '\"', "
                "escape = '\"')",
                (staged.name,),
            )
        return written

    def delete_ids(self, table: str, column: str, ids: Sequence[Any]) -> None:
        """Deletes the rows whose `column` is one of `ids`, through a temporary table: portable,
        and fine for any number of ids."""
        if not ids:
            return
        self.execute("create temporary table if not exists autopilot_ids (id varchar)")
        self.execute("delete from autopilot_ids")
        self.insert("autopilot_ids", ["id"], [(i,) for i in ids])
        self.execute(f"delete from {table} where {column} in (select id from autopilot_ids)")


def table_name(asset_key: str) -> str:
    """The warehouse table of an asset: the last part of its key (`talent/matches` -> `matches`)."""
    return asset_key.rsplit("/", 1)[-1]
