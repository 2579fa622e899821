"""Data entry over the store: entry forms, validated and audited changes, bulk imports.

A unit's data is entered with the rulebook of the group that assesses it (its
parent township or street: ``unit``-level variables), or — for a group itself —
with its own rulebook (``parent``-level variables such as street cadres).  Data
periods follow the rulebook: the year row (``2022``) carries annual variables,
the step rows (``2022T1``, ``2022-03``) the flows; with a yearly step the year
row carries everything.

Every change checks permission (:mod:`kaohe.auth.permissions`), the submission
lock (approved data is locked; submitted data is locked for the reporter until
returned) and the value (known variable, applies to the period, a finite number
within the variable's bounds, an integer for counts), and adds one audit entry
per changed value.  Bulk imports (:func:`plan_import` / :func:`apply_plan`) are
vectorised with Polars and written with bulk statements; they are all-or-nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import DateTime, Table, func, select
from sqlalchemy.orm import Session

from kaohe.auth.permissions import require_read, require_write, scope_ids
from kaohe.errors import KaoheError
from kaohe.periods import PER_YEAR, Period, PeriodError, PeriodKind
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.rulebook.schema import Variable
from kaohe.store.models import AuditEntry, DataValue, OrgUnit, Submission, User, utcnow
from kaohe.workflow import audit
from kaohe.workflow.rulebooks import current_version, loaded
from kaohe.workflow.units import NotFound, group_of

#: rows per bulk statement
CHUNK = 20_000


class DataError(KaoheError):
    """Invalid values: ``errors`` maps a variable code (or ``""``) to a message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in self.errors.items()))


class Locked(KaoheError):
    """The data of a unit and period cannot be changed now (approved, or submitted)."""


# ====================================================================== rulebook context


@dataclass
class UnitContext:
    """The rulebook a unit's data is entered with."""

    unit: OrgUnit
    group: OrgUnit  # the unit naming the rulebook (the parent, or the unit itself)
    rb: LoadedRulebook
    level: str  # "unit" (an assessed unit) or "parent" (a group's own rows)

    @property
    def step(self) -> PeriodKind:
        return self.rb.model.periods.step


def context(session: Session, unit: OrgUnit) -> UnitContext:
    if unit.rulebook is not None:
        return UnitContext(unit, unit, loaded(current_version(session, unit.rulebook)), "parent")
    group = group_of(session, unit)
    if group is None or group.rulebook is None:
        raise NotFound(
            f"单位 '{unit.code}' 不由任何考核方案考核 (unit is not assessed by a rulebook)"
        )
    return UnitContext(unit, group, loaded(current_version(session, group.rulebook)), "unit")


def applies(var: Variable, step: PeriodKind, level: str, kind: PeriodKind) -> bool:
    """Whether ``var`` is reported on a row of period kind ``kind`` of a unit at ``level``."""
    if var.level != level:
        return False
    if step is PeriodKind.YEAR or var.kind == "annual":
        return kind is PeriodKind.YEAR
    return kind is step


def variables_for(rb: LoadedRulebook, level: str, kind: PeriodKind) -> list[str]:
    step = rb.model.periods.step
    return [c for c, v in rb.variables.items() if applies(v, step, level, kind)]


def data_periods(ctx: UnitContext, year: int) -> list[Period]:
    """The data periods of a unit in ``year``: the year row and/or the step rows."""
    out: list[Period] = []
    if variables_for(ctx.rb, ctx.level, PeriodKind.YEAR):
        out.append(Period(year, PeriodKind.YEAR, 1))
    if ctx.step is not PeriodKind.YEAR and variables_for(ctx.rb, ctx.level, ctx.step):
        out.extend(Period(year, ctx.step, i) for i in range(1, PER_YEAR[ctx.step] + 1))
    return out


def data_period(ctx: UnitContext, text: str) -> Period:
    """``text`` as a data period of the unit (the year or one of the rulebook's steps)."""
    try:
        p = Period.parse(text)
    except PeriodError as e:
        raise NotFound(str(e)) from None
    if str(p) != text.strip() or p.kind not in (PeriodKind.YEAR, ctx.step):
        raise NotFound(
            f"'{text}' 不是方案 {ctx.rb.code} 的填报期间 (not a data period of {ctx.rb.code}; "
            f"use the year or a {ctx.step.value}, e.g. {_example(ctx)})"
        )
    if not variables_for(ctx.rb, ctx.level, p.kind):
        raise NotFound(
            f"单位 '{ctx.unit.code}' 在期间 '{p}' 无需填报 (nothing is reported for this unit "
            f"on {p.kind.value} rows)"
        )
    return p


def _example(ctx: UnitContext) -> str:
    ps = data_periods(ctx, 2022)
    return ", ".join(str(p) for p in ps[:2]) or "2022"


def previous_period(p: Period) -> Period:
    """The period before ``p`` of the same kind: 2022T2 → 2022T1, 2022T1 → 2021T3,
    2022-01 → 2021-12, 2022 → 2021."""
    if p.index > 1:
        return Period(p.year, p.kind, p.index - 1)
    return Period(p.year - 1, p.kind, PER_YEAR[p.kind])


# ====================================================================== values


def fmt(x: float | None) -> str:
    """A value for an input field: ``12``, ``7.5`` or empty."""
    s = audit.fmt_value(x)
    return "" if s is None else s


def check_value(var: Variable, raw: object) -> tuple[float | None, str | None]:
    """``raw`` (text from a form, a number from JSON, or None) as a value, or an error."""
    if raw is None:
        return None, None
    if isinstance(raw, bool):
        return None, "不是数字 (not a number)"
    if isinstance(raw, str):
        text = raw.strip().replace(",", "").replace("，", "")
        if not text:
            return None, None
        try:
            x = float(text)
        except ValueError:
            return None, f"'{raw}' 不是数字 (not a number)"
    elif isinstance(raw, int | float):
        x = float(raw)
    else:
        return None, "不是数字 (not a number)"
    if math.isnan(x) or math.isinf(x):
        return None, "不是有限的数字 (not a finite number)"
    if var.min is not None and x < var.min:
        if var.min == 0:
            return None, f"{fmt(x)} 为负数，不能小于 0 (negative; must be ≥ 0)"
        return None, f"{fmt(x)} 小于最小值 {fmt(var.min)} (below the minimum)"
    if var.max is not None and x > var.max:
        return None, f"{fmt(x)} 大于最大值 {fmt(var.max)} (above the maximum)"
    if var.integer and not x.is_integer():
        return (
            None,
            f"{fmt(x)} 不是整数：{_count_noun(var)}须为整数 (a count must be a whole number)",
        )
    return x, None


def _count_noun(var: Variable) -> str:
    """What must be whole, in Chinese: ``例数``, ``人数``… (the unit of measure + 数)."""
    return f"{var.unit}数" if var.unit else "该项"


def current_values(session: Session, unit_id: int, period: str) -> dict[str, DataValue]:
    rows = session.scalars(
        select(DataValue).where(DataValue.unit_id == unit_id, DataValue.period == period)
    )
    return {dv.variable: dv for dv in rows}


def _plain_values(session: Session, unit_id: int, period: str) -> dict[str, float]:
    return {
        v: x
        for v, x in session.execute(
            select(DataValue.variable, DataValue.value).where(
                DataValue.unit_id == unit_id, DataValue.period == period
            )
        )
    }


def submission_of(session: Session, unit_id: int, period: str) -> Submission | None:
    return session.scalar(
        select(Submission).where(Submission.unit_id == unit_id, Submission.period == period)
    )


def lock_reason(state: str | None, user: User) -> str | None:
    """Why data in submission ``state`` cannot be changed by ``user`` (None: it can)."""
    if state == "approved":
        return (
            "数据已审核锁定，需考核员重新打开后才能修改 (approved data is locked; reopen it first)"
        )
    if state == "submitted" and user.role == "reporter":
        return "数据已提交，退回前不能修改 (submitted data cannot be changed until it is returned)"
    return None


def edit_problem(session: Session, user: User, unit: OrgUnit, period: str) -> str | None:
    """Why ``user`` cannot change ``unit``'s data for ``period`` now (None: it can)."""
    from kaohe.auth.permissions import can_write

    if not can_write(session, user, unit):
        return "无权修改该单位的数据 (no permission to change this unit's data)"
    sub = submission_of(session, unit.id, period)
    return lock_reason(sub.state if sub else None, user)


# ====================================================================== entry form


@dataclass
class FormField:
    code: str
    label: str
    label_en: str | None
    measure: str
    kind: str
    value: float | None
    previous: float | None
    default: float | None
    integer: bool
    min: float | None
    max: float | None
    error: str | None = None
    raw: str | None = None  # the text sent back when the form had errors

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def text(self) -> str:
        return self.raw if self.raw is not None else fmt(self.value)

    @property
    def previous_text(self) -> str:
        return fmt(self.previous)

    @property
    def default_text(self) -> str:
        return fmt(self.default)


@dataclass
class EntryForm:
    ctx: UnitContext
    period: Period
    previous: Period
    fields: list[FormField]
    state: str
    comment: str | None
    submission: Submission | None
    editable: bool
    problem: str | None  # why not editable
    missing: list[str] = field(default_factory=list)  # required variables without a value

    @property
    def unit(self) -> OrgUnit:
        return self.ctx.unit


def entry_form(session: Session, user: User, unit: OrgUnit, period: str) -> EntryForm:
    """The entry form of ``unit`` for ``period``: applicable variables with label, unit of
    measure, current value and the previous period's value."""
    require_read(session, user, unit)
    ctx = context(session, unit)
    p = data_period(ctx, period)
    prev = previous_period(p)
    now = _plain_values(session, unit.id, str(p))
    before = _plain_values(session, unit.id, str(prev))
    fields = []
    for code in variables_for(ctx.rb, ctx.level, p.kind):
        var = ctx.rb.variables[code]
        fields.append(
            FormField(
                code=code,
                label=var.label,
                label_en=var.label_en,
                measure=var.unit,
                kind=var.kind,
                value=now.get(code),
                previous=before.get(code),
                default=var.default,
                integer=bool(var.integer),
                min=var.min,
                max=var.max,
            )
        )
    sub = submission_of(session, unit.id, str(p))
    problem = edit_problem(session, user, unit, str(p))
    missing = [f.code for f in fields if f.required and f.value is None]
    return EntryForm(
        ctx=ctx,
        period=p,
        previous=prev,
        fields=fields,
        state=sub.state if sub else "draft",
        comment=sub.comment if sub else None,
        submission=sub,
        editable=problem is None,
        problem=problem,
        missing=missing,
    )


@dataclass
class Change:
    unit: str
    period: str
    variable: str
    old: float | None
    new: float | None


def validate_values(
    ctx: UnitContext, p: Period, values: Mapping[str, object]
) -> tuple[dict[str, float | None], dict[str, str]]:
    allowed = set(variables_for(ctx.rb, ctx.level, p.kind))
    clean: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for code, raw in values.items():
        var = ctx.rb.variables.get(code)
        if var is None:
            errors[code] = f"未知变量 '{code}' (unknown variable of {ctx.rb.code})"
            continue
        if code not in allowed:
            errors[code] = (
                f"变量 '{code}'（{var.label}）不在期间 {p} 填报 (does not apply to this period)"
            )
            continue
        x, problem = check_value(var, raw)
        if problem:
            errors[code] = problem
        else:
            clean[code] = x
    return clean, errors


def set_values(
    session: Session,
    user: User,
    unit: OrgUnit,
    period: str,
    values: Mapping[str, object],
    reason: str | None = None,
) -> list[Change]:
    """Set (a number) or clear (None / empty text) values of ``unit`` for ``period``.

    Raises :class:`~kaohe.auth.permissions.Forbidden`, :class:`DataError` (every bad
    value, nothing written), :class:`Locked`.  Returns the changes made (one audit
    entry each)."""
    require_write(session, user, unit)
    ctx = context(session, unit)
    p = data_period(ctx, period)
    clean, errors = validate_values(ctx, p, values)
    if errors:
        raise DataError(errors)
    sub = submission_of(session, unit.id, str(p))
    problem = lock_reason(sub.state if sub else None, user)
    if problem:
        raise Locked(problem)
    existing = current_values(session, unit.id, str(p))
    now = utcnow()
    changes: list[Change] = []
    why = reason.strip() if reason and reason.strip() else None
    for code, new in clean.items():
        dv = existing.get(code)
        old = dv.value if dv is not None else None
        if old == new:
            continue
        if new is None:
            assert dv is not None
            session.delete(dv)
        elif dv is not None:
            dv.value = new
            dv.updated_at = now
            dv.updated_by_id = user.id
        else:
            session.add(
                DataValue(
                    unit_id=unit.id,
                    period=str(p),
                    variable=code,
                    value=new,
                    updated_at=now,
                    updated_by_id=user.id,
                )
            )
        audit.record(
            session,
            user,
            audit.DATA_SET,
            unit=unit,
            period=str(p),
            key=code,
            old=audit.fmt_value(old),
            new=audit.fmt_value(new),
            reason=why,
        )
        changes.append(Change(unit.code, str(p), code, old, new))
    session.flush()
    return changes


def missing_required(session: Session, unit: OrgUnit, period: str) -> list[str]:
    """Variables without default that apply to ``unit`` and ``period`` and have no value."""
    ctx = context(session, unit)
    p = data_period(ctx, period)
    have = set(_plain_values(session, unit.id, str(p)))
    return [
        c
        for c in variables_for(ctx.rb, ctx.level, p.kind)
        if ctx.rb.variables[c].default is None and c not in have
    ]


def latest_year(session: Session, unit_ids: Iterable[int] | None = None) -> int | None:
    q = select(func.max(DataValue.period))
    if unit_ids is not None:
        q = q.where(DataValue.unit_id.in_(list(unit_ids)))
    top = session.scalar(q)
    return int(top[:4]) if top else None


# ====================================================================== bulk import

#: columns of the long frame given to :func:`plan_import` (others are carried along)
GIVEN_SCHEMA: dict[str, Any] = {
    "unit_id": pl.Int64,
    "unit": pl.String,
    "period": pl.String,
    "variable": pl.String,
    "value": pl.Float64,
}


@dataclass
class ImportPlan:
    """What an import would do: ``changes`` (given columns + ``old`` and ``value_id``,
    null for a new value), how many values are unchanged, and ``conflicts`` (given
    columns + ``reason``).  Nothing may be applied while there are conflicts."""

    changes: pl.DataFrame
    unchanged: int
    conflicts: pl.DataFrame
    #: :func:`store_stamp` of the stored values the plan was made from
    stamp: str = ""

    @property
    def inserts(self) -> int:
        return int(self.changes.get_column("value_id").null_count())

    @property
    def updates(self) -> int:
        return self.changes.height - self.inserts

    @property
    def ok(self) -> bool:
        return self.conflicts.height == 0

    def fingerprint(self) -> str:
        """A digest of the changes (unit, period, variable, old, new), to confirm a preview."""
        import hashlib

        cols = self.changes.select("unit_id", "period", "variable", "old", "value").sort(
            "unit_id", "period", "variable"
        )
        # one CSV text of the sorted changes (Polars writes floats exactly, shortest form)
        return hashlib.sha256(cols.write_csv().encode()).hexdigest()[:32]


def existing_frame(session: Session, unit_ids: list[int], periods: list[str]) -> pl.DataFrame:
    """Stored values of the given units and periods: unit_id, period, variable, old, value_id."""
    schema = {
        "unit_id": pl.Int64,
        "period": pl.String,
        "variable": pl.String,
        "old": pl.Float64,
        "value_id": pl.Int64,
    }
    if not unit_ids or not periods:
        return pl.DataFrame(schema=schema)
    t = DataValue.__table__
    out: list[tuple[Any, ...]] = []
    conn = session.connection()
    for i in range(0, len(unit_ids), 5000):
        stmt = (
            select(t.c.unit_id, t.c.period, t.c.variable, t.c.value, t.c.id)
            .where(t.c.unit_id.in_(unit_ids[i : i + 5000]))
            .where(t.c.period.in_(periods))
        )
        out.extend(_raw_rows(conn, stmt))
    return pl.DataFrame(out, schema=schema, orient="row")


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _raw_rows(conn: Any, stmt: Any) -> list[tuple[Any, ...]]:
    """All rows of a Core select as the driver's tuples (no per-row result processing:
    the columns read here are ints, floats and strings on SQLite and PostgreSQL)."""
    res = conn.execute(stmt)
    try:
        return list(res.cursor.fetchall())
    finally:
        res.close()


def states_frame(session: Session, unit_ids: list[int], periods: list[str]) -> pl.DataFrame:
    schema = {"unit_id": pl.Int64, "period": pl.String, "state": pl.String}
    if not unit_ids or not periods:
        return pl.DataFrame(schema=schema)
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(unit_ids), 5000):
        rows.extend(
            session.execute(
                select(Submission.unit_id, Submission.period, Submission.state)
                .where(Submission.unit_id.in_(unit_ids[i : i + 5000]))
                .where(Submission.period.in_(periods))
            ).all()
        )
    return pl.DataFrame(rows, schema=schema, orient="row")


@dataclass
class PlanReuse:
    """The diff of an earlier plan of the same given values (e.g. a previewed upload):
    reused when the store's stamp is still the same, so that confirming does not read
    and compare every stored value again.  Permission and locks are checked anew."""

    changes: pl.DataFrame
    unchanged: int
    stamp: str


def store_stamp(session: Session, unit_ids: list[int], periods: list[str]) -> str:
    """A digest of the stored values of the given units and periods: count, largest id,
    latest change and two sums of the values, by one aggregate query per 5,000 units.

    Any write through the app changes it (a new value raises the count and id, a changed
    one the latest change and the sums); a differing stamp only costs a full comparison.
    Take it *before* reading the values a plan is made from: a write in between then
    shows as a changed stamp (PostgreSQL reads each statement at its own snapshot)."""
    import hashlib

    if not unit_ids or not periods:
        return ""
    t = _table(DataValue)
    parts: list[str] = []
    for i in range(0, len(unit_ids), 5000):
        row = session.execute(
            select(
                func.count(),
                func.max(t.c.id),
                func.max(t.c.updated_at),
                func.sum(t.c.value),
                func.sum(t.c.value * (t.c.id % 1000)),
            )
            .where(t.c.unit_id.in_(unit_ids[i : i + 5000]))
            .where(t.c.period.in_(periods))
        ).one()
        parts.append(repr(tuple(row)))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def plan_import(
    session: Session, user: User, given: pl.DataFrame, reuse: PlanReuse | None = None
) -> ImportPlan:
    """Compare validated values (``GIVEN_SCHEMA`` columns, one row per unit, period and
    variable) with the store and check permission and locks for every change.  With
    ``reuse`` (a plan of the same ``given``) whose stamp still matches the store, its
    diff is taken as it is."""
    given = given.with_columns(pl.col("unit_id").cast(pl.Int64), pl.col("value").cast(pl.Float64))
    unit_ids = given.get_column("unit_id").unique().sort().to_list()
    periods = given.get_column("period").unique().sort().to_list()
    stamp = store_stamp(session, unit_ids, periods)
    if reuse is not None and reuse.stamp and reuse.stamp == stamp:
        changes = reuse.changes
        unchanged = reuse.unchanged
    else:
        joined = given.join(
            existing_frame(session, unit_ids, periods),
            on=["unit_id", "period", "variable"],
            how="left",
            maintain_order="left",
        )
        changed = pl.col("old").is_null() | (pl.col("old") != pl.col("value"))
        changes = joined.filter(changed)
        unchanged = joined.height - changes.height
    # permission: every given value (unchanged ones too); locks: every change
    scope = scope_ids(session, user)
    denied = pl.lit(False)
    if user.role == "viewer":
        denied = pl.lit(True)
    elif scope is not None:
        denied = ~pl.col("unit_id").is_in(sorted(scope))
    no_right = given.filter(denied).with_columns(
        pl.lit("无权修改该单位的数据 (no permission to change this unit's data)").alias("reason")
    )
    changes = changes.filter(~denied)
    states = states_frame(
        session,
        changes.get_column("unit_id").unique().to_list(),
        changes.get_column("period").unique().to_list(),
    )
    checked = changes.join(states, on=["unit_id", "period"], how="left", maintain_order="left")
    locked_states = ["approved", "submitted"] if user.role == "reporter" else ["approved"]
    locked = checked.filter(pl.col("state").is_in(locked_states)).with_columns(
        pl.when(pl.col("state") == "approved")
        .then(pl.lit(lock_reason("approved", user)))
        .otherwise(pl.lit(lock_reason("submitted", user)))
        .alias("reason")
    )
    conflicts = pl.concat(
        [no_right, locked.drop("state", "old", "value_id")],
        how="vertical_relaxed",
    )
    return ImportPlan(changes=changes, unchanged=unchanged, conflicts=conflicts, stamp=stamp)


def apply_plan(session: Session, user: User, plan: ImportPlan, reason: str | None = None) -> int:
    """Write a conflict-free plan with bulk statements (values and one audit entry per
    change).  Returns the number of values written."""
    if not plan.ok:
        raise DataError(
            {"": f"{plan.conflicts.height} 处冲突，未写入 (conflicts; nothing written)"}
        )
    ch = plan.changes
    if ch.height == 0:
        return 0
    now = utcnow()
    why = reason.strip() if reason and reason.strip() else None
    ups = ch.filter(pl.col("value_id").is_not_null())
    news = ch.filter(pl.col("value_id").is_null())
    t = _table(DataValue)
    if ups.height:
        _executemany(
            session,
            t,
            "UPDATE {t} SET {value} = ?, {updated_at} = ?, {updated_by_id} = ? WHERE {id} = ?",
            ups.select("value", pl.lit(None).alias("at"), pl.lit(user.id).alias("by"), "value_id"),
            at=now,
        )
    if news.height:
        _executemany(
            session,
            t,
            "INSERT INTO {t} ({unit_id}, {period}, {variable}, {value}, {updated_at}, "
            "{updated_by_id}) VALUES (?, ?, ?, ?, ?, ?)",
            news.select(
                "unit_id",
                "period",
                "variable",
                "value",
                pl.lit(None).alias("at"),
                pl.lit(user.id).alias("by"),
            ),
            at=now,
        )
    # one audit entry per changed value: who, when, old → new, why
    a = _table(AuditEntry)
    _executemany(
        session,
        a,
        "INSERT INTO {t} ({at}, {user_id}, {action}, {unit_id}, {period}, {key}, {old}, "
        "{new}, {reason}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ch.select(
            pl.lit(None).alias("at"),
            pl.lit(user.id).alias("user_id"),
            pl.lit(audit.DATA_SET).alias("action"),
            "unit_id",
            "period",
            "variable",
            _text_expr("old").alias("old_t"),
            _text_expr("value").alias("new_t"),
            pl.lit(why, dtype=pl.String).alias("reason"),
        ),
        at=now,
    )
    return ch.height


def _executemany(
    session: Session, table: Table, sql: str, frame: pl.DataFrame, *, at: dt.datetime
) -> None:
    """One statement for the rows of ``frame`` on the driver's cursor (no per-row
    parameter processing by SQLAlchemy): ``{t}`` and ``{column}`` in ``sql`` are quoted
    names, ``?`` the parameters; the frame's ``at`` column is set to the timestamp
    ``at``, converted once as SQLAlchemy binds it."""
    if not frame.height:
        return
    conn = session.connection()
    dialect = conn.dialect
    q = dialect.identifier_preparer
    names = {c.name: q.quote(c.name) for c in table.columns}
    text = sql.format(t=q.format_table(table), **names)
    if dialect.paramstyle in ("format", "pyformat"):
        text = text.replace("?", "%s")
    elif dialect.paramstyle != "qmark":  # pragma: no cover - SQLite and psycopg only
        raise NotImplementedError(dialect.paramstyle)
    bind = DateTime().dialect_impl(dialect).bind_processor(dialect)
    stamp = bind(at) if bind is not None else at
    frame = frame.with_columns(pl.lit(stamp).alias("at"))
    for i in range(0, frame.height, CHUNK):
        conn.exec_driver_sql(text, frame.slice(i, CHUNK).rows())


def _text_expr(name: str) -> pl.Expr:
    """Numbers as audit text, vectorised: integral values without ``.0``."""
    c = pl.col(name)
    integral = (c == c.round(0)) & (c.abs() < 1e15)
    return (
        pl.when(c.is_null())
        .then(None)
        .when(integral)
        .then(c.cast(pl.Int64).cast(pl.String))
        .otherwise(c.cast(pl.String))
    )


# ====================================================================== data value sets


@dataclass
class ImportSummary:
    status: str
    dry_run: bool
    imported: int
    updated: int
    unchanged: int
    conflicts: list[dict[str, Any]]


@dataclass
class _UnitInfo:
    id: int
    code: str
    parent_id: int | None
    rulebook: str | None


def import_value_sets(
    session: Session,
    user: User,
    data_values: list[Mapping[str, Any]],
    *,
    dry_run: bool = True,
    reason: str | None = None,
) -> ImportSummary:
    """DHIS2-style ``dataValueSets`` import: every row validated (unit, period, variable,
    value), then permission and locks; any conflict → nothing written."""
    infos = {
        code: _UnitInfo(i, code, pid, rb)
        for i, code, pid, rb in session.execute(
            select(OrgUnit.id, OrgUnit.code, OrgUnit.parent_id, OrgUnit.rulebook)
        )
    }
    by_id = {u.id: u for u in infos.values()}
    rulebooks: dict[str, LoadedRulebook] = {}

    def rulebook(code: str) -> LoadedRulebook:
        if code not in rulebooks:
            rulebooks[code] = loaded(current_version(session, code))
        return rulebooks[code]

    conflicts: list[dict[str, Any]] = []
    rows: list[tuple[int, int, str, str, str, float]] = []
    seen: dict[tuple[str, str, str], int] = {}

    def conflict(i: int, row: Mapping[str, Any], reason: str) -> None:
        conflicts.append(
            {
                "index": i,
                "unit": _s(row.get("unit")),
                "period": _s(row.get("period")),
                "variable": _s(row.get("variable")),
                "reason": reason,
            }
        )

    for i, row in enumerate(data_values):
        code, ptext, var_code = _s(row.get("unit")), _s(row.get("period")), _s(row.get("variable"))
        info = infos.get(code or "")
        if info is None:
            conflict(i, row, f"未知单位 '{code}' (unknown unit)")
            continue
        if info.rulebook is not None:
            rb_code, level = info.rulebook, "parent"
        else:
            parent = by_id.get(info.parent_id) if info.parent_id is not None else None
            if parent is None or parent.rulebook is None:
                conflict(i, row, f"单位 '{code}' 不由任何考核方案考核 (unit is not assessed)")
                continue
            rb_code, level = parent.rulebook, "unit"
        rb = rulebook(rb_code)
        try:
            p = Period.parse(ptext)
        except PeriodError as e:
            conflict(i, row, str(e))
            continue
        var = rb.variables.get(var_code or "")
        if var is None:
            conflict(i, row, f"未知变量 '{var_code}' (not a variable of {rb_code})")
            continue
        step = rb.model.periods.step
        if p.kind not in (PeriodKind.YEAR, step) or not applies(var, step, level, p.kind):
            conflict(
                i,
                row,
                f"变量 '{var_code}'（{var.label}）不在期间 '{p}' 填报 (does not apply to this "
                f"unit and period)",
            )
            continue
        if "value" not in row or row.get("value") is None or row.get("value") == "":
            conflict(i, row, "缺少数值 (value is required)")
            continue
        x, problem = check_value(var, row.get("value"))
        if problem or x is None:
            conflict(i, row, problem or "缺少数值 (value is required)")
            continue
        key = (info.code, str(p), var_code or "")
        if key in seen:
            conflict(i, row, f"与第 {seen[key]} 行重复 (duplicate of row {seen[key]})")
            continue
        seen[key] = i
        rows.append((i, info.id, info.code, str(p), var_code or "", x))
    given = pl.DataFrame(
        rows,
        schema={"index": pl.Int64, **GIVEN_SCHEMA},
        orient="row",
    )
    plan = plan_import(session, user, given)
    for rec in plan.conflicts.select("index", "unit", "period", "variable", "reason").iter_rows(
        named=True
    ):
        conflicts.append(rec)
    conflicts.sort(key=lambda c: c["index"])
    ok = not conflicts
    if ok and not dry_run:
        apply_plan(session, user, plan, reason)
    return ImportSummary(
        status="OK" if ok else "ERROR",
        dry_run=dry_run,
        imported=plan.inserts,
        updated=plan.updates,
        unchanged=plan.unchanged,
        conflicts=conflicts,
    )


def _s(x: object) -> str | None:
    return None if x is None else str(x)
