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
  ends right after: :func:`kaohe.cli.main`).  Servers and database commands keep it;
* a one-shot command has Polars' allocator (jemalloc, on Linux) keep one arena
  (:data:`ALLOCATOR`) instead of one per thread (it makes 4 per core): the columns
  that the reader, Polars' worker threads and the streaming engine free are then
  reused by the others instead of new pages being mapped (a 200k-village Parquet
  ``score``: 25 % fewer page faults, ≈ 5 % less time and 20 % less memory at its
  peak).  It is set only when Polars is not loaded yet (jemalloc reads it once),
  and never over an arena count of the user's own ``_RJEM_MALLOC_CONF``.
"""

from __future__ import annotations

import gc
import os
import sys

#: commands that read files, write their output and end (see kaohe.cli.main)
ONE_SHOT = frozenset({"score", "explain", "pay", "notice", "check", "template"})
#: commands that read a ``--data FILE``
READS_DATA = frozenset({"score", "explain", "pay", "notice"})
#: jemalloc options of a one-shot command (the variable read by Polars' build of it)
ALLOCATOR = ("_RJEM_MALLOC_CONF", "narenas:1")


def _set_allocator() -> None:
    """Add :data:`ALLOCATOR`'s option to the jemalloc options of the environment, unless
    they name it already.  (Polars puts its own options first when it loads, and leaves
    them in the environment: a process started by one that imported Polars inherits them.)"""
    name, option = ALLOCATOR
    current = os.environ.get(name, "")
    key = option.partition(":")[0] + ":"
    if not any(part.strip().startswith(key) for part in current.split(",")):
        os.environ[name] = f"{current},{option}" if current else option


def prepare(args: list[str]) -> None:
    """Get ready for the command line ``args`` (``sys.argv[1:]``); may be called again."""
    command = args[0] if args else None
    if command in ONE_SHOT:
        gc.disable()
        if "polars" not in sys.modules:
            _set_allocator()
    if command in READS_DATA:
        from kaohe.io import prefetch

        prefetch.start_for_command_line(args[1:])


def main() -> None:
    """The console script: :func:`prepare`, then the command line (:func:`kaohe.cli.main`)."""
    prepare(sys.argv[1:])
    from kaohe.cli import main as run

    run()
