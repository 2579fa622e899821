"""Backup and restore (kaohe.store.backup): consistent while the app writes, portable
between SQLite and PostgreSQL, all-or-nothing, clear errors on foreign files."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.pool import NullPool

from kaohe.store.backup import BackupError, backup, read_header, restore, tables
from kaohe.store.db import (
    current_revisions,
    database_url,
    head_revisions,
    make_engine,
    session_factory,
    transaction,
)
from kaohe.store.models import AuditEntry, DataValue, OrgUnit, User
from tests.conftest import PG_ENV, seed


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered by primary key."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for t in tables():
                pk = list(t.primary_key.columns)
                out[t.name] = [tuple(r) for r in conn.execute(select(t).order_by(*pk))]
            return out
    finally:
        engine.dispose()


def test_round_trip_into_a_new_sqlite_file(db_url: str, tmp_path: Path) -> None:
    src = make_engine(db_url)
    file = tmp_path / "b.jsonl.gz"
    counts = backup(src, file)
    in_db = set(inspect(src).get_table_names()) - {"alembic_version"}
    src.dispose()
    assert counts["org_unit"] > 30 and counts["data_value"] > 1000 and counts["user_account"] > 5
    # every table of the migrated database (every area's branch) is in the backup
    assert set(counts) == in_db == {t.name for t in tables()}

    target_url = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    dst = make_engine(target_url)
    restored = restore(dst, file)
    assert restored == counts
    assert current_revisions(dst) == head_revisions()
    dst.dispose()
    assert contents(target_url) == contents(db_url)


def test_header_names_revisions_and_tables(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    backup(engine, tmp_path / "b.gz")
    engine.dispose()
    header = read_header(tmp_path / "b.gz")
    assert header["format"] == "kaohe-backup"
    assert set(header["revisions"]) == head_revisions()
    assert header["tables"][0] == "org_unit" or "org_unit" in header["tables"]


# ------------------------------------------------------------- consistency under writes


class Writer(threading.Thread):
    """Commits as fast as it can, each transaction adding one audit entry and setting
    the 'ticks' value of V0000 to the number of such entries: a backup that is not
    one snapshot would see the two tables at different moments."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.stop = threading.Event()
        self.ticks = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        factory = session_factory(self.engine)
        try:
            with transaction(factory) as s:
                unit = s.scalar(select(OrgUnit).where(OrgUnit.code == "V0000"))
                assert unit is not None
                s.add(DataValue(unit_id=unit.id, period="2022", variable="ticks", value=0))
                self.unit_id = unit.id
            while not self.stop.is_set():
                with transaction(factory) as s:
                    n = self.ticks + 1
                    s.add(AuditEntry(action="test.tick", key=str(n)))
                    row = s.scalar(
                        select(DataValue).where(
                            DataValue.unit_id == self.unit_id, DataValue.variable == "ticks"
                        )
                    )
                    assert row is not None
                    row.value = n
                self.ticks = n
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.engine.dispose()


def ticks_in(url: str) -> tuple[int, float]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            entries = s.scalar(
                select(text("count(*)"))
                .select_from(AuditEntry)
                .where(AuditEntry.action == "test.tick")
            )
            value = s.scalar(select(DataValue.value).where(DataValue.variable == "ticks"))
            return int(entries or 0), float(value if value is not None else -1)
    finally:
        engine.dispose()


def test_backup_while_another_thread_writes_is_one_snapshot(db_url: str, tmp_path: Path) -> None:
    writer = Writer(db_url)
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while writer.ticks < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine = make_engine(db_url)
        seen = []
        for i in range(3):
            before = writer.ticks
            backup(engine, tmp_path / f"b{i}.gz")
            seen.append(writer.ticks - before)
        engine.dispose()
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    # the writer did commit while the backups were being read …
    assert sum(seen) > 0, "no write happened during the backups: the test proves nothing"
    # … and each backup still holds a state that existed: entries == ticks value
    for i in range(3):
        url = f"sqlite:///{tmp_path / f'r{i}.sqlite'}"
        engine = make_engine(url)
        restore(engine, tmp_path / f"b{i}.gz")
        engine.dispose()
        entries, value = ticks_in(url)
        assert entries >= 1
        assert entries == value, f"backup {i}: {entries} tick entries but ticks = {value}"


# ------------------------------------------------------------- refusing and rolling back


def test_restore_refuses_a_non_empty_target_unless_forced(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    backup(engine, tmp_path / "b.gz")
    before = contents(db_url)
    with pytest.raises(BackupError, match=r"not empty.*--force"):
        restore(engine, tmp_path / "b.gz")
    # change the database, then restore over it with force: back to the backup
    with transaction(session_factory(engine)) as s:
        s.add(AuditEntry(action="test.later", key="x"))
        unit = s.scalar(select(OrgUnit).where(OrgUnit.code == "V0001"))
        assert unit is not None
        unit.name = "改名村"
    assert contents(db_url) != before
    restore(engine, tmp_path / "b.gz", force=True)
    engine.dispose()
    assert contents(db_url) == before


def write_lines(path: Path, lines: list[Any]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for x in lines:
            f.write(json.dumps(x, ensure_ascii=False) + "\n")


def read_lines(path: Path) -> list[Any]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_a_bad_row_rolls_the_whole_restore_back(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    backup(engine, tmp_path / "b.gz")
    engine.dispose()
    lines = read_lines(tmp_path / "b.gz")
    # a data value pointing to a unit that does not exist (foreign key), late in the file
    i = max(
        i for i, x in enumerate(lines) if isinstance(x, dict) and x.get("table") == "data_value"
    )
    columns = lines[i]["columns"]
    row = list(lines[i + 1])
    row[columns.index("unit_id")] = 999_999
    lines[i + 1] = row
    write_lines(tmp_path / "bad.gz", lines)
    target = tmp_path / "t.sqlite"
    dst = make_engine(f"sqlite:///{target}")
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        restore(dst, tmp_path / "bad.gz")
    # nothing was left behind: no tables, no migration revision
    assert inspect(dst).get_table_names() == []
    dst.dispose()


def test_a_table_without_a_model_stops_the_backup(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray_table (id INTEGER PRIMARY KEY)"))
    with pytest.raises(BackupError, match="stray_table"):
        backup(engine, tmp_path / "b.gz")
    engine.dispose()
    assert not (tmp_path / "b.gz").exists()
    assert not (tmp_path / "b.gz.partial").exists()


def test_a_backup_from_unknown_revisions_is_refused(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    backup(engine, tmp_path / "b.gz")
    engine.dispose()
    lines = read_lines(tmp_path / "b.gz")
    lines[0]["revisions"] = ["9999_future"]
    write_lines(tmp_path / "future.gz", lines)
    dst = make_engine(f"sqlite:///{tmp_path / 't.sqlite'}")
    with pytest.raises(BackupError, match=r"9999_future.*unknown"):
        restore(dst, tmp_path / "future.gz")
    dst.dispose()


def test_a_target_at_other_revisions_is_refused(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    backup(engine, tmp_path / "b.gz")
    engine.dispose()
    lines = read_lines(tmp_path / "b.gz")
    lines[0]["revisions"] = ["0001_core"]
    write_lines(tmp_path / "old.gz", lines)
    if set(head_revisions()) == {"0001_core"}:
        pytest.skip("only one migration revision exists")
    dst = make_engine(db_url)
    with pytest.raises(BackupError, match="revisions"):
        restore(dst, tmp_path / "old.gz", force=True)
    dst.dispose()


# ------------------------------------------------------------- SQLite -> PostgreSQL


def _pg_admin() -> str:
    import os

    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: `make test-pg` runs this on PostgreSQL")
    return database_url(url)


def _pg(admin: str, sql: str) -> None:
    engine = make_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.mark.db
def test_sqlite_backup_restores_into_postgresql(tmp_path: Path) -> None:
    admin = _pg_admin()
    sqlite_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    seed(sqlite_url)
    src = make_engine(sqlite_url)
    # a self-referencing row whose parent has a higher id (order must not matter)
    with transaction(session_factory(src)) as s:
        county = s.scalar(select(OrgUnit).where(OrgUnit.level == "county"))
        late = OrgUnit(code="T999", name="新设镇", level="township", parent_id=None)
        s.add(late)
        s.flush()
        first = s.scalar(select(OrgUnit).where(OrgUnit.code == "T000"))
        assert first is not None and county is not None
        first.parent_id = late.id
        late.parent_id = county.id
    backup(src, tmp_path / "b.gz")
    src.dispose()

    name = f"kaohe_restore_{uuid.uuid4().hex[:10]}"
    _pg(admin, f"CREATE DATABASE {name}")
    pg_url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        dst = make_engine(pg_url)
        restore(dst, tmp_path / "b.gz")
        assert current_revisions(dst) == head_revisions()
        assert contents(pg_url) == contents(sqlite_url)
        # the id sequences continue after the restored ids
        from kaohe.auth.users import add_user

        with transaction(session_factory(dst)) as s:
            user = add_user(s, "after_restore", "after-pass-1", "viewer")
            assert user.id > max(u.id for u in s.scalars(select(User)) if u is not user)
        # and back: PostgreSQL -> a new SQLite file
        backup(dst, tmp_path / "pg.gz")
        dst.dispose()
        back_url = f"sqlite:///{tmp_path / 'back.sqlite'}"
        back = make_engine(back_url)
        restore(back, tmp_path / "pg.gz")
        back.dispose()
        assert contents(back_url) == contents(pg_url)
    finally:
        _pg(
            admin,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        _pg(admin, f"DROP DATABASE IF EXISTS {name}")
