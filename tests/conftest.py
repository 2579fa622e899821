"""Store and web fixtures: a migrated, seeded database per test.

SQLite by default; PostgreSQL when ``KAOHE_TEST_DATABASE_URL`` names a server
(e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``): each test then gets its
own database, cloned from a seeded template database (``.ci/run`` runs the store
and web tests both ways)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from kaohe.store.db import database_url, make_engine, session_factory, transaction, upgrade

PG_ENV = "KAOHE_TEST_DATABASE_URL"

# parsed rulebooks are cached (kaohe.rulebook.cache) in a folder of this test run's own,
# not in the user's ~/.cache; the CLI's subprocesses inherit it
_CACHE = tempfile.mkdtemp(prefix="kaohe-test-cache-")
os.environ["KAOHE_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

#: the browser-test fixtures (live_server, browser, context, page)
pytest_plugins = ("tests.browser_harness",)

#: users of the seeded test database: username -> (password, role, unit)
TEST_USERS: dict[str, tuple[str, str, str | None]] = {
    "admin": ("admin-pass-1", "admin", None),
    "assessor_t000": ("assess-pass-1", "assessor", "T000"),
    "assessor_t001": ("assess-pass-2", "assessor", "T001"),
    "assessor_st01": ("assess-pass-3", "assessor", "ST01"),
    "reporter_v0000": ("report-pass-1", "reporter", "V0000"),
    "reporter_v0001": ("report-pass-2", "reporter", "V0001"),
    "reporter_v0010": ("report-pass-3", "reporter", "V0010"),
    "reporter_c01": ("report-pass-4", "reporter", "C01"),
    "viewer": ("viewer-pass-1", "viewer", None),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "db: uses the database fixtures (run again on PostgreSQL by `make test-pg`)"
    )
    config.addinivalue_line("markers", "browser: drives chromium (tests/browser_harness.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the database fixtures ``db`` (``pytest -m db``)."""
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def seed(url: str) -> None:
    from kaohe.auth.users import add_user
    from kaohe.demo.database import create_demo_county

    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as s:
        create_demo_county(s)
        for name, (password, role, unit) in TEST_USERS.items():
            add_user(s, name, password, role, unit, check_password=False)
    engine.dispose()


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    return database_url(url) if url else None


def _pg_execute(admin_url: str, sql: str) -> None:
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    admin = _pg_admin_url()
    if admin is None:
        path = tmp_path_factory.mktemp("db") / "template.sqlite"
        seed(f"sqlite:///{path}")
        yield str(path)
        return
    name = f"kaohe_tpl_{worker_id}_{uuid.uuid4().hex[:8]}"
    _pg_execute(admin, f"CREATE DATABASE {name}")
    base = admin.rsplit("/", 1)[0]
    seed(f"{base}/{name}")
    yield name
    _pg_execute(admin, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def db_url(_template_db: str, tmp_path: Path) -> Iterator[str]:
    """A fresh copy of the seeded database (demo county + TEST_USERS)."""
    from kaohe.workflow.scoring import clear_cache

    clear_cache()
    admin = _pg_admin_url()
    if admin is None:
        path = tmp_path / "kaohe.sqlite"
        shutil.copyfile(_template_db, path)
        yield f"sqlite:///{path}"
        return
    name = f"kaohe_t_{uuid.uuid4().hex[:12]}"
    _pg_execute(admin, f"CREATE DATABASE {name} TEMPLATE {_template_db}")
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _pg_execute(
        admin,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    _pg_execute(admin, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine):  # type: ignore[no-untyped-def]
    """A session on the fresh database (commit explicitly)."""
    with session_factory(engine)() as s:
        yield s
