"""The command line's consoles, created on first use.

Importing Rich costs ≈ 50 ms of every command's start-up; a ``kaohe score`` writing
its result to a file from a script or a benchmark prints nothing with it (the
progress display is drawn only on a terminal), so it need not pay for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A :class:`rich.console.Console`, made when first used (same arguments)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._kwargs)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


out = LazyConsole()
err = LazyConsole(stderr=True)


def note(text: str) -> None:
    """A plain message on standard error (no markup): through Rich on a terminal, else
    written as it is (without importing Rich)."""
    if sys.stderr.isatty():
        err.print(text, markup=False, highlight=False)
    else:
        sys.stderr.write(text + "\n")
