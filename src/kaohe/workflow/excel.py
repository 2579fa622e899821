"""The Excel round trip of a group's (township's / street's) data for a period.

- :func:`template_bytes`: the data-entry workbook of :mod:`kaohe.io.template`
  (same sheets, headers ``中文标签 (code)``, number validation, instructions),
  pre-filled with the group's units and their stored values.
- :func:`preview_upload`: read the workbook back with :func:`kaohe.io.read.read_data`
  (every file error by sheet, row and column), then compare with the store: every
  value that would change (old → new), every permission / lock / period problem
  by sheet, row and column.  Nothing is written.
- :func:`stash` / :func:`load_stash`: the validated values are kept server-side
  under a random token bound to the user, group and period until confirmed;
  confirming re-plans against the store and applies the whole upload in one
  transaction (:func:`kaohe.workflow.data.apply_plan`) or nothing.

An empty cell means "not given": it leaves a stored value unchanged (values are
cleared in the entry form).  Variables without a default may be left empty here;
completeness is checked when the data is submitted.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from sqlalchemy.orm import Session

from kaohe.errors import InputError, InputErrors
from kaohe.io import template as tpl
from kaohe.io.dataset import PERIOD, ROW, SHEET, UNIT
from kaohe.io.read import read_data
from kaohe.periods import Period, PeriodError, PeriodKind
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.store.models import OrgUnit, User
from kaohe.workflow.audit import fmt_value
from kaohe.workflow.data import (
    COUNT_UNITS,
    GIVEN_SCHEMA,
    ImportPlan,
    existing_frame,
    plan_import,
)
from kaohe.workflow.scoring import rulebook_of
from kaohe.workflow.units import NotFound, org_units_for_group

#: stashed uploads expire after this many seconds
STASH_TTL = 3600
#: changes listed on a preview page at most
MAX_LISTED = 10_000


def upload_dir() -> Path:
    d = Path(os.environ.get("KAOHE_UPLOAD_DIR") or Path(tempfile.gettempdir()) / "kaohe-uploads")
    d.mkdir(parents=True, exist_ok=True)
    return d


# ====================================================================== periods and units


def group_period(rb: LoadedRulebook, text: str) -> Period:
    """A period for a group's workbook: the year, or a period made of the rulebook's steps."""
    try:
        p = Period.parse(text)
    except PeriodError as e:
        raise NotFound(str(e)) from None
    step = rb.model.periods.step
    if str(p) != text.strip():
        raise NotFound(f"'{text}' is not a period in canonical form (e.g. {p})")
    if p.kind is not PeriodKind.YEAR and step is not PeriodKind.YEAR:
        try:
            p.subperiods(step)
        except PeriodError:
            raise NotFound(
                f"期间 '{p}' 不由方案 {rb.code} 的报送周期组成 (not made of {step.value}s)"
            ) from None
    elif p.kind is not PeriodKind.YEAR:
        raise NotFound(f"方案 {rb.code} 按年报送，请用年份 (the rulebook reports by year)")
    return p


def _in_period(p: Period, row_period: Period) -> bool:
    if row_period.kind is PeriodKind.YEAR:
        return row_period.year == p.year
    return p.contains(row_period)


def _has_parent_vars(rb: LoadedRulebook) -> bool:
    return any(v.level == "parent" for v in rb.variables.values())


# ====================================================================== template


def template_bytes(session: Session, group: OrgUnit, period: str) -> bytes:
    """The group's data-entry workbook for ``period``, pre-filled with stored values."""
    _, rb = rulebook_of(session, group)
    p = group_period(rb, period)
    layouts = tpl._layouts(rb, p)
    members: list[OrgUnit] = list(group.children)
    parent_vars = _has_parent_vars(rb)
    if parent_vars:
        members.append(group)
    periods = sorted({str(q) for lay in layouts for q in lay.periods})
    have = existing_frame(session, [u.id for u in members], periods)
    values: dict[tuple[int, str, str], float] = {
        (u, q, v): x
        for u, q, v, x in have.select("unit_id", "period", "variable", "old").iter_rows()
    }
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    try:
        head = wb.add_format(
            {
                "bold": True,
                "text_wrap": True,
                "valign": "vcenter",
                "align": "center",
                "bg_color": "#DDEBF7",
                "border": 1,
            }
        )
        text = wb.add_format({"num_format": "@", "border": 1, "bg_color": "#F2F2F2"})
        cell = wb.add_format({"border": 1})
        for lay in layouts:
            ws = wb.add_worksheet(lay.name)
            headers = [tpl.UNIT_HEADER, tpl.NAME_HEADER, tpl.PERIOD_HEADER] + [
                tpl.variable_header(c, rb.variables[c]) for c in lay.variables
            ]
            ws.set_row(0, 48)
            for j, h in enumerate(headers):
                ws.write_string(0, j, h, head)
            ws.set_column(0, 0, 14, text)
            width = max([14, *(tpl._display_width(u.name) + 2 for u in members)])
            ws.set_column(1, 1, width)
            ws.set_column(2, 2, 10, text)
            for j in range(3, len(headers)):
                ws.set_column(j, j, min(max(tpl._display_width(headers[j]) // 2 + 2, 12), 24), cell)
            ws.freeze_panes(1, 3)
            own_row = any(rb.variables[c].level == "parent" for c in lay.variables)
            r = 1
            for u in members:
                if u is group and not own_row:
                    continue
                for q in lay.periods:
                    ws.write_string(r, 0, u.code, text)
                    ws.write_string(r, 1, u.name)
                    ws.write_string(r, 2, str(q), text)
                    for j, code in enumerate(lay.variables, start=3):
                        x = values.get((u.id, str(q), code))
                        if x is not None:
                            ws.write_number(r, j, x, cell)
                    r += 1
            last = r - 1
            if last >= 1:
                for j, code in enumerate(lay.variables, start=3):
                    ws.data_validation(1, j, last, j, tpl._validation(rb.variables[code]))
                ws.autofilter(0, 0, last, len(headers) - 1)
        tpl._write_help(wb, rb, p, layouts, head, has_units=True)
        wb.worksheets()[0].activate()
    finally:
        wb.close()
    return out.getvalue()


def template_filename(group: OrgUnit, period: str) -> str:
    return f"{group.code}_{period}_填报表.xlsx"


# ====================================================================== upload


@dataclass
class UploadError:
    sheet: str | None
    row: int | None
    column: str | None
    reason: str


@dataclass
class UploadPreview:
    group: OrgUnit
    period: Period
    filename: str
    errors: list[UploadError] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # listed (≤ MAX_LISTED)
    n_changes: int = 0
    inserts: int = 0
    updates: int = 0
    unchanged: int = 0
    plan: ImportPlan | None = None
    given: pl.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _lenient(rb: LoadedRulebook) -> LoadedRulebook:
    """The rulebook with NaN as every variable's default: an empty cell reads as NaN
    (given values are always finite), and no cell is required in an upload."""
    out = copy.copy(rb)
    out.__dict__["variables"] = {
        c: v.model_copy(update={"default": math.nan}) for c, v in rb.variables.items()
    }
    return out


def read_upload(
    session: Session, group: OrgUnit, period: str, path: Path, filename: str
) -> tuple[Period, pl.DataFrame | None, list[UploadError]]:
    """Read an uploaded workbook: the given values as a long frame (``GIVEN_SCHEMA`` +
    _sheet, _row, column), or the errors of the file."""
    _, rb = rulebook_of(session, group)
    p = group_period(rb, period)
    units = org_units_for_group(group)
    try:
        ds = read_data(path, _lenient(rb), units)
    except InputErrors as e:
        return p, None, [_upload_error(x, filename) for x in e.errors]
    variables = list(rb.variables)
    long = (
        ds.frame.select(UNIT, PERIOD, ROW, SHEET, *variables)
        .unpivot(index=[UNIT, PERIOD, ROW, SHEET], variable_name="variable", value_name="value")
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    )
    ids = {u.code: u.id for u in [group, *group.children]}
    headers = {c: tpl.variable_header(c, v) for c, v in rb.variables.items()}
    long = long.with_columns(
        pl.col(UNIT).replace_strict(ids, default=None, return_dtype=pl.Int64).alias("unit_id"),
        pl.col("variable").replace_strict(headers, return_dtype=pl.String).alias("column"),
    )
    errors: list[UploadError] = []
    # rows outside the period of the workbook
    row_periods = long.get_column(PERIOD).unique().to_list()
    outside = [q for q in row_periods if not _in_period(p, Period.parse(q))]
    if outside:
        bad = (
            long.filter(pl.col(PERIOD).is_in(outside))
            .unique([SHEET, ROW], keep="first", maintain_order=True)
            .sort(SHEET, ROW)
        )
        for sheet, row, q in bad.select(SHEET, ROW, PERIOD).iter_rows():
            errors.append(
                UploadError(
                    sheet,
                    row,
                    tpl.PERIOD_HEADER,
                    f"期间 '{q}' 不属于 {p}（本次上传的期间）(period outside the upload's period {p})",
                )
            )
    # unit-level variables on the group's own rows and parent-level ones on units' rows
    levels = {c: v.level for c, v in rb.variables.items()}
    long = long.with_columns(
        pl.col("variable").replace_strict(levels, return_dtype=pl.String).alias("_level")
    )
    wrong_level = long.filter(
        ((pl.col(UNIT) == group.code) & (pl.col("_level") == "unit"))
        | ((pl.col(UNIT) != group.code) & (pl.col("_level") == "parent"))
    )
    for sheet, row, col, unit, var in wrong_level.select(
        SHEET, ROW, "column", UNIT, "variable"
    ).iter_rows():
        where = "本级单位自身" if levels[var] == "parent" else "被考核单位"
        errors.append(
            UploadError(
                sheet,
                row,
                col,
                f"'{var}' 只由{where}填报，单位 '{unit}' 不填 (does not apply to unit '{unit}')",
            )
        )
    # whole numbers for counts
    counts = [c for c, v in rb.variables.items() if v.unit in COUNT_UNITS]
    fractional = long.filter(
        pl.col("variable").is_in(counts) & (pl.col("value") != pl.col("value").round(0))
    )
    for sheet, row, col, var, x in fractional.select(
        SHEET, ROW, "column", "variable", "value"
    ).iter_rows():
        errors.append(
            UploadError(
                sheet,
                row,
                col,
                f"{x} 不是整数：{rb.variables[var].unit}数须为整数 (a count must be a whole number)",
            )
        )
    long = long.drop("_level").rename({UNIT: "unit", PERIOD: "period"})
    return p, long.select(*GIVEN_SCHEMA, SHEET, ROW, "column"), errors


def _upload_error(e: InputError, filename: str) -> UploadError:
    reason = e.reason
    return UploadError(e.sheet, e.row, e.column, reason)


def preview_upload(
    session: Session,
    user: User,
    group: OrgUnit,
    period: str,
    path: Path,
    filename: str,
) -> UploadPreview:
    """Dry run of an uploaded workbook: errors by sheet, row and column, or the changes."""
    p, given, errors = read_upload(session, group, period, path, filename)
    preview = UploadPreview(group, p, filename, errors=errors)
    if given is None:
        return preview
    return plan_preview(session, user, preview, given)


def plan_preview(
    session: Session, user: User, preview: UploadPreview, given: pl.DataFrame
) -> UploadPreview:
    plan = plan_import(session, user, given)
    for sheet, row, col, reason in (
        plan.conflicts.unique([SHEET, ROW, "reason"], keep="first", maintain_order=True)
        .sort(SHEET, ROW)
        .select(SHEET, ROW, "column", "reason")
        .iter_rows()
    ):
        preview.errors.append(UploadError(sheet, row, col, reason))
    preview.errors.sort(key=lambda e: (e.sheet or "", e.row or 0))
    preview.plan = plan
    preview.given = given
    preview.n_changes = plan.changes.height
    preview.inserts = plan.inserts
    preview.updates = plan.updates
    preview.unchanged = plan.unchanged
    rb = rulebook_of(session, preview.group)[1]
    names = {u.code: u.name for u in [preview.group, *preview.group.children]}
    labels = {c: v.label for c, v in rb.variables.items()}
    listed = plan.changes.head(MAX_LISTED).sort("unit", "period", "variable", maintain_order=True)
    preview.changes = [
        {
            "unit": r["unit"],
            "name": names.get(r["unit"], ""),
            "period": r["period"],
            "variable": r["variable"],
            "label": labels.get(r["variable"], r["variable"]),
            "old": r["old"],
            "new": r["value"],
            "old_text": fmt_value(r["old"]),
            "new_text": fmt_value(r["value"]),
            "sheet": r[SHEET],
            "row": r[ROW],
        }
        for r in listed.iter_rows(named=True)
    ]
    return preview


# ====================================================================== stash


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def stash(given: pl.DataFrame, user: User, group: OrgUnit, period: str, filename: str) -> str:
    """Keep validated values server-side until confirmed; returns the token."""
    _sweep()
    token = secrets.token_urlsafe(24)
    d = upload_dir()
    given.write_parquet(d / f"{token}.parquet")
    meta = {
        "user_id": user.id,
        "group": group.code,
        "period": period,
        "filename": filename,
        "at": time.time(),
    }
    (d / f"{token}.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return token


def load_stash(token: str, user: User, group: OrgUnit, period: str) -> tuple[pl.DataFrame, str]:
    """The values stashed under ``token`` by this user for this group and period."""
    if not _TOKEN.match(token or ""):
        raise NotFound("上传已失效，请重新上传 (unknown upload; upload the file again)")
    d = upload_dir()
    meta_path = d / f"{token}.json"
    if not meta_path.exists():
        raise NotFound("上传已失效，请重新上传 (unknown or expired upload; upload the file again)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if (
        meta.get("user_id") != user.id
        or meta.get("group") != group.code
        or meta.get("period") != period
        or time.time() - float(meta.get("at", 0)) > STASH_TTL
    ):
        raise NotFound("上传已失效，请重新上传 (unknown or expired upload; upload the file again)")
    return pl.read_parquet(d / f"{token}.parquet"), str(meta.get("filename", ""))


def drop_stash(token: str) -> None:
    if not _TOKEN.match(token or ""):
        return
    for suffix in (".json", ".parquet"):
        (upload_dir() / f"{token}{suffix}").unlink(missing_ok=True)


def _sweep() -> None:
    """Remove expired stashes."""
    now = time.time()
    for f in upload_dir().glob("*.json"):
        try:
            if now - f.stat().st_mtime > STASH_TTL:
                drop_stash(f.stem)
        except OSError:
            pass
