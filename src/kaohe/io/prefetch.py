"""Reading a command's data file in the background while the command line starts up.

A ``kaohe score`` spends its first ≈ 0.3 s in Python alone, on one core: parsing its
options (Typer builds a Pydantic adapter per option), importing the rulebook model and
the engine, loading the rulebook.  Reading a Parquet file is one Polars call that
releases the GIL, so it can use the idle core meanwhile.  :func:`start` begins the read
on a background thread; :func:`take` hands the frame to
:func:`kaohe.io.read.read_data` when it asks for the same file, unchanged since (same
size, modification time and inode).  At 200,000 villages this takes ≈ 0.2 s off a
≈ 2.2 s ``kaohe score`` (docs/performance.md).

It is a hint, never a source of truth: a frame is used only by a read of the very file
it came from; a file that cannot be read, or that changed, is read again by
``read_data`` as if nothing had been prefetched (so its errors are reported as usual);
a frame nobody asks for is dropped with the process.

Only Parquet data files are prefetched.  A CSV file's column types depend on the
rulebook, which is not loaded yet; and reading org units (many small Polars calls
with Python between them) on a second thread was measured slower, not faster: each
call waits for the interpreter lock held by the start-up's imports.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

#: the data files that are prefetched
SUFFIXES = (".parquet",)

Stamp = tuple[str, int, int, int]


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
        return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return None


class _Read:
    def __init__(self, path: Path, stamp: Stamp) -> None:
        self.path = path
        self.stamp = stamp
        self.frame: pl.DataFrame | None = None
        self.thread = threading.Thread(target=self._run, name="kaohe-prefetch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import polars as pl

        try:
            self.frame = pl.read_parquet(self.path)
        except Exception:  # read again, and reported, by read_data itself
            self.frame = None


_lock = threading.Lock()
_reads: dict[str, _Read] = {}


def start(path: str | Path) -> bool:
    """Begin reading the data file ``path`` in the background; whether it began (only
    for the file types of :data:`SUFFIXES`)."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES or not p.is_file():
        return False
    stamp = _stamp(p)
    if stamp is None:
        return False
    import polars  # noqa: F401  (imported here, on the calling thread, not by the reader)

    with _lock:
        if stamp[0] not in _reads:
            _reads[stamp[0]] = _Read(p, stamp)
    return True


def take(path: str | Path) -> pl.DataFrame | None:
    """The frame read from ``path`` by :func:`start`, if any and if the file has not
    changed since; it is handed out once."""
    if not _reads:
        return None
    stamp = _stamp(Path(path))
    if stamp is None:
        return None
    with _lock:
        read = _reads.pop(stamp[0], None)
    if read is None:
        return None
    read.thread.join()
    return read.frame if read.stamp == stamp else None


def pending() -> int:
    """How many prefetched reads nobody has taken yet."""
    return len(_reads)


def forget() -> None:
    """Wait for and drop every prefetched read."""
    with _lock:
        reads = list(_reads.values())
        _reads.clear()
    for read in reads:
        read.thread.join()


def option(args: list[str], name: str) -> str | None:
    """The value of option ``name`` (``--data``) in a command line: ``--data F`` or
    ``--data=F``; None when absent."""
    for i, a in enumerate(args):
        if a == "--":
            return None
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1 :]
    return None


def start_for_command_line(args: list[str]) -> None:
    """Start prefetching the ``--data`` file of a command line."""
    value = option(args, "--data")
    if value:
        start(value)
