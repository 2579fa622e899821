"""Consistent online backup and restore (``kaohe db backup`` / ``kaohe db restore``).

A backup is a portable logical dump: gzipped JSON lines of every table on
``Base.metadata`` (every area's tables, see :mod:`kaohe.store.all_models`), so a
SQLite backup restores into PostgreSQL and back.  Layout, one JSON value a line::

    {"format": "kaohe-backup", "version": 1, "created_at": …, "dialect": "sqlite",
     "revisions": ["0001_core", …], "tables": ["org_unit", …]}
    {"table": "org_unit", "columns": ["id", "code", …]}
    [1, "X01", …]                       # one row, values in column order
    …
    {"end": true, "rows": {"org_unit": 45, …}}

The dump is read in one snapshot: a ``REPEATABLE READ`` read-only transaction
on PostgreSQL, one read transaction on SQLite (WAL mode lets the app keep
writing meanwhile).  Times are written as ISO 8601 text, binary as base64.

A restore runs in one transaction into an empty database (a new SQLite file,
an empty PostgreSQL database: it is first migrated to the backup's revisions)
or one already at the backup's revisions with no rows; ``force=True`` empties a
non-empty target first.  Afterwards the database is upgraded to the code's heads.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    LargeBinary,
    Numeric,
    Table,
    Time,
    delete,
    func,
    inspect,
    select,
    text,
    update,
)

import kaohe.store.all_models  # noqa: F401  (registers every table on Base.metadata)
from kaohe.errors import KaoheError
from kaohe.store.db import _alembic_config, head_revisions, is_sqlite
from kaohe.store.models import Base, utcnow

FORMAT = "kaohe-backup"
VERSION = 1
BATCH = 1000


class BackupError(KaoheError):
    """A file that is not a (complete) kaohe backup, or a target that cannot take it."""

    exit_code = 2


# ---------------------------------------------------------------- values


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _decoder(table: Table, name: str) -> Any:
    """A function turning the JSON value of ``table.name`` back into its Python value."""
    typ = table.c[name].type
    if isinstance(typ, DateTime):
        return dt.datetime.fromisoformat
    if isinstance(typ, Date):
        return dt.date.fromisoformat
    if isinstance(typ, Time):
        return dt.time.fromisoformat
    if isinstance(typ, LargeBinary):
        return base64.b64decode
    if isinstance(typ, Numeric) and getattr(typ, "asdecimal", False):
        return decimal.Decimal
    return None


def tables() -> list[Table]:
    """Every table, parents before children (foreign keys)."""
    return list(Base.metadata.sorted_tables)


# ---------------------------------------------------------------- backup


def _revisions(conn: Connection) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    return sorted(MigrationContext.configure(conn).get_current_heads())


def backup(engine: Engine, path: Path) -> dict[str, int]:
    """Write a consistent backup of the database to ``path`` (gzipped JSON lines);
    returns the number of rows per table.  Safe while the app is writing."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    counts: dict[str, int] = {}
    if not path.parent.is_dir():
        raise BackupError(f"{path}: no such folder {path.parent}")
    try:
        out_file = gzip.open(tmp, "wt", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise BackupError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        with out_file as out, _snapshot(engine) as conn:
            revisions = _revisions(conn)
            if not revisions:
                raise BackupError(
                    f"{engine.url.render_as_string(hide_password=True)}: not a kaohe "
                    "database (no migration revision; run `kaohe db upgrade`)"
                )
            unknown = sorted(
                set(inspect(conn).get_table_names())
                - {t.name for t in tables()}
                - {"alembic_version"}
            )
            if unknown:
                raise BackupError(
                    f"the database holds tables this kaohe has no model for "
                    f"({', '.join(unknown)}): they would be missing from the backup "
                    "(is kaohe older than the database, or a model missing from "
                    "kaohe/store/all_models.py?)"
                )
            header = {
                "format": FORMAT,
                "version": VERSION,
                "created_at": utcnow().isoformat(),
                "dialect": engine.dialect.name,
                "revisions": revisions,
                "tables": [t.name for t in tables()],
            }
            _write(out, header)
            for table in tables():
                columns = [c.name for c in table.columns]
                _write(out, {"table": table.name, "columns": columns})
                pk = list(table.primary_key.columns) or list(table.columns)
                result = conn.execution_options(yield_per=BATCH).execute(
                    select(*table.columns).order_by(*pk)
                )
                n = 0
                for row in result:
                    _write(out, [_encode(v) for v in row])
                    n += 1
                counts[table.name] = n
            _write(out, {"end": True, "rows": counts})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


def _write(out: IO[str], value: Any) -> None:
    out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    out.write("\n")


class _snapshot:
    """A connection reading one snapshot of the whole database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        if is_sqlite(self.engine):
            conn = self.engine.connect()
            # pysqlite opens no transaction for SELECTs: begin one explicitly, so that
            # every read sees the same WAL snapshot (taken at the first read).
            conn.exec_driver_sql("BEGIN")
        else:
            conn = self.engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            conn.begin()
        self.conn = conn
        return conn

    def __exit__(self, *exc: object) -> None:
        assert self.conn is not None
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


# ---------------------------------------------------------------- reading a backup


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) of each line of a gzipped backup, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as e:
                    raise BackupError(
                        f"{path}: line {number}: not a kaohe backup (bad JSON: {e.msg})"
                    ) from None
    except gzip.BadGzipFile:
        raise BackupError(f"{path}: not a kaohe backup (not a gzip file)") from None
    except (EOFError, zlib.error) as e:
        raise BackupError(f"{path}: the backup is truncated or corrupted ({e})") from None
    except UnicodeDecodeError:
        raise BackupError(f"{path}: not a kaohe backup (not UTF-8 text)") from None
    except OSError as e:
        raise BackupError(f"{path}: cannot read ({e.strerror or e})") from None


def read_header(path: Path) -> dict[str, Any]:
    """The header of a backup (format, revisions, tables …), checked."""
    for number, value in _lines(path):
        return _check_header(path, number, value)
    raise BackupError(f"{path}: not a kaohe backup (empty file)")


def _check_header(path: Path, number: int, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise BackupError(f"{path}: line {number}: not a kaohe backup (no kaohe-backup header)")
    if value.get("version") != VERSION:
        raise BackupError(
            f"{path}: backup format version {value.get('version')!r} is not supported "
            f"(this kaohe reads version {VERSION})"
        )
    revisions = value.get("revisions")
    if not isinstance(revisions, list) or not all(isinstance(r, str) for r in revisions):
        raise BackupError(f"{path}: line {number}: the header lists no migration revisions")
    return value


# ---------------------------------------------------------------- restore


def restore(engine: Engine, path: Path, *, force: bool = False) -> dict[str, int]:
    """Restore the backup ``path`` into the database of ``engine`` in one transaction;
    returns the number of rows per table.

    The target is either new (no tables: it is migrated to the backup's
    revisions first) or at exactly the backup's revisions and without rows
    (``force=True`` deletes its rows first).  Then it is upgraded to the code's
    migration heads.  Any problem rolls everything back."""
    path = Path(path)
    header = read_header(path)
    wanted = sorted(header["revisions"])
    _check_known_revisions(path, wanted)
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        if is_sqlite(engine):
            # one transaction around DDL and data too (pysqlite would not begin one for DDL)
            conn.exec_driver_sql("BEGIN")
        else:
            conn.begin()
        try:
            current = _revisions(conn)
            if not current:
                existing = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
                if existing:
                    raise BackupError(
                        "the target database has tables but no kaohe migration revision "
                        f"({', '.join(sorted(existing)[:5])}…): restore into an empty database"
                    )
                _migrate(conn, wanted)
            elif current != wanted:
                raise BackupError(
                    f"the target database is at revisions {', '.join(current)} but the backup "
                    f"at {', '.join(wanted)}: restore into an empty database "
                    "(a new SQLite file or an empty PostgreSQL database)"
                )
            else:
                nonempty = _nonempty_tables(conn)
                if nonempty and not force:
                    raise BackupError(
                        f"the target database is not empty ({', '.join(nonempty)} have rows): "
                        "use --force to replace its contents"
                    )
                if nonempty:
                    for table in reversed(tables()):
                        conn.execute(delete(table))
            counts = _load(conn, path)
            _migrate(conn, sorted(head_revisions()))
            _reset_sequences(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return counts


def _check_known_revisions(path: Path, revisions: list[str]) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(None))
    known = {r.revision for r in script.walk_revisions()}
    unknown = [r for r in revisions if r not in known]
    if unknown:
        raise BackupError(
            f"{path}: the backup was made at migration revision(s) {', '.join(unknown)}, "
            "unknown to this version of kaohe (a newer kaohe made it?)"
        )


def _migrate(conn: Connection, revisions: Iterable[str]) -> None:
    from alembic import command

    cfg = _alembic_config(conn)
    for rev in revisions:
        command.upgrade(cfg, rev)


def _nonempty_tables(conn: Connection) -> list[str]:
    return [
        t.name
        for t in tables()
        if conn.execute(select(func.count()).select_from(t)).scalar_one() > 0
    ]


def _self_refs(table: Table) -> list[str]:
    """Nullable columns referring to their own table (e.g. org_unit.parent_id): set
    after the rows are in, so that row order does not matter."""
    return [
        fk.parent.name
        for fk in table.foreign_keys
        if fk.column.table is table and fk.parent.nullable
    ]


def _load(conn: Connection, path: Path) -> dict[str, int]:
    known = {t.name: t for t in tables()}
    counts: dict[str, int] = {}
    table: Table | None = None
    columns: list[str] = []
    decoders: list[Any] = []
    deferred: list[str] = []
    batch: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    ended: dict[str, Any] | None = None

    def flush() -> None:
        if table is not None and batch:
            conn.execute(table.insert(), batch)
        batch.clear()

    def finish() -> None:
        flush()
        if table is not None and deferred and later:
            pk = next(iter(table.primary_key.columns)).name
            stmt = update(table).where(table.c[pk] == _bind(f"_{pk}"))
            stmt = stmt.values({c: _bind(f"_{c}") for c in deferred})
            conn.execute(stmt, later)
        later.clear()

    lines = _lines(path)
    next(lines)  # the header, checked by read_header
    for number, value in lines:
        where = f"{path}: line {number}"
        if ended is not None:
            raise BackupError(f"{where}: data after the end marker")
        if isinstance(value, list):
            if table is None:
                raise BackupError(f"{where}: a row before any table")
            if len(value) != len(columns):
                raise BackupError(
                    f"{where}: table {table.name}: {len(value)} values for {len(columns)} columns"
                )
            row = {}
            for name, dec, v in zip(columns, decoders, value, strict=True):
                try:
                    row[name] = dec(v) if dec is not None and v is not None else v
                except (ValueError, TypeError) as e:
                    raise BackupError(f"{where}: table {table.name}, column {name}: {e}") from None
            if deferred:
                pk = next(iter(table.primary_key.columns)).name
                later.append({f"_{pk}": row[pk], **{f"_{c}": row[c] for c in deferred}})
                row.update(dict.fromkeys(deferred))
            batch.append(row)
            counts[table.name] += 1
            if len(batch) >= BATCH:
                flush()
        elif isinstance(value, dict) and "table" in value:
            finish()
            name = value["table"]
            if name not in known:
                raise BackupError(f"{where}: table {name!r} is unknown to this version of kaohe")
            if name in counts:
                raise BackupError(f"{where}: table {name!r} appears twice")
            table = known[name]
            columns = list(value.get("columns") or [])
            missing = [c for c in columns if c not in table.c]
            if missing:
                raise BackupError(f"{where}: table {name}: unknown column(s) {', '.join(missing)}")
            decoders = [_decoder(table, c) for c in columns]
            deferred = [c for c in _self_refs(table) if c in columns]
            counts[name] = 0
        elif isinstance(value, dict) and value.get("end") is True:
            finish()
            ended = value
        else:
            raise BackupError(f"{where}: not a line of a kaohe backup")
    if ended is None:
        raise BackupError(f"{path}: the backup is incomplete (no end marker): truncated?")
    expected = ended.get("rows")
    if expected != counts:
        raise BackupError(f"{path}: row counts differ from the end marker: the backup is damaged")
    return counts


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)


def _reset_sequences(conn: Connection) -> None:
    """PostgreSQL: move each id sequence past the restored ids."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not pk[0].autoincrement or pk[0].type.python_type is not int:
            continue
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name}
        ).scalar()
        if seq:
            conn.execute(
                text(
                    f"SELECT setval(:s, COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 0) + 1, false)"
                ),
                {"s": seq},
            )
