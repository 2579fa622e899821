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
