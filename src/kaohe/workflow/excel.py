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
from typing import Any, NamedTuple

import polars as pl
import xlsxwriter
from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.errors import InputError, InputErrors
from kaohe.io import template as tpl
from kaohe.io.dataset import PERIOD, ROW, SHEET, UNIT, OrgUnits
from kaohe.io.read import read_data
from kaohe.periods import Period, PeriodError, PeriodKind
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.store.models import OrgUnit, User
from kaohe.workflow.audit import fmt_value
from kaohe.workflow.data import (
    GIVEN_SCHEMA,
    ImportPlan,
    PlanReuse,
    existing_frame,
    plan_import,
)
from kaohe.workflow.scoring import rulebook_of
from kaohe.workflow.units import NotFound

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


class Member(NamedTuple):
    id: int
    code: str
    name: str


def group_members(session: Session, group: OrgUnit) -> list[Member]:
    """The group's units (id, code, name) in their order, by one Core query (no ORM
    objects: a township has thousands of villages)."""
    t = OrgUnit.__table__
    rows = session.execute(
        select(t.c.id, t.c.code, t.c.name)
        .where(t.c.parent_id == group.id)
        .order_by(t.c.sort, t.c.code)
    ).all()
    return [Member(i, c, n) for i, c, n in rows]


def _units_frame(group: OrgUnit, members: list[Member]) -> OrgUnits:
    """The engine's org units of the group (as :func:`org_units_for_group`)."""
    frame = pl.DataFrame(
        {
            "code": [group.code, *(m.code for m in members)],
            "name": [group.name, *(m.name for m in members)],
            "parent": [None, *([group.code] * len(members))],
        },
        schema={"code": pl.String, "name": pl.String, "parent": pl.String},
    )
    return OrgUnits(frame, file=f"数据库:{group.code}")


def _has_parent_vars(rb: LoadedRulebook) -> bool:
    return any(v.level == "parent" for v in rb.variables.values())


# ====================================================================== template


def template_bytes(session: Session, group: OrgUnit, period: str) -> bytes:
    """The group's data-entry workbook for ``period``, pre-filled with stored values."""
    _, rb = rulebook_of(session, group)
    p = group_period(rb, period)
    layouts = tpl._layouts(rb, p)
    members = group_members(session, group)
    parent_vars = _has_parent_vars(rb)
    if parent_vars:
        members.append(Member(group.id, group.code, group.name))
    periods = sorted({str(q) for lay in layouts for q in lay.periods})
    have = existing_frame(session, [u.id for u in members], periods)
    # stored values per (unit, period) row, one column per variable
    wide = (
        have.pivot(on="variable", index=["unit_id", "period"], values="old")
        if have.height
        else pl.DataFrame(schema={"unit_id": pl.Int64, "period": pl.String})
    )

    def rows(lay: tpl._Layout) -> list[tpl.TemplateRow]:
        own_row = any(rb.variables[c].level == "parent" for c in lay.variables)
        cols = [
            pl.col(c) if c in wide.columns else pl.lit(None, pl.Float64).alias(c)
            for c in lay.variables
        ]
        stored = {
            (u, q): vals for u, q, *vals in wide.select("unit_id", "period", *cols).iter_rows()
        }
        return [
            (u.code, u.name, q, stored.get((u.id, q), ()))
            for u in members
            if own_row or u.id != group.id
            for q in map(str, lay.periods)
        ]

    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    try:
        tpl.write_template_sheets(wb, rb, p, rows, [u.name for u in members], has_units=True)
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


@dataclass(slots=True)
class Change:
    """One value an upload would change (attributes: cheap for the template to read)."""

    unit: str
    name: str
    period: str
    variable: str
    label: str
    old: float | None
    new: float
    old_text: str | None
    new_text: str | None
    sheet: str | None
    row: int


@dataclass
class UploadPreview:
    group: OrgUnit
    period: Period
    filename: str
    errors: list[UploadError] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # listed (≤ MAX_LISTED)
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
    members = group_members(session, group)
    units = _units_frame(group, members)
    try:
        ds = read_data(path, _lenient(rb), units)
    except InputErrors as e:
        return p, None, [_upload_error(x, filename) for x in e.errors]
    variables = list(rb.variables)
    long = (
        # every value as Float64 (a count may have been read as an integer column)
        ds.frame.select(UNIT, PERIOD, ROW, SHEET, *[pl.col(v).cast(pl.Float64) for v in variables])
        .unpivot(index=[UNIT, PERIOD, ROW, SHEET], variable_name="variable", value_name="value")
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    )
    ids = {group.code: group.id, **{m.code: m.id for m in members}}
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
    long = long.drop("_level").rename({UNIT: "unit", PERIOD: "period"})
    return p, long.select(*GIVEN_SCHEMA, SHEET, ROW, "column"), errors


def _upload_error(e: InputError, filename: str) -> UploadError:
    return UploadError(e.sheet, e.row, e.column, zh_reason(e.reason))


_ROWS_ZH = {
    "year rows (YYYY)": "年度行 (YYYY)",
    "tertial rows (YYYYT1–T3)": "四个月期行 (YYYYT1–T3)",
    "quarter rows (YYYYQ1–Q4)": "季度行 (YYYYQ1–Q4)",
    "month rows (YYYY-MM)": "月度行 (YYYY-MM)",
}
_KIND_ZH = {
    "year": "年度",
    "tertial": "四个月期",
    "quarter": "季度",
    "month": "月度",
    "annual": "年度",
    "flow": "流量",
}


def _rows_zh(m: re.Match[str]) -> dict[str, str]:
    out = m.groupdict()
    for k in ("rows", "where"):
        if k in out:
            out[k] = _ROWS_ZH.get(out[k], out[k])
    if "kind" in out:
        out["kind"] = _KIND_ZH.get(out["kind"], out["kind"])
    if out.get("hint"):
        hint = re.match(r"^ \(did you mean '(?P<code>[^']*)', (?P<label>.*)\?\)$", out["hint"])
        out["hint"] = f"（是否应为 '{hint['code']}'，{hint['label']}？）" if hint else ""
    return {k: v or "" for k, v in out.items()}


#: the reasons of :mod:`kaohe.io.read` (English, asserted on by the CLI's tests) and
#: their Chinese wording for the upload preview; unmatched reasons are shown as they are
_READ_REASONS_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), zh)
    for p, zh in [
        (r"^'(?P<x>.*)' is not a number$", "'{x}' 不是数字"),
        (r"^'(?P<x>.*)' is not a finite number$", "'{x}' 不是有限的数"),
        (r"^(?P<x>\S+) is negative \(must be ≥ 0\)$", "{x} 是负数（须 ≥ 0）"),
        (r"^(?P<x>\S+) is below the minimum (?P<lo>\S+)$", "{x} 小于下限 {lo}"),
        (r"^(?P<x>\S+) is above the maximum (?P<hi>\S+)$", "{x} 超过上限 {hi}"),
        (
            r"^'(?P<x>.*)' is not a whole number \((?P<v>\S+) is a count",
            "'{x}' 不是整数（{v} 是计数，须为整数）",
        ),
        (r"^empty unit code$", "单位代码为空"),
        (r"^empty period ", "期间为空（年度行填 YYYY，或填写报送期间）"),
        (
            r"^'(?P<p>.*)' is not a period",
            "'{p}' 不是有效的期间（应为 YYYY、YYYYT1–T3、YYYYQ1–Q4 或 YYYY-MM）",
        ),
        (
            r"^'(?P<p>.*)' is a (?P<kind>\w+); this rulebook takes the year \(YYYY\) for "
            r"annual variables and (?P<rows>.*) for flows$",
            "'{p}' 是{kind}期间；本方案年度指标填年度行 (YYYY)，流量指标填{rows}",
        ),
        (r"^unit '(?P<u>.*)' is not in the org-unit file", "单位代码 '{u}' 不是本单位的下属单位"),
        (
            r"^unit '(?P<u>.*)' and period '(?P<p>.*)' appear more than once",
            "单位 '{u}'、期间 '{p}' 出现了不止一次",
        ),
        (
            r"^(?P<label>'.*' \(.*\)) is a flow, reported on the (?P<rows>.*); leave it "
            r"empty on the year row (?P<p>.*)$",
            "{label} 是流量指标，在{rows}填报；年度行 {p} 请留空",
        ),
        (
            r"^(?P<label>'.*' \(.*\)) is an annual variable, reported on the year row "
            r"\(YYYY\); leave it empty on the (?P<p>.*) row$",
            "{label} 是年度指标，在年度行 (YYYY) 填报；{p} 行请留空",
        ),
        (
            r"^missing value for (?P<label>.*), required on (?P<where>.*) \(the rulebook",
            "缺少 {label} 的数值，{where}必填（方案未给默认值）",
        ),
        (
            r"^no value for (?P<label>.*) for unit '(?P<u>.*)', period '(?P<p>.*)' \(",
            "缺少单位 '{u}'、期间 '{p}' 的 {label} 数值（方案未给默认值）",
        ),
        (
            r"^duplicate column: '(?P<a>.*)' \(column (?P<x>\w+)\) and '(?P<b>.*)' "
            r"\(column (?P<y>\w+)\) are both '(?P<k>.*)'$",
            "重复的列：'{a}'（{x} 列）和 '{b}'（{y} 列）都是 '{k}'",
        ),
        (
            r"^unknown column: not a variable of the rulebook(?P<hint>.*?); columns are",
            "未知的列：不是本考核方案的变量{hint}；列应为单位代码、期间、可选的单位名称和"
            "变量（可写作“中文标签 (代码)”）",
        ),
        (
            r"^unknown column: a long-layout sheet",
            "未知的列：长表只有单位代码、期间、变量、数值四列",
        ),
        (
            r"^a long-layout sheet \(with variable and value columns\) cannot",
            "长表（有变量列和数值列）不能再有各变量的列",
        ),
        (r"^missing column '(?P<k>.*)' of the long layout$", "长表缺少 '{k}' 列"),
        (
            r"^missing column for (?P<kind>\w+) variable (?P<label>'.*' \(.*\)); add a column "
            r"headed (?P<a>'.*') or (?P<b>'.*')$",
            "缺少{kind}指标 {label} 的列；请加一列，表头写 {a} 或 {b}",
        ),
        (r"^missing column '(?P<k>[^']*)'", "缺少 '{k}' 列（表头须有单位代码和期间列）"),
        (
            r"^column (?P<x>\w+) has values but no header \(row (?P<r>\d+): '(?P<v>.*)'\)$",
            "{x} 列有内容但没有表头（第 {r} 行：'{v}'）",
        ),
        (r"^no sheet has a header row \(row 1\)", "没有工作表的第 1 行是含单位代码和期间列的表头"),
        (r"^cannot open as an Excel workbook", "无法作为 Excel 工作簿 (.xlsx) 打开"),
        (r"^unknown variable '(?P<v>.*?)'(?P<hint>.*)$", "未知变量 '{v}'{hint}"),
        (r"^empty variable name$", "变量为空"),
        (
            r"^unit '(?P<u>.*)', period '(?P<p>.*)', variable '(?P<v>.*)' is given more than once",
            "单位 '{u}'、期间 '{p}'、变量 '{v}' 出现了不止一次",
        ),
        (r"^not (?:a )?(?:valid )?UTF-8 text", "不是 UTF-8 文本（请将 CSV 另存为 UTF-8）"),
        (r"^the file is empty", "文件是空的（第 1 行应为表头）"),
        (
            r"^(?P<n>\d+) cells but the header has (?P<w>\d+) columns",
            "本行有 {n} 个单元格，表头只有 {w} 列（数值里有逗号？）",
        ),
        (
            r"^(?P<n>\d+) more errors? not shown \(only the first (?P<m>\d+) are listed\)$",
            "另有 {n} 处错误未列出（只列出前 {m} 处）",
        ),
    ]
]


def zh_reason(reason: str) -> str:
    """A reason of :mod:`kaohe.io.read` in Chinese first: ``中文 (English)``."""
    for pattern, zh in _READ_REASONS_ZH:
        m = pattern.search(reason)
        if m:
            return f"{zh.format(**_rows_zh(m))} ({reason})"
    return reason


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
    session: Session,
    user: User,
    preview: UploadPreview,
    given: pl.DataFrame,
    reuse: PlanReuse | None = None,
) -> UploadPreview:
    plan = plan_import(session, user, given, reuse)
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
    group = preview.group
    names = {group.code: group.name, **{m.code: m.name for m in group_members(session, group)}}
    labels = {c: v.label for c, v in rb.variables.items()}
    listed = plan.changes.head(MAX_LISTED).sort("unit", "period", "variable", maintain_order=True)
    preview.changes = [
        Change(
            unit=unit,
            name=names.get(unit, ""),
            period=period,
            variable=var,
            label=labels.get(var, var),
            old=old,
            new=new,
            old_text=fmt_value(old),
            new_text=fmt_value(new),
            sheet=sheet,
            row=row,
        )
        for unit, period, var, old, new, sheet, row in listed.select(
            "unit", "period", "variable", "old", "value", SHEET, ROW
        ).iter_rows()
    ]
    return preview


# ====================================================================== stash


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def stash(
    given: pl.DataFrame,
    user: User,
    group: OrgUnit,
    period: str,
    filename: str,
    plan: ImportPlan | None = None,
) -> str:
    """Keep validated values server-side until confirmed; returns the token.  With the
    previewed ``plan``, its diff is kept too (reused by the confirm while the store's
    stamp is unchanged, see :func:`load_plan`)."""
    _sweep()
    token = secrets.token_urlsafe(24)
    d = upload_dir()
    given.write_parquet(d / f"{token}.parquet")
    meta: dict[str, Any] = {
        "user_id": user.id,
        "group": group.code,
        "period": period,
        "filename": filename,
        "at": time.time(),
    }
    if plan is not None and plan.stamp:
        plan.changes.write_parquet(d / f"{token}.plan.parquet")
        meta["plan"] = {"stamp": plan.stamp, "unchanged": plan.unchanged}
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


def load_plan(token: str) -> PlanReuse | None:
    """The previewed diff stashed with the values under ``token`` (after
    :func:`load_stash` has checked the token), if any."""
    if not _TOKEN.match(token or ""):
        return None
    d = upload_dir()
    try:
        meta = json.loads((d / f"{token}.json").read_text(encoding="utf-8")).get("plan")
        if not meta:
            return None
        changes = pl.read_parquet(d / f"{token}.plan.parquet")
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return PlanReuse(changes, int(meta["unchanged"]), str(meta["stamp"]))


def drop_stash(token: str) -> None:
    if not _TOKEN.match(token or ""):
        return
    for suffix in (".json", ".parquet", ".plan.parquet"):
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
