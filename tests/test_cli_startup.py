"""`kaohe score` and `kaohe explain` pay for the CLI's imports on every run: the
sub-commands that need the store (user, db, supplies) import SQLAlchemy only
when they run."""

from __future__ import annotations

import subprocess
import sys


def test_cli_import_does_not_load_the_store() -> None:
    code = "import sys, kaohe.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'fastapi', 'alembic')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_score_to_a_file_does_not_load_rich(tmp_path: object) -> None:
    """Rich (≈ 50 ms of start-up) is imported only to draw on a terminal or to print
    tables and errors: a ``kaohe score`` writing a file from a script does without."""
    from pathlib import Path

    root = Path(__file__).parent / "fixtures" / "village-1000-example"
    data = next(root.glob("*data*.csv"))
    units = next(root.glob("*units*.csv"))
    out = Path(str(tmp_path)) / "out.csv"
    code = (
        "import sys\n"
        "from kaohe.cli import main\n"
        f"sys.argv = ['kaohe', 'score', 'village-1000', '--data', {str(data)!r}, "
        f"'--units', {str(units)!r}, '--period', '2022', '--format', 'csv', '-o', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
    assert out.read_text(encoding="utf-8").startswith("unit,name,group,total,rank,")
    assert "已写出 written" in run.stderr
