"""Read the org-unit file (组织机构): ``code,name,parent`` as CSV or XLSX.

Headers may also be Chinese: 代码/单位代码 (code), 名称/单位名称 (name),
上级/上级代码/上级单位代码 (parent), or ``中文标签 (code)``.  Columns ``code``
and ``parent`` are required; ``name`` is optional (an empty name is the code).
Roots have an empty parent.  Other columns are ignored.

Every problem names the file, the row (header = row 1) and the column, and all
problems are reported together: empty or duplicate codes, a parent that is not
a code of the file, and cycles in the tree (naming the codes in the cycle).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from kaohe.errors import InputError, InputErrors
from kaohe.io.dataset import OrgUnits
from kaohe.io.read import MAX_ERRORS, header_code, normalise_header, read_xlsx_rows

CODE = "code"
NAME = "name"
PARENT = "parent"
_ROW = "_row"

HEADERS: dict[str, str] = {
    "code": CODE,
    "unit": CODE,
    "代码": CODE,
    "单位代码": CODE,
    "单位编码": CODE,
    "name": NAME,
    "名称": NAME,
    "单位名称": NAME,
    "parent": PARENT,
    "上级": PARENT,
    "上级代码": PARENT,
    "上级单位": PARENT,
    "上级单位代码": PARENT,
}

REQUIRED = (CODE, PARENT)


def _key(header: str) -> str | None:
    text = normalise_header(header)
    key = HEADERS.get(text.casefold())
    if key is None:
        key = HEADERS.get(header_code(text).casefold())
    return key


def _columns(
    file: str, cells: list[object], sheet: str | None
) -> tuple[dict[str, int], dict[str, str]]:
    """Position and header text of code, name and parent; raises if a required one is missing."""
    where: dict[str, int] = {}
    headers: dict[str, str] = {}
    for i, cell in enumerate(cells):
        key = _key(str(cell) if cell is not None else "")
        if key is not None and key not in where:
            where[key] = i
            headers[key] = normalise_header(cell)
    missing = [k for k in REQUIRED if k not in where]
    if missing:
        found = ", ".join(normalise_header(c) for c in cells if normalise_header(c)) or "none"
        raise InputErrors(
            [
                InputError(
                    f"missing column '{k}' (the header row needs code, name, parent; "
                    f"found: {found})",
                    file=file,
                    row=1,
                    column=k,
                    sheet=sheet,
                )
                for k in missing
            ]
        )
    return where, headers


def _from_rows(
    file: str, cells: list[object], rows: list[tuple[int, list[object]]], sheet: str | None
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Build the String frame (_row, code, name, parent) from a header and rows of cells."""
    where, headers = _columns(file, cells, sheet)
    data: dict[str, list[str | None]] = {CODE: [], NAME: [], PARENT: []}
    numbers: list[int] = []
    for n, values in rows:
        numbers.append(n)
        for k in (CODE, NAME, PARENT):
            i = where.get(k)
            v = values[i] if i is not None and i < len(values) else None
            data[k].append(_text(v))
    frame = pl.DataFrame(
        {_ROW: numbers, **data},
        schema={_ROW: pl.Int64, CODE: pl.String, NAME: pl.String, PARENT: pl.String},
    )
    return frame, headers


def _text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def _empty_as_null(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """``frame`` with the empty texts of ``columns`` as null (a cell of spaces, once
    stripped); the frame itself when there is none, as in nearly every file."""
    empty = [k for k in columns if (frame.get_column(k).str.len_bytes() == 0).any()]
    if not empty:
        return frame
    return frame.with_columns(
        pl.when(pl.col(k).str.len_bytes() == 0).then(None).otherwise(pl.col(k)).alias(k)
        for k in empty
    )


def _read_csv(path: Path, file: str) -> tuple[pl.DataFrame, dict[str, str]]:
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    encoding = "utf8"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start <= len(head) - 4:
            encoding = "gb18030"
    text = head.decode("utf-8" if encoding == "utf8" else "gb18030", errors="ignore")
    text = text.lstrip("\ufeff")
    first = next(csv.reader(io.StringIO(text)), [])
    if not any(c.strip() for c in first):
        raise InputErrors(
            [
                InputError(
                    "the file is empty (expected a header row: code,name,parent)", file=file, row=1
                )
            ]
        )
    where, headers = _columns(file, [*first], None)
    source: Path | bytes = path
    if encoding != "utf8":
        source = path.read_bytes().decode("gb18030").encode("utf-8")
    schema = {f"c{i}": pl.String() for i in range(len(first))}
    wanted = sorted(where.values())
    try:
        raw = pl.read_csv(
            source,
            has_header=False,
            skip_rows=1,
            schema=schema,
            columns=wanted,
            row_index_name=_ROW,
            row_index_offset=2,
            truncate_ragged_lines=True,
        )
    except pl.exceptions.PolarsError as e:
        raise InputErrors([InputError(f"cannot read as CSV: {e}", file=file)]) from None
    # cells are stripped once; the few that are then empty become null (Polars reads an
    # empty cell as null already)
    frame = raw.select(
        pl.col(_ROW).cast(pl.Int64),
        *[
            (
                pl.col(f"c{where[k]}").str.strip_chars() if k in where else pl.lit(None, pl.String)
            ).alias(k)
            for k in (CODE, NAME, PARENT)
        ],
    )
    frame = _empty_as_null(frame, tuple(k for k in (CODE, NAME, PARENT) if k in where))
    # rows with nothing in them (blank lines, ',,' lines) are skipped (a row with a code
    # is never empty)
    if frame.get_column(CODE).null_count():
        frame = frame.filter(pl.any_horizontal(pl.col(CODE, NAME, PARENT).is_not_null()))
    return frame, headers


def _read_xlsx(path: Path, file: str) -> tuple[pl.DataFrame, dict[str, str], str]:
    sheets = read_xlsx_rows(path, file)
    for title, rows in sheets:
        if rows and rows[0][0] == 1 and any(_key(str(c or "")) == CODE for c in rows[0][1]):
            frame, headers = _from_rows(file, rows[0][1], rows[1:], title)
            return frame, headers, title
    raise InputErrors(
        [
            InputError(
                "no sheet has a header row (row 1) with a code column (code / 单位代码)",
                file=file,
                row=1,
            )
        ]
    )


def read_units(path: str | Path) -> OrgUnits:
    """Read and validate an org-unit file; raises :class:`InputErrors` listing every problem."""
    p = Path(path)
    file = str(path)
    if not p.exists():
        raise InputErrors([InputError("no such file", file=file)])
    if not p.is_file():
        raise InputErrors([InputError("not a file", file=file)])
    sheet: str | None = None
    try:
        suffix = p.suffix.lower()
        if suffix in (".csv", ".txt"):
            frame, headers = _read_csv(p, file)
        elif suffix in (".xlsx", ".xlsm"):
            frame, headers, sheet = _read_xlsx(p, file)
        else:
            raise InputErrors(
                [InputError(f"unsupported file type '{p.suffix}' (use .csv or .xlsx)", file=file)]
            )
    except OSError as e:
        raise InputErrors(
            [InputError(f"cannot read the file: {e.strerror or e}", file=file)]
        ) from None
    out = frame.select(
        pl.col(CODE),
        pl.coalesce(pl.col(NAME), pl.col(CODE)).alias(NAME),
        pl.col(PARENT),
    )
    org = OrgUnits(frame=out, file=file)
    if _is_clean(org):
        return org
    errors = _validate(frame, headers, file, sheet)
    if errors:
        shown = errors[:MAX_ERRORS]
        if len(errors) > MAX_ERRORS:
            shown.append(
                InputError(
                    f"{len(errors) - MAX_ERRORS} more errors not shown", file=file, sheet=sheet
                )
            )
        raise InputErrors(shown)
    return org


def _is_clean(org: OrgUnits) -> bool:
    """Fast check of a valid file: codes given and distinct, every parent a code, no cycle.

    Parents are looked up once (kept on ``org`` for reading data, scoring and explaining);
    cycles are found by squaring the parent map (ancestor at distance 1, 2, 4, …) until
    every unit has reached its root.  When this says no, :func:`_validate` describes why."""
    codes = org.frame.get_column(CODE)
    if codes.null_count() or not org.codes_unique():
        return False
    up = org.parent_positions()
    if up.null_count() != org.frame.get_column(PARENT).null_count():
        return False  # a parent that is not a code
    nulls = up.null_count()
    while nulls < up.len():
        up = up.gather(up)
        if up.null_count() == nulls:
            return False  # units that never reach a root: a cycle
        nulls = up.null_count()
    return True


def _validate(
    frame: pl.DataFrame, headers: dict[str, str], file: str, sheet: str | None
) -> list[InputError]:
    found: list[tuple[int, int, InputError]] = []

    def err(row: int, key: str, reason: str) -> None:
        order = (CODE, NAME, PARENT).index(key)
        found.append(
            (
                row,
                order,
                InputError(reason, file=file, row=row, column=headers.get(key, key), sheet=sheet),
            )
        )

    for (row,) in frame.filter(pl.col(CODE).is_null()).select(_ROW).iter_rows():
        err(row, CODE, "empty unit code")
    coded = frame.filter(pl.col(CODE).is_not_null())
    codes = coded.get_column(CODE)
    distinct = codes.unique()
    dups = (
        coded.filter(pl.col(CODE).is_duplicated())
        .group_by(CODE, maintain_order=True)
        .agg(pl.col(_ROW))
        if distinct.len() < codes.len()
        else pl.DataFrame(schema={CODE: pl.String, _ROW: pl.List(pl.Int64)})
    )
    for code, rows in dups.iter_rows():
        first = rows[0]
        for row in rows[1:]:
            err(row, CODE, f"duplicate code '{code}' (also on row {first})")
    orphans = coded.filter(pl.col(PARENT).is_not_null() & ~pl.col(PARENT).is_in(distinct.implode()))
    for row, code, parent in orphans.select(_ROW, CODE, PARENT).iter_rows():
        err(row, PARENT, f"parent '{parent}' of '{code}' is not a code in this file")
    if not dups.is_empty():
        coded = coded.unique(subset=CODE, keep="first", maintain_order=True)
    for row, cycle in _cycles(coded):
        err(row, PARENT, f"cycle in the org tree: {' → '.join(cycle)}")
    found.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in found]


def _cycles(frame: pl.DataFrame) -> list[tuple[int, list[str]]]:
    """Cycles of the parent relation: (row of the cycle's first unit, codes around the cycle).

    Units are resolved level by level from the roots (vectorised, as deep as the tree);
    only what is left — units on or under a cycle — is walked in Python.
    """
    resolved = frame.filter(pl.col(PARENT).is_null()).get_column(CODE)
    known = frame.get_column(CODE)
    # parents missing from the file are reported separately; treat their children as roots
    pending = frame.filter(pl.col(PARENT).is_not_null() & pl.col(PARENT).is_in(known.implode()))
    frontier = resolved
    while pending.height and frontier.len():
        hit = pl.col(PARENT).is_in(frontier.implode())
        frontier = pending.filter(hit).get_column(CODE)
        pending = pending.filter(~hit)
    if pending.height == 0:
        return []
    parent = dict(zip(pending[CODE].to_list(), pending[PARENT].to_list(), strict=True))
    row_of = dict(zip(pending[CODE].to_list(), pending[_ROW].to_list(), strict=True))
    out: list[tuple[int, list[str]]] = []
    done: set[str] = set()
    for start in pending[CODE].to_list():
        path: list[str] = []
        seen: dict[str, int] = {}
        node: str | None = start
        while node is not None and node in parent and node not in done and node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = parent[node]
        if node is not None and node in seen:
            cycle = path[seen[node] :]
            first = min(cycle, key=lambda c: row_of[c])
            i = cycle.index(first)
            ordered = cycle[i:] + cycle[:i]
            out.append((row_of[first], [*ordered, first]))
        done.update(path)
    return out
