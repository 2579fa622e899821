"""Read data files into a validated :class:`~kaohe.io.dataset.Dataset`.

Formats (by suffix): ``.csv`` (UTF-8, with or without BOM; GB18030 is accepted
as a fallback because Excel on Chinese Windows saves CSV that way), ``.xlsx``
(every sheet whose header row has a unit and a period column; row numbers are
per sheet) and ``.parquet``.

Layouts, detected from the header row:

- *wide*: ``unit,period,<variable codes…>``, one row per unit and period; an
  optional ``name`` column is ignored; an empty cell means "not given";
- *long*: ``unit,period,variable,value``, one row per unit, period and variable.

Header cells may be a code (``population``), a label with the code in
parentheses (``年初户籍人口 (population)``, also full-width ``（…）``), the exact
Chinese label of a variable, or a Chinese meta header (单位代码, 期间, 单位名称,
变量, 数值).

Every problem is an :class:`~kaohe.errors.InputError` naming the file, the
sheet, the row (as a spreadsheet shows it: the header is row 1; for a CSV file
the record number, which is the line number unless a quoted cell spans lines;
for Parquet the record number + 1, as if it were a sheet) and the column.  All
problems are collected (up to :data:`MAX_ERRORS`) and raised together as
:class:`~kaohe.errors.InputErrors`; nothing is returned partially.

Performance: a clean CSV or Parquet file is read by Polars with an explicit
schema (a CSV's counts, the values of ``integer`` variables, as Int32: faster
than Float64 and half the memory; when a count is written ``3.0`` the file is
read again with Float64 values) and validated with a handful of vectorised
aggregates; only when one of them fails are the offending cells located (and,
for non-numeric cells, the file re-read as text).
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from kaohe.errors import InputError, InputErrors
from kaohe.io.dataset import PERIOD, ROW, SHEET, UNIT, Dataset, OrgUnits, UnitIndex
from kaohe.periods import Period, PeriodError, PeriodKind

if TYPE_CHECKING:  # (annotations only: importing this module loads no rulebook model)
    from kaohe.rulebook.loader import LoadedRulebook
    from kaohe.rulebook.schema import Variable

#: at most this many errors are reported (then a line saying how many more)
MAX_ERRORS = 50

#: canonical names of the non-variable columns
NAME = "name"
VARIABLE = "variable"
VALUE = "value"
IGNORED = "_ignored"

#: header texts of the non-variable columns (compared after strip/casefold)
META_HEADERS: dict[str, str] = {
    "unit": UNIT,
    "unit_code": UNIT,
    "单位代码": UNIT,
    "单位编码": UNIT,
    "单位": UNIT,
    "period": PERIOD,
    "期间": PERIOD,
    "考核期": PERIOD,
    "考核期间": PERIOD,
    "name": NAME,
    "unit_name": NAME,
    "单位名称": NAME,
    "名称": NAME,
    "variable": VARIABLE,
    "变量": VARIABLE,
    "变量代码": VARIABLE,
    "指标代码": VARIABLE,
    "value": VALUE,
    "数值": VALUE,
    "值": VALUE,
    # free-text columns a clerk may add; never read
    "备注": IGNORED,
    "说明": IGNORED,
    "remark": IGNORED,
    "remarks": IGNORED,
    "note": IGNORED,
    "notes": IGNORED,
}

#: ``中文标签 (code)`` or ``中文标签（code）``
_LABELLED = re.compile(r"^(?P<label>.*?)\s*[(（]\s*(?P<code>[A-Za-z_][A-Za-z0-9_]*)\s*[)）]\s*$")

_STEP_ROWS = {
    PeriodKind.YEAR: "year rows (YYYY)",
    PeriodKind.TERTIAL: "tertial rows (YYYYT1–T3)",
    PeriodKind.QUARTER: "quarter rows (YYYYQ1–Q4)",
    PeriodKind.MONTH: "month rows (YYYY-MM)",
}

# period kind codes of the internal ``_pk`` column
_PK_YEAR, _PK_STEP, _PK_BAD, _PK_KIND, _PK_EMPTY = 0, 1, 2, 3, 4
_PK = "_pk"
_ROW_OF = "_row:"  # long layout: source row of each variable's value


# ====================================================================== errors


@dataclass
class _Errors:
    """Collects errors with a sort key (sheet order, row, column order) and a total count."""

    file: str
    items: list[tuple[tuple[int, int, int], InputError]] = field(default_factory=list)
    total: int = 0

    def add(
        self,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        sheet: str | None = None,
        order: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """Record one error."""
        self.items.append(
            (order, InputError(reason, file=self.file, row=row, column=column, sheet=sheet))
        )
        self.total += 1

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        ordered = [e for _, e in sorted(self.items, key=lambda t: t[0])][:MAX_ERRORS]
        more = self.total - len(ordered)
        if more > 0:
            ordered.append(
                InputError(
                    f"{more} more error{'s' if more > 1 else ''} not shown "
                    f"(only the first {len(ordered)} are listed)",
                    file=self.file,
                )
            )
        raise InputErrors(ordered)


def _fail(reason: str, file: str, **kw: Any) -> InputErrors:
    return InputErrors([InputError(reason, file=file, **kw)])


# ====================================================================== headers


def normalise_header(text: object) -> str:
    """Header cell as text: BOM, surrounding spaces and a trailing newline removed."""
    if text is None:
        return ""
    return str(text).replace("\ufeff", "").strip()


def header_code(text: str) -> str:
    """The code in a ``label (code)`` header, else the text itself."""
    m = _LABELLED.match(text)
    return m.group("code") if m else text


@dataclass
class _Column:
    index: int  # 0-based position in the sheet
    header: str  # as written (normalised)
    key: str | None  # UNIT, PERIOD, NAME, VARIABLE, VALUE, IGNORED, a variable code; None: unknown


def _label_index(rb: LoadedRulebook) -> dict[str, str]:
    """Exact Chinese label -> variable code, for labels that are unique."""
    seen: dict[str, list[str]] = {}
    for code, v in rb.variables.items():
        seen.setdefault(v.label.strip(), []).append(code)
    return {label: codes[0] for label, codes in seen.items() if len(codes) == 1}


def _resolve(text: str, rb: LoadedRulebook, labels: dict[str, str]) -> str | None:
    if text in rb.variables:
        return text
    meta = META_HEADERS.get(text.casefold())
    if meta is not None:
        return meta
    m = _LABELLED.match(text)
    if m:
        code = m.group("code")
        if code in rb.variables:
            return code
        meta = META_HEADERS.get(code.casefold())
        if meta is not None:
            return meta
        label = m.group("label").strip()
        return META_HEADERS.get(label)
    if text in labels:
        return labels[text]
    lower = {c.casefold(): c for c in rb.variables}
    return lower.get(text.casefold())


def _suggest(text: str, rb: LoadedRulebook) -> str:
    candidates = [*rb.variables, *(v.label for v in rb.variables.values())]
    probe = header_code(text)
    close = difflib.get_close_matches(probe, candidates, n=1, cutoff=0.6)
    if not close:
        return ""
    hit = close[0]
    if hit not in rb.variables:
        hit = next(c for c, v in rb.variables.items() if v.label == hit)
    return f" (did you mean '{hit}', {rb.variables[hit].label}?)"


@dataclass
class _Header:
    """A classified header row."""

    columns: list[_Column]
    long: bool
    errors: list[tuple[str, str]]  # (column header, reason), all at row 1

    def find(self, key: str) -> _Column | None:
        return next((c for c in self.columns if c.key == key), None)

    def variables(self) -> list[_Column]:
        return [c for c in self.columns if c.key is not None and not _is_meta(c.key)]

    @property
    def has_unit_and_period(self) -> bool:
        return self.find(UNIT) is not None and self.find(PERIOD) is not None


def _is_meta(key: str) -> bool:
    return key in (UNIT, PERIOD, NAME, VARIABLE, VALUE, IGNORED)


def _classify(cells: Sequence[object], rb: LoadedRulebook) -> _Header:
    labels = _label_index(rb)
    columns: list[_Column] = []
    errors: list[tuple[str, str]] = []
    first_of: dict[str, _Column] = {}
    for i, raw in enumerate(cells):
        text = normalise_header(raw)
        if not text:
            columns.append(_Column(i, "", None))
            continue
        key = _resolve(text, rb, labels)
        col = _Column(i, text, key)
        if key is not None and key != IGNORED:
            if key in first_of:
                errors.append(
                    (
                        text,
                        f"duplicate column: '{first_of[key].header}' (column {_letter(first_of[key].index)}) "
                        f"and '{text}' (column {_letter(i)}) are both '{key}'",
                    )
                )
                col.key = IGNORED
            else:
                first_of[key] = col
        columns.append(col)
    long = VARIABLE in first_of or VALUE in first_of
    header = _Header(columns, long, errors)
    for col in columns:
        if col.key is None and col.header:
            if long:
                reason = "unknown column: a long-layout sheet has the columns unit, period, variable, value"
            else:
                reason = (
                    "unknown column: not a variable of the rulebook"
                    f"{_suggest(col.header, rb)}; columns are unit, period, an optional name "
                    "and variable codes, optionally written as '中文标签 (code)'"
                )
            errors.append((col.header, reason))
    if long:
        for col in header.variables():
            errors.append(
                (
                    col.header,
                    "a long-layout sheet (with variable and value columns) cannot also have "
                    "variable columns",
                )
            )
            col.key = IGNORED
        for key in (VARIABLE, VALUE):
            if key not in first_of:
                errors.append((key, f"missing column '{key}' of the long layout"))
    return header


def _letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based index."""
    s = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


# ====================================================================== sheets


@dataclass
class _Sheet:
    """One table of the file after reading: ``frame`` has ROW, UNIT, PERIOD and either the
    variable columns (wide) or VARIABLE, VALUE (long); value columns are Float64, an
    integer type (Int32 counts of a CSV file, Parquet integers) or String (String: still
    to be converted), the rest String."""

    name: str | None
    order: int
    header: _Header
    frame: pl.DataFrame
    #: key -> header text, for error messages
    headers: dict[str, str] = field(default_factory=dict)
    #: blank-header columns: (internal name, column letter)
    blanks: list[tuple[str, str]] = field(default_factory=list)
    #: rows of cells that are not numbers, per column key (not reported again as missing)
    bad_rows: dict[str, list[int]] = field(default_factory=dict)

    def column_name(self, key: str) -> str:
        return self.headers.get(key, key)


def _value_keys(header: _Header) -> list[_Column]:
    if header.long:
        return [c for c in header.columns if c.key == VALUE]
    return header.variables()


def _sheet_from_strings(
    name: str | None, order: int, header: _Header, rows: pl.DataFrame
) -> _Sheet:
    """``rows`` has ROW then one String column per header cell named ``c{index}``."""
    keep: dict[str, pl.Expr] = {ROW: pl.col(ROW)}
    headers: dict[str, str] = {}
    blanks: list[tuple[str, str]] = []
    for col in header.columns:
        src = pl.col(f"c{col.index}")
        if col.key is None and not col.header:
            bname = f"_blank{col.index}"
            keep[bname] = src
            blanks.append((bname, _letter(col.index)))
            continue
        if col.key is None or col.key in (NAME, IGNORED):
            continue
        keep[col.key] = src
        headers[col.key] = col.header
    frame = rows.select(**keep)
    return _Sheet(name, order, header, frame, headers, blanks)


def _padded(name: str) -> pl.Expr:
    """Whether a text of column ``name`` starts or ends with a space or a tab."""
    c = pl.col(name).str
    return c.starts_with(" ") | c.ends_with(" ") | c.starts_with("\t") | c.ends_with("\t")


def _strip_null(name: str) -> pl.Expr:
    """Column ``name`` without surrounding spaces, an empty text as null."""
    s = pl.col(name).str.strip_chars()
    return pl.when(s.str.len_bytes() == 0).then(None).otherwise(s).alias(name)


# ---------------------------------------------------------------------- CSV


def _csv_header(path: Path, file: str) -> tuple[list[str], str]:
    """Header cells and the encoding of a CSV file (utf8 or gb18030)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    try:
        text = head.decode("utf-8")
        encoding = "utf8"
    except UnicodeDecodeError as e:
        if e.start > len(head) - 4:  # cut in the middle of a character
            text = head[: e.start].decode("utf-8")
            encoding = "utf8"
        else:
            try:
                text = head.decode("gb18030")
                encoding = "gb18030"
            except UnicodeDecodeError:
                raise _fail("not a UTF-8 text file (save the CSV as UTF-8)", file) from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise _fail("the file is empty (expected a header row: unit,period,…)", file, row=1)
    first = next(csv.reader(io.StringIO(text)), [])
    return [normalise_header(c) for c in first], encoding


def _csv_source(path: Path, encoding: str, file: str) -> Path | bytes:
    """The file itself, or its text re-encoded as UTF-8 when it is GB18030."""
    if encoding == "utf8":
        return path
    raw = path.read_bytes()
    try:
        return raw.decode("gb18030").encode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _fail("not a UTF-8 text file (save the CSV as UTF-8)", file, row=line) from None


def _read_csv_sheet(path: Path, file: str, rb: LoadedRulebook) -> _Sheet:
    cells, encoding = _csv_header(path, file)
    header = _classify(cells, rb)
    if not header.has_unit_and_period:
        missing = [k for k in (UNIT, PERIOD) if header.find(k) is None]
        raise InputErrors(
            [
                InputError(
                    f"missing column '{k}' (the header row needs unit and period columns, "
                    "e.g. unit,period,<variable codes…>)",
                    file=file,
                    row=1,
                    column=k,
                )
                for k in missing
            ]
        )
    source = _csv_source(path, encoding, file)
    # fast path: explicit schema, value columns parsed by Polars as numbers; the columns
    # of integer variables (counts, wide layout) straight as Int32 (faster than Float64
    # and half the memory)
    schema: dict[str, pl.DataType] = {}
    wanted: list[int] = []
    headers: dict[str, str] = {}
    blanks: list[tuple[str, str]] = []
    value_cols = {c.index for c in _value_keys(header)}
    int_cols = (
        set()
        if header.long
        else {c.index for c in header.variables() if rb.variables[c.key or ""].integer}
    )
    for col in header.columns:
        if col.key is None and not col.header:
            name = f"_blank{col.index}"
            blanks.append((name, _letter(col.index)))
            schema[name] = pl.String()
            wanted.append(col.index)
            continue
        if col.key is None or col.key in (NAME, IGNORED):
            schema[f"_skip{col.index}"] = pl.String()
            continue
        if col.index in int_cols:
            schema[col.key] = pl.Int32()
        elif col.index in value_cols:
            schema[col.key] = pl.Float64()
        else:
            schema[col.key] = pl.String()
        headers[col.key] = col.header
        wanted.append(col.index)
    frame = _read_csv_typed(source, schema, wanted)
    if frame is None and int_cols:
        # a count written '3.0' (pandas does) or beyond Int32: every value column as
        # Float64 (whole numbers are checked with the other values)
        floats = {k: pl.Float64() if t == pl.Int32 else t for k, t in schema.items()}
        frame = _read_csv_typed(source, floats, wanted)
    if frame is None:
        # a cell that is not a number (or a malformed line): locate it on the text
        frame = _read_csv_strings(source, file, schema, wanted)
    frame = frame.with_columns(pl.col(ROW).cast(pl.Int64))
    return _Sheet(None, 0, header, frame, headers, blanks)


def _read_csv_typed(
    source: Path | bytes, schema: dict[str, pl.DataType], wanted: list[int]
) -> pl.DataFrame | None:
    """The CSV read by Polars with ``schema``, or None when a cell does not parse as its
    column's type (or a line is malformed)."""
    try:
        return pl.read_csv(
            source,
            has_header=False,
            skip_rows=1,
            schema=schema,
            columns=wanted,
            row_index_name=ROW,
            row_index_offset=2,
        )
    except pl.exceptions.PolarsError:
        return None


def _read_csv_strings(
    source: Path | bytes, file: str, schema: dict[str, pl.DataType], wanted: list[int]
) -> pl.DataFrame:
    """Error path: every column as text (value columns are converted later, cell by cell)."""
    text_schema = {k: pl.String() for k in schema}
    try:
        return pl.read_csv(
            source,
            has_header=False,
            skip_rows=1,
            schema=text_schema,
            columns=wanted,
            row_index_name=ROW,
            row_index_offset=2,
        )
    except pl.exceptions.PolarsError:
        pass
    # last resort: Python's csv module, which tells which record is malformed
    raw = source if isinstance(source, bytes) else source.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _fail("not valid UTF-8 text (save the CSV as UTF-8)", file, row=line) from None
    names = list(text_schema)
    width = len(names)
    errors = _Errors(file)
    data: dict[str, list[str | None]] = {n: [] for n in names}
    rows: list[int] = []
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    for n, rec in enumerate(reader, start=2):
        if len(rec) > width and any(c.strip() for c in rec[width:]):
            errors.add(
                f"{len(rec)} cells but the header has {width} columns (a comma inside a value?)",
                row=n,
                order=(0, n, 0),
            )
            continue
        rows.append(n)
        for i, name in enumerate(names):
            data[name].append(rec[i] if i < len(rec) else None)
    errors.raise_if_any()
    frame = pl.DataFrame({ROW: rows, **data}, schema={ROW: pl.Int64, **text_schema})
    keep = [names[i] for i in range(width) if i in set(wanted)]
    return frame.select(ROW, *keep)


# ---------------------------------------------------------------------- XLSX


def _cell_text(value: object, *, period: bool = False) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime | date):
        # Excel turns a typed 2022-03 into the date 2022-03-01
        if period and value.day == 1:
            return f"{value.year}-{value.month:02d}"
        return value.isoformat()
    return str(value)


def read_xlsx_rows(path: Path, file: str) -> list[tuple[str, list[tuple[int, list[object]]]]]:
    """Every sheet of a workbook: (sheet name, [(row number, cell values)]), skipping empty rows."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException…
        raise _fail(f"cannot open as an Excel workbook (.xlsx): {e}", file) from None
    out: list[tuple[str, list[tuple[int, list[object]]]]] = []
    try:
        for ws in wb.worksheets:
            rows: list[tuple[int, list[object]]] = []
            for n, values in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
                cells = list(values)
                if any(v is not None and (not isinstance(v, str) or v.strip()) for v in cells):
                    rows.append((n, cells))
            out.append((ws.title, rows))
    finally:
        wb.close()
    return out


#: the type attribute of a cell holding an Excel error (#DIV/0!, #N/A, …) in a worksheet's XML
_ERROR_CELL = (b' t="e"', b" t='e'")


class _Unreadable(Exception):
    """fastexcel read a sheet in an unexpected shape (read it with openpyxl instead)."""


def _has_error_cells(path: Path) -> bool:
    """Whether a worksheet of the workbook has an error cell (``t="e"``).

    fastexcel (calamine) reads error cells as empty, which would silently drop a
    ``#DIV/0!`` that a clerk's formula left in a value cell; such workbooks are
    read with openpyxl instead, which reports the cell as not a number.
    """
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                    continue
                data = z.read(name)
                if any(marker in data for marker in _ERROR_CELL):
                    return True
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        return False  # fastexcel reports what is wrong with the file
    return False


def _text_cells(name: str, *, period: bool = False) -> pl.Expr:
    """Text of cells as fastexcel renders it, made like openpyxl's values: booleans in
    upper case, dates in ISO form; a date on the 1st in the period column is the month
    (Excel turns a typed 2022-03 into the date 2022-03-01)."""
    c = pl.col(name)
    iso = c.str.replace(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$", "${1}T${2}")
    if period:
        iso = (
            pl.when(c.str.contains(r"^\d{4}-\d{2}-01(?: 00:00:00)?$"))
            .then(c.str.slice(0, 7))
            .otherwise(iso)
        )
    return pl.when(c.is_in(["true", "false"])).then(c.str.to_uppercase()).otherwise(iso).alias(name)


def _read_xlsx_sheets(path: Path, file: str, rb: LoadedRulebook) -> list[_Sheet]:
    """Every sheet whose row 1 is a header with unit and period columns, read by
    fastexcel (calamine, into Arrow and Polars): cells as text and value columns a
    second time as numbers (the text of a fractional number is rounded by fastexcel;
    the numbers are exact).  Falls back to openpyxl for workbooks with error cells
    or a sheet fastexcel cannot load."""
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        names = reader.sheet_names
    except fastexcel.FastExcelError as e:
        raise _fail(f"cannot open as an Excel workbook (.xlsx): {e}", file) from None
    if _has_error_cells(path):
        return _read_xlsx_sheets_openpyxl(path, file, rb)
    sheets: list[_Sheet] = []
    try:
        for order, title in enumerate(names):
            sheet = _fastexcel_sheet(reader, order, title, rb)
            if sheet is not None:
                sheets.append(sheet)
    except (fastexcel.FastExcelError, _Unreadable):
        return _read_xlsx_sheets_openpyxl(path, file, rb)
    return _some_sheets(sheets, file)


def _fastexcel_sheet(reader: Any, order: int, title: str, rb: LoadedRulebook) -> _Sheet | None:
    # header_row=None with skip_rows=0 keeps leading empty rows: frame row i is sheet row i+1
    ws = reader.load_sheet(order, header_row=None, skip_rows=0, dtypes="string")
    raw = ws.to_polars()
    if raw.width == 0 or raw.height == 0:
        return None
    # calamine drops leading empty columns: put them back so that letters are right
    info = ws.available_columns()
    offset = min(c.absolute_index for c in info)
    frame = raw.rename({c.name: f"c{c.absolute_index}" for c in info})
    if offset:
        frame = frame.select(
            *[pl.lit(None, pl.String).alias(f"c{i}") for i in range(offset)], pl.all()
        )
    width = frame.width
    cols = [f"c{i}" for i in range(width)]
    filled = pl.any_horizontal(
        [pl.col(c).is_not_null() & (pl.col(c).str.strip_chars() != "") for c in cols]
    )
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame = frame.filter(filled)
    if not frame.height or frame.item(0, ROW) != 1:
        return None
    header = _classify(list(frame.row(0))[1:], rb)
    if not header.has_unit_and_period:
        return None  # instructions or other sheets
    rows = frame.slice(1)
    period = header.find(PERIOD)
    text_cols = [
        _text_cells(c, period=period is not None and c == f"c{period.index}") for c in cols
    ]
    value_idx = [c.index for c in _value_keys(header)]
    if not value_idx:
        return _sheet_from_strings(title, order, header, rows.with_columns(text_cols))
    # use_columns takes absolute indices; the columns are named by relative ones
    ws_numbers = reader.load_sheet(
        order, header_row=None, skip_rows=0, dtypes="float", use_columns=value_idx
    )
    numbers = ws_numbers.to_polars()
    if numbers.height != raw.height:
        raise _Unreadable("fastexcel: sheet heights differ")  # pragma: no cover
    by_name = {c.name: c.absolute_index for c in ws_numbers.selected_columns}
    numbers = (
        numbers.rename({n: f"_f{by_name[n]}" for n in numbers.columns})
        .with_row_index(ROW, offset=1)
        .with_columns(pl.col(ROW).cast(pl.Int64))
    )
    rows = rows.join(numbers, on=ROW, how="left", maintain_order="left")
    # a value cell is its number; text that is not a number stays text (reported later)
    exprs: list[pl.Expr] = []
    flags = rows.select([_not_number(f"c{i}").any().alias(f"c{i}") for i in value_idx]).row(0)
    for i, bad in zip(value_idx, flags, strict=True):
        stripped = pl.col(f"c{i}").str.strip_chars()
        number = pl.coalesce(pl.col(f"_f{i}"), stripped.cast(pl.Float64, strict=False))
        if bad:
            exprs.append(
                pl.when(_not_number(f"c{i}"))
                .then(_text_cells(f"c{i}"))
                .otherwise(number.cast(pl.String))
                .alias(f"c{i}")
            )
        else:
            exprs.append(number.alias(f"c{i}"))
    value_set = set(value_idx)
    rows = rows.with_columns(
        *[e for e, c in zip(text_cols, cols, strict=True) if int(c[1:]) not in value_set], *exprs
    ).drop([f"_f{i}" for i in value_idx])
    return _sheet_from_strings(title, order, header, rows)


def _not_number(name: str) -> pl.Expr:
    """A cell with text that is not a number (ignoring surrounding spaces)."""
    s = pl.col(name).str.strip_chars()
    return s.is_not_null() & (s != "") & s.cast(pl.Float64, strict=False).is_null()


def _some_sheets(sheets: list[_Sheet], file: str) -> list[_Sheet]:
    if not sheets:
        raise _fail(
            "no sheet has a header row (row 1) with unit and period columns "
            "(单位代码 / 期间, or unit / period)",
            file,
            row=1,
        )
    return sheets


def _read_xlsx_sheets_openpyxl(path: Path, file: str, rb: LoadedRulebook) -> list[_Sheet]:
    """The workbook read cell by cell with openpyxl (slow; used for error cells, see below)."""
    sheets: list[_Sheet] = []
    for order, (title, rows) in enumerate(read_xlsx_rows(path, file)):
        if not rows or rows[0][0] != 1:
            continue
        header = _classify(rows[0][1], rb)
        if not header.has_unit_and_period:
            continue  # instructions or other sheets
        width = len(header.columns)
        period_index = header.find(PERIOD)
        pidx = period_index.index if period_index else -1
        data: dict[str, list[str | None]] = {f"c{i}": [] for i in range(width)}
        numbers: list[int] = []
        for n, cells in rows[1:]:
            numbers.append(n)
            for i in range(width):
                v = cells[i] if i < len(cells) else None
                data[f"c{i}"].append(_cell_text(v, period=i == pidx))
        frame = pl.DataFrame(
            {ROW: numbers, **data},
            schema={ROW: pl.Int64, **{k: pl.String for k in data}},
        )
        sheets.append(_sheet_from_strings(title, order, header, frame))
    return _some_sheets(sheets, file)


# ---------------------------------------------------------------------- Parquet


def _read_parquet_sheet(path: Path, file: str, rb: LoadedRulebook) -> _Sheet:
    from kaohe.io import prefetch

    try:
        raw = prefetch.take(path)
        if raw is None:
            raw = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _fail(f"cannot read as a Parquet file: {e}", file) from None
    header = _classify(raw.columns, rb)
    if not header.has_unit_and_period:
        missing = [k for k in (UNIT, PERIOD) if header.find(k) is None]
        raise InputErrors(
            [InputError(f"missing column '{k}'", file=file, row=1, column=k) for k in missing]
        )
    value_cols = {c.index for c in _value_keys(header)}
    exprs: list[pl.Expr] = [pl.int_range(2, raw.height + 2, dtype=pl.Int64).alias(ROW)]
    headers: dict[str, str] = {}
    blanks: list[tuple[str, str]] = []
    schema = raw.schema  # (each .schema builds a new object: once, not per column)
    for col, name in zip(header.columns, raw.columns, strict=True):
        src = pl.col(name)
        dtype = schema[name]
        if col.key is None and not col.header:
            bname = f"_blank{col.index}"
            exprs.append(src.cast(pl.String).alias(bname))
            blanks.append((bname, _letter(col.index)))
            continue
        if col.key is None or col.key in (NAME, IGNORED):
            continue
        headers[col.key] = col.header
        if col.index in value_cols and dtype == pl.Null:
            exprs.append(src.cast(pl.Float64).alias(col.key))
        elif col.index in value_cols and dtype.is_numeric():
            # kept as stored (integers are half the bytes); the engine casts where it computes
            exprs.append(src.alias(col.key))
        else:
            exprs.append(src.cast(pl.String).alias(col.key))
    return _Sheet(None, 0, header, raw.select(exprs), headers, blanks)


# ====================================================================== conversion


def _to_numbers(sheet: _Sheet, errors: _Errors) -> None:
    """Convert String value columns to Float64, reporting cells that are not numbers."""
    frame = sheet.frame
    schema = frame.schema
    string_cols = [
        k for k in frame.columns if k != ROW and schema[k] == pl.String and _is_value(sheet, k)
    ]
    meta = [k for k in (UNIT, PERIOD, VARIABLE) if k in frame.columns]
    frame = frame.with_columns([_strip_null(k) for k in meta + string_cols])
    if string_cols:
        converted = frame.with_columns(
            [pl.col(k).cast(pl.Float64, strict=False).alias(f"_num:{k}") for k in string_cols]
        )
        for k in string_cols:
            bad = converted.filter(pl.col(k).is_not_null() & pl.col(f"_num:{k}").is_null())
            if bad.height:
                sheet.bad_rows[k] = bad.get_column(ROW).to_list()
            for row, text in bad.select(ROW, k).head(MAX_ERRORS).iter_rows():
                errors.add(
                    f"'{text}' is not a number",
                    row=row,
                    column=sheet.column_name(k),
                    sheet=sheet.name,
                    order=(sheet.order, row, _col_order(sheet, k)),
                )
            if bad.height > MAX_ERRORS:
                errors.total += bad.height - MAX_ERRORS
        frame = converted.select(
            [pl.col(f"_num:{k}").alias(k) if k in string_cols else pl.col(k) for k in frame.columns]
        )
    sheet.frame = frame


def _is_value(sheet: _Sheet, key: str) -> bool:
    if sheet.header.long:
        return key == VALUE
    return not _is_meta(key) and not key.startswith("_")


def _col_order(sheet: _Sheet, key: str) -> int:
    for c in sheet.header.columns:
        if c.key == key:
            return c.index
    return 0


def _check_blanks(sheet: _Sheet, errors: _Errors) -> None:
    for name, letter in sheet.blanks:
        col = sheet.frame.get_column(name)
        filled = sheet.frame.filter(col.is_not_null() & (col.str.strip_chars() != ""))
        if filled.height:
            row = int(filled.get_column(ROW)[0])
            errors.add(
                f"column {letter} has values but no header (row {row}: '{filled.get_column(name)[0]}')",
                row=1,
                column=letter,
                sheet=sheet.name,
                order=(sheet.order, 1, 0),
            )
    if sheet.blanks:
        sheet.frame = sheet.frame.drop([b for b, _ in sheet.blanks])


# ---------------------------------------------------------------------- long layout


def _long_to_wide(sheet: _Sheet, rb: LoadedRulebook, errors: _Errors) -> pl.DataFrame:
    """Validate the long-only rules and pivot to wide, with a source-row column per variable."""
    frame = sheet.frame
    vcol = sheet.column_name(VARIABLE)
    # resolve variable names written as codes, labels or 'label (code)'
    labels = _label_index(rb)
    names = frame.get_column(VARIABLE).drop_nulls().unique().to_list()
    mapping: dict[str, str] = {}
    for name in names:
        key = _resolve(str(name), rb, labels)
        if key is not None and not _is_meta(key):
            mapping[name] = key
    frame = frame.with_columns(
        pl.col(VARIABLE).replace_strict(mapping, default=None, return_dtype=pl.String).alias("_var")
    )
    unknown = frame.filter(pl.col(VARIABLE).is_not_null() & pl.col("_var").is_null())
    for row, name in unknown.select(ROW, VARIABLE).head(MAX_ERRORS).iter_rows():
        errors.add(
            f"unknown variable '{name}'{_suggest(str(name), rb)}",
            row=row,
            column=vcol,
            sheet=sheet.name,
            order=(sheet.order, row, _col_order(sheet, VARIABLE)),
        )
    errors.total += max(unknown.height - MAX_ERRORS, 0)
    empty = frame.filter(pl.col(VARIABLE).is_null() & pl.col(VALUE).is_not_null())
    for (row,) in empty.select(ROW).head(MAX_ERRORS).iter_rows():
        errors.add(
            "empty variable name",
            row=row,
            column=vcol,
            sheet=sheet.name,
            order=(sheet.order, row, _col_order(sheet, VARIABLE)),
        )
    frame = frame.filter(pl.col("_var").is_not_null())
    # duplicate (unit, period, variable)
    triple = [UNIT, PERIOD, "_var"]
    dup = frame.filter(pl.struct(triple).is_duplicated())
    if dup.height:
        firsts = dup.group_by(triple, maintain_order=True).agg(pl.col(ROW).sort())
        for unit, period, var, rows in firsts.head(MAX_ERRORS).iter_rows():
            errors.add(
                f"unit '{unit}', period '{period}', variable '{var}' is given more than once "
                f"(rows {_join_rows(rows)})",
                row=rows[1],
                column=vcol,
                sheet=sheet.name,
                order=(sheet.order, rows[1], _col_order(sheet, VARIABLE)),
            )
        frame = frame.unique(subset=triple, keep="first", maintain_order=True)
    if frame.height == 0:
        return pl.DataFrame(schema={ROW: pl.Int64, UNIT: pl.String, PERIOD: pl.String})
    wide = frame.pivot(
        on="_var", index=[UNIT, PERIOD], values=[VALUE, ROW], aggregate_function="first"
    )
    present = frame.get_column("_var").unique().to_list()
    if len(present) == 1:  # pivot names columns after the variable alone
        only = present[0]
        wide = wide.rename(
            {f"{VALUE}_{only}": only, f"{ROW}_{only}": f"{_ROW_OF}{only}"}, strict=False
        )
    rename: dict[str, str] = {}
    for v in present:
        rename[f"{VALUE}_{v}"] = v
        rename[f"{ROW}_{v}"] = f"{_ROW_OF}{v}"
    wide = wide.rename({k: v for k, v in rename.items() if k in wide.columns})
    row_cols = [f"{_ROW_OF}{v}" for v in present]
    wide = wide.with_columns(pl.min_horizontal(row_cols).cast(pl.Int64).alias(ROW))
    for v in present:
        sheet.headers[v] = sheet.column_name(VALUE)
    return wide


def _join_rows(rows: Iterable[object]) -> str:
    rs = [str(r) for r in rows]
    return ", ".join(rs[:-1]) + " and " + rs[-1] if len(rs) > 1 else rs[0]


# ====================================================================== validation


@dataclass
class _Context:
    rb: LoadedRulebook
    file: str
    step: PeriodKind
    sheets: dict[str | None, _Sheet]
    long: bool

    def column(self, sheet: str | None, key: str) -> str:
        s = self.sheets.get(sheet)
        return s.column_name(key) if s else key

    def order(self, sheet: str | None, row: int, key: str) -> tuple[int, int, int]:
        s = self.sheets.get(sheet)
        if s is None:
            return (0, row, 0)
        return (s.order, row, _col_order(s, key))


def _period_codes(frame: pl.DataFrame, step: PeriodKind) -> tuple[pl.DataFrame, dict[str, str]]:
    """Add the period-kind column ``_pk`` (and normalise period texts).

    Returns the frame and, for bad periods, text -> reason.
    """
    uniques = frame.get_column(PERIOD).unique().to_list()
    allowed = {PeriodKind.YEAR, step}
    code: dict[str, int] = {}
    canon: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for text in uniques:
        if text is None:
            continue
        s = str(text).strip()
        if not s:
            code[text] = _PK_EMPTY
            continue
        try:
            p = Period.parse(s)
        except PeriodError as e:
            code[text] = _PK_BAD
            reasons[text] = str(e)
            continue
        if p.kind not in allowed:
            code[text] = _PK_KIND
            reasons[text] = (
                f"'{s}' is a {p.kind.value}; this rulebook takes the year (YYYY) for annual "
                f"variables and {_STEP_ROWS[step]} for flows"
            )
            continue
        code[text] = _PK_YEAR if p.kind is PeriodKind.YEAR else _PK_STEP
        canon[text] = str(p)
    canonical = all(canon.get(t) == t for t in code if code[t] in (_PK_YEAR, _PK_STEP))
    simple = canonical and all(c in (_PK_YEAR, _PK_STEP) for c in code.values())
    if simple and step is not PeriodKind.YEAR:
        # a canonical year is exactly 4 characters, a canonical step longer: no hashing needed
        pk = (
            pl.when(pl.col(PERIOD).is_null())
            .then(pl.lit(_PK_EMPTY, pl.UInt8))
            .otherwise((pl.col(PERIOD).str.len_bytes() != 4).cast(pl.UInt8))
        )
        return frame.with_columns(pk.alias(_PK)), reasons
    pk = pl.col(PERIOD).replace_strict(code, default=_PK_EMPTY, return_dtype=pl.UInt8)
    out = frame.with_columns(pk.alias(_PK))
    if not canonical:
        out = out.with_columns(
            pl.col(PERIOD).replace_strict(canon, default=pl.col(PERIOD), return_dtype=pl.String)
        )
    return out, reasons


#: column marking rows of parent units (units with children in the org file)
_PROW = "_parent_row"


def _masks(var: Variable, step: PeriodKind) -> tuple[pl.Expr, pl.Expr | None]:
    """(rows where the variable applies, rows where giving it is wrong or None).

    A unit-level variable applies to the rows of assessed units, a parent-level
    one (``level: parent``, e.g. street cadres) to the parent unit's own rows."""
    return _masks_of(var.level == "parent", var.kind, step)


@functools.cache
def _masks_of(parent: bool, kind: str, step: PeriodKind) -> tuple[pl.Expr, pl.Expr | None]:
    # (the same few expressions for every variable: built once, not per variable and read)
    year = pl.col(_PK) == _PK_YEAR
    stp = pl.col(_PK) == _PK_STEP
    level = pl.col(_PROW) if parent else ~pl.col(_PROW)
    if step is PeriodKind.YEAR:
        return year & level, None
    if kind == "annual":
        return year & level, stp
    return stp & level, year


def _fast_checks(
    frame: pl.DataFrame,
    rb: LoadedRulebook,
    step: PeriodKind,
    present: list[str],
    units: OrgUnits | None,
    positions: pl.Series | None = None,
) -> dict[str, Any]:
    """One vectorised pass: counts and extremes that are all zero / in range on clean data
    (and ``fill:v``, how many cells the default of variable v fills in)."""
    schema = frame.schema
    exprs: list[pl.Expr] = [
        pl.col(UNIT).null_count().alias("unit_null"),
        (pl.col(UNIT).str.len_bytes() == 0).sum().alias("unit_empty"),
        (pl.col(_PK) >= _PK_BAD).sum().alias("period_bad"),
        # duplicates: rows in increasing (unit, period) order (a unit's rows one after
        # another, its periods in order: the usual layout) are distinct without hashing
        _increasing(pl.lit(positions) if positions is not None else pl.col(UNIT)).alias(
            "increasing"
        ),
    ]
    if positions is not None:
        exprs.append(
            (pl.lit(positions).is_null() & pl.col(UNIT).is_not_null()).sum().alias("unit_unknown")
        )
    elif units is not None:
        codes = units.frame.get_column("code")
        # rows of a unit usually follow each other: test each run of equal codes once
        u = pl.col(UNIT)
        runs = u.filter(u.ne_missing(u.shift(1)))
        exprs.append((~runs.is_in(codes.implode())).sum().alias("unit_unknown"))
    for v in present:
        var = rb.variables[v]
        applies, wrong = _masks(var, step)
        c = pl.col(v)
        if wrong is not None:
            exprs.append((c.is_not_null() & wrong).sum().alias(f"wrong:{v}"))
        exprs.append(
            (c.is_null() & applies)
            .sum()
            .alias(f"{'missing' if var.default is None else 'fill'}:{v}")
        )
        # (the extremes also bound the sums the engine takes in integers: Dataset.magnitudes)
        exprs.append(c.min().alias(f"min:{v}"))
        exprs.append(c.max().alias(f"max:{v}"))
        dtype = schema[v]
        if dtype.is_float():
            # NaN and ±inf make the sum non-finite (one pass instead of is_nan + is_infinite)
            exprs.append(c.sum().is_finite().alias(f"finite:{v}"))
        if var.integer and not dtype.is_integer():
            # a count read as numbers with a fraction (XLSX, Parquet floats, long layout,
            # a CSV read as Float64): true on a value that is not whole (or NaN)
            f = c.cast(pl.Float64)
            exprs.append((f != f.floor()).any().alias(f"fraction:{v}"))
    stats = frame.select(exprs).row(0, named=True)
    if stats["increasing"]:
        stats["distinct"] = frame.height
    else:
        # distinct (unit, period) hashes; a collision only sends the file to the exact
        # check of the error path, which then finds nothing
        stats["distinct"] = frame.select(
            (pl.col(UNIT).hash(seed=1) ^ pl.col(PERIOD).hash(seed=2)).n_unique()
        ).item()
    return stats


def _increasing(unit: pl.Expr) -> pl.Expr:
    """Whether every row's (unit, period) is greater than the previous row's (``unit``:
    the unit's code, or its position in the org file)."""
    period = pl.col(PERIOD)
    before = unit.shift(1)
    later = (unit > before) | ((unit == before) & (period > period.shift(1)))
    return later.fill_null(True).all() & unit.is_not_null().all() & period.is_not_null().all()


def _bounds(var: Variable) -> tuple[float | None, float | None]:
    return var.min, var.max


def _is_clean(stats: dict[str, Any], rb: LoadedRulebook, present: list[str], n: int) -> bool:
    if stats["unit_null"] or stats["unit_empty"] or stats["period_bad"]:
        return False
    if stats["distinct"] != n or stats.get("unit_unknown", 0):
        return False
    for v in present:
        if stats.get(f"wrong:{v}", 0) or stats.get(f"missing:{v}", 0):
            return False
        if stats.get(f"finite:{v}") is False or stats.get(f"fraction:{v}"):
            return False
        lo, hi = _bounds(rb.variables[v])
        mn, mx = stats[f"min:{v}"], stats.get(f"max:{v}")
        if lo is not None and mn is not None and mn < lo:
            return False
        if hi is not None and mx is not None and mx > hi:
            return False
    return True


def _row_col(frame: pl.DataFrame, v: str) -> pl.Expr:
    """Source row of variable ``v``'s cell (long layout: that value's own row)."""
    own = f"{_ROW_OF}{v}"
    if own in frame.columns:
        return pl.coalesce(pl.col(own), pl.col(ROW)).alias(ROW)
    return pl.col(ROW)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _detailed_errors(
    frame: pl.DataFrame,
    ctx: _Context,
    present: list[str],
    absent_reported: set[str],
    reasons: dict[str, str],
    units: OrgUnits | None,
    errors: _Errors,
    bad_cells: pl.DataFrame,
) -> None:
    """Locate and describe every problem (error path only).

    ``bad_cells`` (_sheet, _row, _key) are the cells already reported as not numbers.
    """
    rb, step = ctx.rb, ctx.step

    def add_rows(
        bad: pl.DataFrame,
        key: str,
        reason_of: Any,
        extra: Sequence[str] = (),
        var: str | None = None,
    ) -> None:
        errors.total += max(bad.height - MAX_ERRORS, 0)
        cols = [ROW, SHEET, *extra]
        for rec in bad.select(cols).head(MAX_ERRORS).iter_rows(named=True):
            row, sheet = rec[ROW], rec[SHEET]
            errors.add(
                reason_of(rec),
                row=row,
                column=ctx.column(sheet, key if var is None else var),
                sheet=sheet,
                order=ctx.order(sheet, row, key if var is None else var),
            )

    # units
    add_rows(
        frame.filter(pl.col(UNIT).is_null() | (pl.col(UNIT).str.len_bytes() == 0)),
        UNIT,
        lambda r: "empty unit code",
    )
    if units is not None:
        codes = units.frame.get_column("code").implode()
        where = f" {units.file}" if units.file else ""
        add_rows(
            frame.filter(pl.col(UNIT).is_not_null() & ~pl.col(UNIT).is_in(codes)),
            UNIT,
            lambda r: f"unit '{r[UNIT]}' is not in the org-unit file{where}",
            extra=[UNIT],
        )
    # periods
    add_rows(
        frame.filter(pl.col(_PK) == _PK_EMPTY),
        PERIOD,
        lambda r: (
            "empty period (expected YYYY for the year row or a period such as "
            f"{_example_step(step)})"
        ),
    )
    add_rows(
        frame.filter(pl.col(_PK).is_in([_PK_BAD, _PK_KIND])),
        PERIOD,
        lambda r: reasons.get(r[PERIOD], f"'{r[PERIOD]}' is not a period"),
        extra=[PERIOD],
    )
    # duplicates (unit, period)
    keyed = frame.filter(pl.col(UNIT).is_not_null() & (pl.col(_PK) <= _PK_STEP))
    dup = keyed.filter(pl.struct(UNIT, PERIOD).is_duplicated())
    if dup.height:
        groups = dup.group_by([UNIT, PERIOD], maintain_order=True).agg(pl.col(ROW), pl.col(SHEET))
        errors.total += max(groups.height - MAX_ERRORS, 0)
        for unit, period, rows, sheets in groups.head(MAX_ERRORS).iter_rows():
            places = [
                f"{'sheet ' + repr(s) + ' ' if s is not None and len(set(sheets)) > 1 else ''}row {r}"
                for r, s in zip(rows, sheets, strict=True)
            ]
            errors.add(
                f"unit '{unit}' and period '{period}' appear more than once: {_join_rows(places)}",
                row=rows[-1],
                column=ctx.column(sheets[-1], PERIOD),
                sheet=sheets[-1],
                order=ctx.order(sheets[-1], rows[-1], PERIOD),
            )
    # values
    for v in present:
        var = rb.variables[v]
        applies, wrong = _masks(var, step)
        c = pl.col(v)
        sub = frame.select(_row_col(frame, v), SHEET, PERIOD, v, _PK)
        label = f"'{v}' ({var.label})"
        lo, hi = _bounds(var)
        bad_num = c.is_nan() | c.is_infinite()
        out_lo = (c < lo) if lo is not None else pl.lit(False)
        out_hi = (c > hi) if hi is not None else pl.lit(False)
        add_rows(
            sub.filter(c.is_not_null() & (bad_num | out_lo | out_hi)),
            v,
            lambda r, v=v, lo=lo, hi=hi: _range_reason(r[v], lo, hi),
            extra=[v],
        )
        if var.integer:
            # a count with a fraction (a value out of range or not finite is reported above)
            add_rows(
                sub.filter(c.is_not_null() & ~(bad_num | out_lo | out_hi) & (c != c.floor())),
                v,
                lambda r, v=v, var=var: _whole_reason(r[v], v, var),
                extra=[v],
            )
        if wrong is not None:
            if var.kind == "flow":

                def reason(r: dict[str, Any], label: str = label) -> str:
                    return (
                        f"{label} is a flow, reported on the {_STEP_ROWS[step]}; "
                        f"leave it empty on the year row {r[PERIOD]}"
                    )
            else:

                def reason(r: dict[str, Any], label: str = label) -> str:
                    return (
                        f"{label} is an annual variable, reported on the year row (YYYY); "
                        f"leave it empty on the {r[PERIOD]} row"
                    )

            add_rows(sub.filter(c.is_not_null() & wrong), v, reason, extra=[PERIOD])
        if var.default is None and v not in absent_reported:
            where = "year rows (YYYY)" if var.kind == "annual" else _STEP_ROWS[step]

            def missing(r: dict[str, Any], label: str = label, where: str = where) -> str:
                if ctx.long and r["_given"] is None:
                    return (
                        f"no value for {label} for unit '{r[UNIT]}', period '{r[PERIOD]}' "
                        "(the rulebook gives no default)"
                    )
                return (
                    f"missing value for {label}, required on {where} "
                    "(the rulebook gives no default)"
                )

            own = f"{_ROW_OF}{v}"
            given = pl.col(own) if own in frame.columns else pl.col(ROW)
            lacking = frame.filter(c.is_null() & applies).select(
                _row_col(frame, v), SHEET, UNIT, PERIOD, given.alias("_given")
            )
            already = bad_cells.filter(pl.col("_key").is_in([v, VALUE])).select(SHEET, ROW)
            if already.height:
                lacking = lacking.join(already, on=[SHEET, ROW], how="anti", nulls_equal=True)
            add_rows(lacking, v, missing, extra=[UNIT, PERIOD, "_given"])


def _example_step(step: PeriodKind) -> str:
    return {
        PeriodKind.YEAR: "2022",
        PeriodKind.TERTIAL: "2022T1",
        PeriodKind.QUARTER: "2022Q1",
        PeriodKind.MONTH: "2022-01",
    }[step]


def _range_reason(x: float, lo: float | None, hi: float | None) -> str:
    if x != x or x in (float("inf"), float("-inf")):
        return f"'{x}' is not a finite number"
    if lo is not None and x < lo:
        if lo == 0:
            return f"{_fmt(x)} is negative (must be ≥ 0)"
        return f"{_fmt(x)} is below the minimum {_fmt(lo)}"
    return f"{_fmt(x)} is above the maximum {_fmt(hi if hi is not None else x)}"


def _whole_reason(x: float, code: str, var: Variable) -> str:
    unit = f", {var.unit}" if var.unit else ""
    return f"'{_fmt(x)}' is not a whole number ({code} is a count{unit})"


# ====================================================================== entry point


def read_data(path: str | Path, rb: LoadedRulebook, units: OrgUnits | None = None) -> Dataset:
    """Read and validate a data file (CSV, XLSX or Parquet; wide or long layout).

    Returns a :class:`Dataset` whose frame has the columns unit, period (canonical
    text), _row, _sheet and one numeric column per variable of ``rb`` in the
    rulebook's order (Float64, or an integer type: the counts of a wide CSV file
    are read as Int32, Parquet integers are not converted), with each variable's
    default filled in on the rows where it applies.  A value of an ``integer``
    variable (a count) must be a whole number.  Raises :class:`InputErrors` listing every problem found.
    """
    p = Path(path)
    file = str(path)
    if not p.exists():
        raise _fail("no such file", file)
    if not p.is_file():
        raise _fail("not a file", file)
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            sheets = [_read_csv_sheet(p, file, rb)]
        elif suffix in (".xlsx", ".xlsm"):
            sheets = _read_xlsx_sheets(p, file, rb)
        elif suffix == ".parquet":
            sheets = [_read_parquet_sheet(p, file, rb)]
        else:
            raise _fail(f"unsupported file type '{p.suffix}' (use .csv, .xlsx or .parquet)", file)
    except PermissionError:
        raise _fail("cannot read the file (permission denied)", file) from None
    except OSError as e:
        raise _fail(f"cannot read the file: {e.strerror or e}", file) from None
    return _validate(sheets, rb, file, units)


def _validate(
    sheets: list[_Sheet], rb: LoadedRulebook, file: str, units: OrgUnits | None
) -> Dataset:
    errors = _Errors(file)
    step = rb.model.periods.step
    # header errors
    for sh in sheets:
        for column, reason in sh.header.errors:
            errors.add(reason, row=1, column=column, sheet=sh.name, order=(sh.order, 1, 0))
    # text -> numbers, blank-header columns, long -> wide
    frames: list[pl.DataFrame] = []
    for sh in sheets:
        _check_blanks(sh, errors)
        sheet_schema = sh.frame.schema
        if any(sheet_schema[k] == pl.String for k in sh.frame.columns if _is_value(sh, k)) or (
            sh.name is not None
        ):
            _to_numbers(sh, errors)
        frame = _long_to_wide(sh, rb, errors) if sh.header.long else sh.frame
        frame = frame.with_columns(pl.lit(sh.name, dtype=pl.String).alias(SHEET))
        frames.append(frame)
    long = any(sh.header.long for sh in sheets)
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    present = [v for v in rb.variables if v in frame.columns]
    # wide layout: a variable without default needs a column somewhere in the file
    absent_reported: set[str] = set()
    if not long:
        for v in rb.variables:
            if v not in frame.columns and rb.variables[v].default is None:
                absent_reported.add(v)
                var = rb.variables[v]
                errors.add(
                    f"missing column for {var.kind} variable '{v}' ({var.label}); add a column "
                    f"headed '{v}' or '{var.label} ({v})'",
                    row=1,
                    column=v,
                    sheet=sheets[0].name if len(sheets) == 1 else None,
                    order=(0, 1, 10_000 + list(rb.variables).index(v)),
                )
    frame = frame.with_columns(pl.col(UNIT).cast(pl.String))
    # each row's unit's position in the org file: one lookup per run of rows of a unit,
    # reused for the checks below and kept for scoring and explaining (Dataset.index).
    # Its Polars kernels run on one core, as do the padding check and the period coding
    # below: the lookup runs on a second thread meanwhile (Polars releases the GIL), for
    # the unit column as read, and is made again only if that column changes here
    org = units if units is not None and units.codes_unique() else None
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(org.positions, frame.get_column(UNIT)) if org is not None else None
        changed = False
        # unit codes are compared without surrounding spaces (stripped only when there
        # are any)
        if frame.height and frame.select(_padded(UNIT).any()).item():
            frame = frame.with_columns(pl.col(UNIT).str.strip_chars())
            changed = True
        # rows with nothing at all (trailing ',,,,' lines of a spreadsheet export) are
        # skipped
        if frame.get_column(UNIT).null_count() or frame.get_column(PERIOD).null_count():
            frame = frame.with_columns(_strip_null(UNIT), _strip_null(PERIOD))
            everything = [
                c for c in frame.columns if c not in (ROW, SHEET) and not c.startswith("_")
            ]
            frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in everything]))
            changed = True
        if frame.height == 0 and not errors:
            errors.add(
                "no data rows below the header",
                row=2,
                sheet=sheets[0].name if len(sheets) == 1 else None,
            )
        frame, reasons = _period_codes(frame, step)
        positions = None
        if org is not None and ahead is not None:
            positions = ahead.result() if not changed else org.positions(frame.get_column(UNIT))
    frame = frame.with_columns(_parent_rows(frame, units, positions).alias(_PROW))
    ctx = _Context(rb, file, step, {sh.name: sh for sh in sheets}, long)
    stats = _fast_checks(frame, rb, step, present, units, positions)
    if errors or not _is_clean(stats, rb, present, frame.height):
        # the error path compares and prints values as Float64
        frame = frame.with_columns(
            [
                pl.col(v).cast(pl.Float64)
                for v, t in frame.schema.items()
                if v in present and t != pl.Float64
            ]
        )
        bad_cells = pl.DataFrame(
            [
                (sh.name, row, key)
                for sh in sheets
                for key, rows in sh.bad_rows.items()
                for row in rows
            ],
            schema={SHEET: pl.String, ROW: pl.Int64, "_key": pl.String},
            orient="row",
        )
        _detailed_errors(frame, ctx, present, absent_reported, reasons, units, errors, bad_cells)
        if long:
            _long_missing_check(frame, rb, step, present, errors, ctx)
        # nothing found (a hash collision in the duplicate check): the data is clean
        errors.raise_if_any()
    ds = _dataset(frame, rb, step, file, stats)
    if units is not None and positions is not None:
        ds.index = UnitIndex(ds.frame, units.frame, positions)
    return ds


def _parent_rows(
    frame: pl.DataFrame, units: OrgUnits | None, positions: pl.Series | None
) -> pl.Expr | pl.Series:
    """Whether each row is a parent unit's own row (null where the unit is null)."""
    if units is None or units.frame.get_column("parent").null_count() == units.frame.height:
        return pl.lit(False)
    if positions is None:
        parents = units.frame.get_column("parent").drop_nulls().unique()
        return pl.col(UNIT).is_in(parents.implode())
    own = units.is_parent().gather(positions).fill_null(False)
    if frame.get_column(UNIT).null_count() == 0:
        return own
    return pl.when(pl.col(UNIT).is_null()).then(None).otherwise(pl.lit(own))


def _long_missing_check(
    frame: pl.DataFrame,
    rb: LoadedRulebook,
    step: PeriodKind,
    present: list[str],
    errors: _Errors,
    ctx: _Context,
) -> None:
    """Long layout: a variable without default with no row at all in the file."""
    for v, var in rb.variables.items():
        if v in present or var.default is not None:
            continue
        applies, _ = _masks(var, step)
        bad = frame.filter(applies)
        errors.total += max(bad.height - MAX_ERRORS, 0)
        for row, sheet, unit, period in (
            bad.select(ROW, SHEET, UNIT, PERIOD).head(MAX_ERRORS).iter_rows()
        ):
            errors.add(
                f"no value for '{v}' ({var.label}) for unit '{unit}', period '{period}' "
                "(the rulebook gives no default)",
                row=row,
                column=ctx.column(sheet, VARIABLE),
                sheet=sheet,
                order=ctx.order(sheet, row, VARIABLE),
            )


def _dataset(
    frame: pl.DataFrame,
    rb: LoadedRulebook,
    step: PeriodKind,
    file: str,
    stats: dict[str, Any] | None = None,
) -> Dataset:
    """The validated frame as a Dataset: variable columns as read (integers stay integers:
    the engine casts where it computes), defaults filled in where a cell needs one
    (``stats``: the counts of :func:`_fast_checks`, which tell where none does).

    Columns are neither copied nor rechunked: every column of a file read keeps the same
    chunks, so filters and selects need not realign them."""
    schema = frame.schema
    out: list[pl.Expr] = [
        pl.col(UNIT).cast(pl.String),
        pl.col(PERIOD).cast(pl.String),
        pl.col(ROW).cast(pl.Int64),
        pl.col(SHEET).cast(pl.String),
    ]
    for v, var in rb.variables.items():
        if v not in frame.columns:
            c = pl.lit(None, dtype=pl.Float64)
            if var.default is not None:
                applies, _ = _masks(var, step)
                c = pl.when(applies).then(pl.lit(float(var.default))).otherwise(c)
            out.append(c.alias(v))
            continue
        dtype = schema[v]
        c = pl.col(v)
        if not (dtype.is_integer() or dtype == pl.Float64):
            c = c.cast(pl.Float64)  # Float32, Decimal…: computed as Float64
            dtype = pl.Float64()
        if var.default is not None and (stats is None or stats.get(f"fill:{v}", 1)):
            applies, _ = _masks(var, step)
            default = float(var.default)
            fits = dtype.is_integer() and default.is_integer() and _fits(int(default), dtype)
            if not fits:
                c = c.cast(pl.Float64)
            fill = pl.lit(int(default), dtype=dtype) if fits else pl.lit(default)
            c = pl.when(applies & c.is_null()).then(fill).otherwise(c)
        out.append(c.alias(v))
    return Dataset(
        frame=frame.select(out),
        file=file,
        variables=list(rb.variables),
        magnitudes=None if stats is None else _magnitudes(stats, rb, list(frame.columns)),
    )


def _magnitudes(stats: dict[str, Any], rb: LoadedRulebook, columns: list[str]) -> dict[str, float]:
    """The largest absolute value in each variable's column of the dataset (given values
    and defaults filled in), from the extremes of :func:`_fast_checks`."""
    out: dict[str, float] = {}
    for v, var in rb.variables.items():
        values = [stats.get(f"min:{v}"), stats.get(f"max:{v}")] if v in columns else []
        if var.default is not None:
            values.append(var.default)
        out[v] = max((abs(float(x)) for x in values if x is not None), default=0.0)
    return out


_INT_BITS: dict[type[pl.DataType], int] = {
    pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64,
    pl.UInt8: 8, pl.UInt16: 16, pl.UInt32: 32, pl.UInt64: 64,
}  # fmt: skip


def _fits(value: int, dtype: pl.DataType) -> bool:
    """Whether an integer can be stored in an integer column of ``dtype``."""
    n = _INT_BITS.get(type(dtype), 0)
    if not n:
        return False
    if dtype.is_signed_integer():
        return -(2 ** (n - 1)) <= value < 2 ** (n - 1)
    return 0 <= value < 2**n
