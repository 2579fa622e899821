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
  instead of one per thread (it makes 4 per core), and keep the memory freed during
  the run instead of returning it to the system after half a second
  (:data:`ALLOCATOR_OPTIONS`): the columns that the reader, Polars' worker threads
  and the streaming engine free are then reused by the others instead of new pages
  being mapped, for a process that ends within seconds anyway.  A 200k-village
  Parquet ``score``: 25 % fewer page faults, ≈ 5 % less time, 20 % less memory at
  its peak; at 1M villages 22 % fewer page faults, ≈ 8 % less time.  The options
  are set only when Polars is not loaded yet (jemalloc reads them once), and never
  over an option of the same name that the user gave in ``_RJEM_MALLOC_CONF``.
"""

from __future__ import annotations

import gc
import os
import sys

#: commands that read files, write their output and end (see kaohe.cli.main)
ONE_SHOT = frozenset({"score", "explain", "pay", "notice", "check", "template"})
#: commands that read a ``--data FILE``
READS_DATA = frozenset({"score", "explain", "pay", "notice"})
#: the variable of jemalloc options read by Polars' build of jemalloc
ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
#: jemalloc options of a one-shot command: one arena, freed memory never purged
ALLOCATOR_OPTIONS = ("narenas:1", "dirty_decay_ms:-1", "muzzy_decay_ms:-1")
#: the options Polars puts first in that variable when it loads; they stay in the
#: environment, so a process started by one that imported Polars inherits them
POLARS_ALLOCATOR_OPTIONS = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def _set_allocator() -> None:
    """Add to the jemalloc options of the environment those of :data:`ALLOCATOR_OPTIONS`
    that are not named there already (Polars' own first options apart).  jemalloc
    takes the last value given for an option."""
    current = os.environ.get(ALLOCATOR_VARIABLE, "")
    given = current.removeprefix(POLARS_ALLOCATOR_OPTIONS)
    named = {part.partition(":")[0].strip() for part in given.split(",")}
    extra = [o for o in ALLOCATOR_OPTIONS if o.partition(":")[0] not in named]
    if extra:
        os.environ[ALLOCATOR_VARIABLE] = ",".join(x for x in (current, *extra) if x)


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
