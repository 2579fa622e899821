"""Payment approvals file: ``unit,period,reviewed_by,approved_by`` (CSV or XLSX).

A line is released only after the community director's review (reviewed_by)
and the street deputy director's approval (approved_by), in that order.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kaohe.errors import InputError, InputErrors
from kaohe.periods import Period, PeriodError

COLUMNS = ("unit", "period", "reviewed_by", "approved_by")


def read_approvals(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    file = str(p)
    if not p.is_file():
        raise InputErrors([InputError("file not found", file=file)])
    try:
        if p.suffix.lower() == ".xlsx":
            df = pl.read_excel(p, infer_schema_length=0)
        else:
            df = pl.read_csv(p, infer_schema_length=0, encoding="utf8-lossy")
    except Exception as e:  # a file polars cannot parse at all
        raise InputErrors([InputError(f"cannot read: {e}", file=file)]) from None
    df = df.rename({c: c.strip().lstrip("\ufeff") for c in df.columns})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputErrors(
            [
                InputError(
                    f"missing column (expected {', '.join(COLUMNS)})", file=file, row=1, column=c
                )
                for c in missing
            ]
        )
    df = df.select(
        *[pl.col(c).cast(pl.Utf8).str.strip_chars().replace("", None).alias(c) for c in COLUMNS]
    )
    errors: list[InputError] = []
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(df.iter_rows(named=True), start=2):
        if not row["unit"]:
            errors.append(InputError("empty unit code", file=file, row=i, column="unit"))
        try:
            Period.parse(row["period"])
        except PeriodError as e:
            errors.append(InputError(str(e), file=file, row=i, column="period"))
        if row["approved_by"] and not row["reviewed_by"]:
            errors.append(
                InputError(
                    "approved before review: the community director reviews first (reviewed_by)",
                    file=file,
                    row=i,
                    column="reviewed_by",
                )
            )
        key = (row["unit"] or "", row["period"] or "")
        if key in seen:
            errors.append(
                InputError(
                    f"duplicate (unit, period), first on row {seen[key]}",
                    file=file,
                    row=i,
                    column="unit",
                )
            )
        seen.setdefault(key, i)
    if errors:
        raise InputErrors(errors)
    return df
