"""`kaohe score` and `kaohe explain` pay for the CLI's start-up on every run: the
sub-commands that need the store (user, db, supplies) import SQLAlchemy only
when they run, Rich is imported only to draw, and a one-shot command ends without
tearing the interpreter down once its output is flushed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaohe.startup import (
    ALLOCATOR_OPTIONS,
    ALLOCATOR_VARIABLE,
    ONE_SHOT,
    POLARS_ALLOCATOR_OPTIONS,
)

EXAMPLE = Path(__file__).parent / "fixtures" / "village-1000-example"
DATA = next(EXAMPLE.glob("*data*.csv"))
UNITS = next(EXAMPLE.glob("*units*.csv"))


def test_cli_import_does_not_load_the_store() -> None:
    code = "import sys, kaohe.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'fastapi', 'alembic')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_score_to_a_file_does_not_load_rich(tmp_path: object) -> None:
    """Rich (≈ 50 ms of start-up) is imported only to draw on a terminal or to print
    tables and errors: a ``kaohe score`` writing a file from a script does without."""
    out = Path(str(tmp_path)) / "out.csv"
    code = (
        "import sys\n"
        "from kaohe.cli import app\n"
        f"sys.argv = ['kaohe', 'score', 'village-1000', '--data', {str(DATA)!r}, "
        f"'--units', {str(UNITS)!r}, '--period', '2022', '--format', 'csv', '-o', {str(out)!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
    assert out.read_text(encoding="utf-8").startswith("unit,name,group,total,rank,")
    assert "已写出 written" in run.stderr


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    """``kaohe ARGS`` through the console script (kaohe.startup.main), with an exit
    handler that tells whether the interpreter was torn down."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('[torn down]'))\n"
        "from kaohe.startup import main\n"
        f"sys.argv = ['kaohe', *{list(args)!r}]\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_score_ends_without_teardown_and_all_its_output_arrives() -> None:
    # JSON on a pipe is block-buffered: it arrives only if flushed before the quick exit
    run = _main("score", "village-1000", "--data", str(DATA), "--units", str(UNITS),
                "--period", "2022")  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert len(result["results"]) == 6
    assert "[torn down]" not in run.stderr


def test_a_failing_one_shot_command_keeps_its_exit_code_and_message(tmp_path: Path) -> None:
    run = _main(
        "score", "village-1000", "--data", str(tmp_path / "missing.csv"), "--period", "2022"
    )
    assert run.returncode == 2
    assert "missing.csv" in run.stderr
    assert "[torn down]" not in run.stderr


def test_other_commands_exit_normally() -> None:
    run = _main("rulebooks")
    assert run.returncode == 0, run.stderr
    assert "village-1000" in run.stdout
    assert "[torn down]" in run.stderr


def test_prepare_switches_the_collector_off_only_for_one_shot_commands(tmp_path: Path) -> None:
    import gc

    import polars as pl

    from kaohe import startup
    from kaohe.io import prefetch

    data = tmp_path / "d.parquet"
    pl.read_csv(DATA).write_parquet(data)
    allocator_before = os.environ.get(ALLOCATOR_VARIABLE)
    try:
        startup.prepare(["serve", "--port", "8000"])
        assert gc.isenabled()
        startup.prepare(["score", "village-1000", "--data", str(data), "--period", "2022"])
        assert not gc.isenabled()
        assert prefetch.pending() == 1  # the data file is being read
        # Polars (and its allocator) is loaded already: nothing to set for it
        assert os.environ.get(ALLOCATOR_VARIABLE) == allocator_before
    finally:
        gc.enable()
        prefetch.forget()


def _allocator_run(code: str, preset: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_VARIABLE}
    if preset is not None:
        env[ALLOCATOR_VARIABLE] = preset
    return subprocess.run(
        [sys.executable, "-c", "import os\nfrom kaohe.startup import prepare\n" + code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="Polars uses jemalloc on Linux only")
def test_a_one_shot_command_sets_the_allocator_options() -> None:
    name = ALLOCATOR_VARIABLE
    code = (
        "prepare(['serve', '--port', '8000'])\n"
        f"assert {name!r} not in os.environ\n"
        "prepare(['score', 'village-1000'])\n"
        f"assert os.environ[{name!r}] == {','.join(ALLOCATOR_OPTIONS)!r}\n"
        # jemalloc prints its options when the process ends: Polars' allocator took them
        f"os.environ[{name!r}] += ',stats_print:true'\n"
        "import polars as pl\n"
        "pl.DataFrame({'a': list(range(1000))}).sum()\n"
    )
    stats = _allocator_run(code).stderr
    for line in ("opt.narenas: 1\n", "opt.dirty_decay_ms: -1 ", "opt.muzzy_decay_ms: -1 "):
        assert line in stats


def test_the_allocator_options_keep_the_users_own() -> None:
    show = f"prepare(['score', 'village-1000'])\nprint(os.environ[{ALLOCATOR_VARIABLE!r}])"
    # an option the user named is kept; the others are added
    got = _allocator_run(show, preset="narenas:3").stdout.strip()
    assert got == "narenas:3,dirty_decay_ms:-1,muzzy_decay_ms:-1"
    # Polars' own first options, inherited from a process that imported Polars, are not
    # the user's: all are added (jemalloc takes the last value of an option)
    inherited = _allocator_run(
        f"import polars\nprint(os.environ[{ALLOCATOR_VARIABLE!r}])"
    ).stdout.strip()
    assert inherited == POLARS_ALLOCATOR_OPTIONS  # what this kaohe expects of Polars
    got = _allocator_run(show, preset=inherited).stdout.strip()
    assert got == f"{inherited},{','.join(ALLOCATOR_OPTIONS)}"
    got = _allocator_run(show, preset=f"{inherited},dirty_decay_ms:100").stdout.strip()
    assert got == f"{inherited},dirty_decay_ms:100,narenas:1,muzzy_decay_ms:-1"


def test_the_one_shot_commands_are_commands_of_the_app() -> None:
    """kaohe.startup.ONE_SHOT (decided from the command line, before Typer is imported)
    names commands of the app, which kaohe.cli.main then runs in an app of their own
    and ends without teardown."""
    from kaohe import cli, startup

    names = {cli._command_name(c) for c in cli.app.registered_commands}
    assert set(startup.ONE_SHOT) <= names
    assert startup.READS_DATA <= startup.ONE_SHOT


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_a_one_shot_command_runs_in_an_app_of_its_own(name: str) -> None:
    """kaohe.cli._app_for: the app holding the one command behaves as the full app for
    it (same help, same usage errors)."""
    from typer.testing import CliRunner

    from kaohe.cli import _app_for, app

    lean = _app_for([name, "--help"])
    assert lean is not app
    assert [c.callback.__name__ for c in lean.registered_commands if c.callback] == [
        c.callback.__name__
        for c in app.registered_commands
        if c.callback and (c.name or c.callback.__name__) == name
    ]
    runner = CliRunner()
    for args in ([name, "--help"], [name], [name, "--no-such-option"]):
        full, alone = runner.invoke(app, args), runner.invoke(lean, args)
        assert (alone.exit_code, alone.output) == (full.exit_code, full.output)


def test_other_commands_run_in_the_full_app() -> None:
    from kaohe.cli import _app_for, app

    for args in ([], ["--help"], ["rulebooks"], ["user", "list"], ["serve"]):
        assert _app_for(args) is app
