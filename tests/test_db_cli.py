"""`kaohe db upgrade | current | backup | restore` and `kaohe serve`, in-process."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from kaohe.cli import app
from kaohe.store.db import current_revisions, head_revisions, make_engine
from tests.test_backup import contents

runner = CliRunner()


def run(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args], env=env)
    return r.exit_code, r.stdout, r.stderr


def test_upgrade_creates_then_reports_up_to_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    code, out, _ = run("db", "current", "--database", url)
    assert code == 0 and "(none" in out and "needs" in out
    code, out, _ = run("db", "upgrade", "--database", url)
    assert code == 0 and "upgraded" in out
    engine = make_engine(url)
    assert current_revisions(engine) == head_revisions()
    assert "org_unit" in inspect(engine).get_table_names()
    engine.dispose()
    code, out, _ = run("db", "upgrade", "--database", url)
    assert code == 0 and "up to date" in out
    code, out, _ = run("db", "current", "--database", url)
    assert code == 0 and "up to date" in out
    for rev in head_revisions():
        assert rev in out


def test_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    code, _, _ = run("db", "upgrade", env={"KAOHE_DATABASE_URL": url})
    assert code == 0
    assert (tmp_path / "env.sqlite").is_file()


def test_backup_and_restore_round_trip(db_url: str, tmp_path: Path) -> None:
    file = tmp_path / "kaohe.jsonl.gz"
    code, out, err = run("db", "backup", file, "--database", db_url)
    assert code == 0, err
    assert "backed up" in out and file.is_file()
    target = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    code, out, err = run("db", "restore", file, "--database", target)
    assert code == 0, err
    assert "restored" in out
    assert contents(target) == contents(db_url)
    # a second restore into the now non-empty database needs --force
    code, _, err = run("db", "restore", file, "--database", target)
    assert code == 2 and "--force" in err
    code, _, err = run("db", "restore", file, "--database", target, "--force")
    assert code == 0, err
    assert contents(target) == contents(db_url)


def _valid_backup(db_url: str, tmp_path: Path) -> Path:
    file = tmp_path / "good.jsonl.gz"
    code, _, err = run("db", "backup", file, "--database", db_url)
    assert code == 0, err
    return file


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "not a gzip file"),
        ("foreign-gzip", "not a kaohe backup"),
        ("truncated", "truncated"),
        ("no-end", "incomplete"),
        ("wrong-count", "row counts"),
        ("bad-json", "bad JSON"),
        ("missing", "no such file"),
    ],
)
def test_a_damaged_or_foreign_file_is_refused_and_nothing_is_written(
    db_url: str, tmp_path: Path, kind: str, message: str
) -> None:
    good = _valid_backup(db_url, tmp_path)
    raw = good.read_bytes()
    with gzip.open(good, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    bad = tmp_path / f"{kind}.gz"
    if kind == "text":
        bad.write_text("unit,period\nV0000,2022\n", encoding="utf-8")
    elif kind == "foreign-gzip":
        bad.write_bytes(gzip.compress(b'{"hello": "world"}\n'))
    elif kind == "truncated":
        bad.write_bytes(raw[: len(raw) * 2 // 3])
    elif kind == "no-end":
        bad.write_bytes(gzip.compress(("\n".join(lines[:-1]) + "\n").encode()))
    elif kind == "wrong-count":
        end = json.loads(lines[-1])
        end["rows"]["org_unit"] += 1
        bad.write_bytes(gzip.compress(("\n".join([*lines[:-1], json.dumps(end)]) + "\n").encode()))
    elif kind == "bad-json":
        bad.write_bytes(
            gzip.compress(("\n".join([*lines[:3], "[1, 2", *lines[3:]]) + "\n").encode())
        )
    target_path = tmp_path / "target.sqlite"
    target = f"sqlite:///{target_path}"
    code, _, err = run("db", "restore", bad, "--database", target)
    assert code == 2, err
    assert message in err
    assert bad.name in err  # the message names the file
    if target_path.exists():  # an empty database file at most: no tables
        engine = make_engine(target)
        assert inspect(engine).get_table_names() == []
        engine.dispose()


def test_backup_into_a_missing_folder_is_an_error(db_url: str, tmp_path: Path) -> None:
    code, _, err = run("db", "backup", tmp_path / "nowhere" / "b.gz", "--database", db_url)
    assert code == 2
    assert "no such folder" in err and "nowhere" in err


def test_backup_of_a_database_that_is_not_set_up_is_an_error(tmp_path: Path) -> None:
    code, _, err = run(
        "db", "backup", tmp_path / "b.gz", "--database", f"sqlite:///{tmp_path / 'empty.sqlite'}"
    )
    assert code == 2
    assert "kaohe db upgrade" in err
    assert not (tmp_path / "b.gz").exists()


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = run(
        "db", "upgrade", "--database", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    assert code == 2
    assert "cannot use the database" in err and "127.0.0.1:1" in err


def test_serve_migrates_and_tells_how_to_add_the_first_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: dict[str, object] = {}

    def fake_run(app: object, host: str, port: int, **kw: object) -> None:
        served.update(app=app, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    code, out, err = run("serve", "--database", url, "--port", "8123")
    assert code == 0, err
    assert served["host"] == "127.0.0.1" and served["port"] == 8123
    assert "kaohe user add admin --role admin" in out
    assert "password" not in out.lower().replace("no default password", "")
    engine = make_engine(url)
    assert current_revisions(engine) == head_revisions()
    engine.dispose()
