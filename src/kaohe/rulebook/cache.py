"""A cache of parsed rulebook texts: the YAML → data step, kept as JSON by the text's hash.

In a fresh process, parsing YAML is most of the cost of loading a rulebook: for
``village-1000`` ≈ 25 ms to import ruamel.yaml and ≈ 85 ms for its first parse (it
loads its constructor and resolver on first use), against ≈ 4 ms for validating the
data and checking its names.  Every ``kaohe score`` pays it.  The data a YAML text
parses to depends only on the text, so, like Python's ``__pycache__``, the parsed data
of a rulebook that loaded without a problem is written as JSON under the SHA-256 of
its text, and the next load of the same text reads it back (< 1 ms) instead of parsing.

Only the *parsing* is cached: the data is validated (Pydantic) and checked (names,
formulas) on every load, exactly as when it comes from the parser, so a cached text
and a parsed one give the same rulebook or the same errors.  A rulebook with a
problem is never cached; its errors come from the round-trip parser, with lines.

Where: ``$KAOHE_CACHE_DIR`` when set (empty: no cache), else
``$XDG_CACHE_HOME/kaohe/rulebooks`` (``~/.cache/kaohe/rulebooks``).  A cache that
cannot be read or written (read-only home, a damaged file) is silently skipped: the
text is parsed as if there were none.  At most :data:`MAX_FILES` texts are kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

#: bump when the stored form changes (older files are then ignored and pruned)
FORMAT = 1
MAX_FILES = 64
ENV = "KAOHE_CACHE_DIR"
#: the key of a mapping whose keys are not all text (e.g. ``rank_bonus: {1: 4, 2: 2}``):
#: stored as a list of [key, value] pairs
_PAIRS = "\u0000pairs"


def cache_dir() -> Path | None:
    """The cache's folder, or None when caching is switched off (``KAOHE_CACHE_DIR=``)."""
    env = os.environ.get(ENV)
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kaohe" / "rulebooks"


def _file(folder: Path, digest: str) -> Path:
    return folder / f"v{FORMAT}-{digest}.json"


def get(digest: str) -> Any | None:
    """The parsed data of the text whose SHA-256 is ``digest``, or None."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        stored = json.loads(_file(folder, digest).read_bytes())
        if not isinstance(stored, dict) or stored.get("sha256") != digest:
            return None
        return _decode(stored["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def put(digest: str, data: Any) -> None:
    """Keep the parsed data of a text (a no-op when it holds values JSON cannot keep
    exactly, such as dates, or when the cache cannot be written)."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        encoded = _encode(data)
    except _NotCacheable:
        return
    text = json.dumps({"sha256": digest, "data": encoded}, ensure_ascii=False)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, _file(folder, digest))  # atomic: readers see all or nothing
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(folder)


def _prune(folder: Path) -> None:
    """Keep the :data:`MAX_FILES` most recently written texts."""
    files = [p for p in folder.glob("v*-*.json")]
    if len(files) <= MAX_FILES:
        return
    for p in sorted(files, key=lambda p: p.stat().st_mtime)[: len(files) - MAX_FILES]:
        with contextlib.suppress(OSError):
            p.unlink()


class _NotCacheable(Exception):
    pass


def _encode(x: Any) -> Any:
    """``x`` in a form that JSON gives back exactly (same values, same types), or
    :class:`_NotCacheable`."""
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        if not math.isfinite(x):  # JSON has no inf/nan
            raise _NotCacheable
        return float(x)
    if isinstance(x, list):
        return [_encode(v) for v in x]
    if isinstance(x, dict):
        if all(isinstance(k, str) for k in x) and _PAIRS not in x:
            return {k: _encode(v) for k, v in x.items()}
        return {_PAIRS: [[_encode(k), _encode(v)] for k, v in x.items()]}
    raise _NotCacheable  # dates, binary, sets, …


def _decode(x: Any) -> Any:
    if isinstance(x, list):
        return [_decode(v) for v in x]
    if isinstance(x, dict):
        if _PAIRS in x:
            return {_decode(k): _decode(v) for k, v in x[_PAIRS]}
        return {k: _decode(v) for k, v in x.items()}
    return x
