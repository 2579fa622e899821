"""The ``kaohe`` console script's first steps, before the command line is imported.

Importing the command line (Typer, then Pydantic for its option adapters) and the
engine (Polars, the rulebook model) is ≈ 0.4 s of Python on one core before a
``kaohe score`` reads anything.  :func:`prepare` makes that time count, from the
command's name and options alone (a hint: nothing here decides what the command does):

* a command that reads a Parquet ``--data`` file starts reading it on a background
  thread (:mod:`kaohe.io.prefetch`);
* a one-shot command (:data:`ONE_SHOT`: it reads files, writes its output and ends)
  runs without the cyclic garbage collector, whose collections while ≈ 10⁵ long-lived
  objects of Typer, Pydantic and Polars are created cost ≈ 40–80 ms of every run and
  free nothing (the data lives in Polars, freed by reference counts, and the process
  ends right after: :func:`kaohe.cli.main`).  Servers and database commands keep it.
"""

from __future__ import annotations

import gc
import sys

#: commands that read files, write their output and end (see kaohe.cli.main)
ONE_SHOT = frozenset({"score", "explain", "pay", "notice", "check", "template"})
#: commands that read a ``--data FILE``
READS_DATA = frozenset({"score", "explain", "pay", "notice"})


def prepare(args: list[str]) -> None:
    """Get ready for the command line ``args`` (``sys.argv[1:]``); may be called again."""
    command = args[0] if args else None
    if command in ONE_SHOT:
        gc.disable()
    if command in READS_DATA:
        from kaohe.io import prefetch

        prefetch.start_for_command_line(args[1:])


def main() -> None:
    """The console script: :func:`prepare`, then the command line (:func:`kaohe.cli.main`)."""
    prepare(sys.argv[1:])
    from kaohe.cli import main as run

    run()
