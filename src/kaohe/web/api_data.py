"""JSON API of data entry: units, values of a unit and period, submission
transitions, the audit log and a DHIS2-style ``dataValueSets`` bulk import.

Authenticate with a personal API token (``Authorization: Bearer kh_…``) or a
browser session (then send ``X-CSRF-Token``).  Errors: 403 no permission,
404 unknown unit or period, 409 locked data or a transition the state does not
allow, 422 invalid values (``detail.errors`` maps each variable to its message).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field

from kaohe.auth.permissions import require_read, scope_ids
from kaohe.store.models import OrgUnit
from kaohe.web.deps import Db, SignedIn
from kaohe.workflow import audit, submissions
from kaohe.workflow.data import (
    DataError,
    Locked,
    entry_form,
    import_value_sets,
    set_values,
)
from kaohe.workflow.submissions import TransitionError
from kaohe.workflow.units import all_units, unit_by_code

router = APIRouter(prefix="/api", tags=["data"])


# ====================================================================== models


class UnitOut(BaseModel):
    code: str
    name: str
    level: str
    parent: str | None = Field(None, description="the parent unit's code")
    rulebook: str | None = Field(
        None, description="on a township/street: the rulebook assessing its children"
    )


class FieldOut(BaseModel):
    variable: str
    label: str
    unit: str = Field(description="unit of measure, e.g. 例, 人, 元")
    kind: Literal["annual", "flow"]
    value: float | None
    previous: float | None = Field(description="the value of the previous period")
    default: float | None
    required: bool = Field(description="no default: needed before the data can be submitted")
    integer: bool = Field(description="a count: whole numbers only")
    min: float | None
    max: float | None


class DataOut(BaseModel):
    unit: str
    name: str
    period: str
    previous_period: str
    rulebook: str
    state: Literal["draft", "submitted", "returned", "approved"]
    comment: str | None
    editable: bool = Field(description="whether the caller may change the values now")
    missing: list[str] = Field(description="required variables without a value")
    fields: list[FieldOut]


class DataIn(BaseModel):
    values: dict[str, float | str | None] = Field(
        description="variable → new value; null (or an empty string) clears the value",
        examples=[{"births_total": 4, "births_reported": 4}],
    )
    reason: str | None = Field(None, description="why the values change (kept in the audit log)")


class ChangeOut(BaseModel):
    variable: str
    old: float | None
    new: float | None


class DataChanged(BaseModel):
    unit: str
    period: str
    changes: list[ChangeOut]


class TransitionIn(BaseModel):
    comment: str | None = Field(None, description="the comment of a return (required)")
    reason: str | None = Field(None, description="the reason of a reopen (required)")


class SubmissionOut(BaseModel):
    unit: str
    period: str
    state: str
    comment: str | None
    updated_at: dt.datetime


class AuditOut(BaseModel):
    id: int
    at: dt.datetime = Field(description="UTC")
    user: str | None
    action: str
    unit: str | None
    period: str | None
    key: str | None
    old: str | None
    new: str | None
    reason: str | None


class AuditList(BaseModel):
    total: int
    offset: int
    limit: int
    entries: list[AuditOut]


class DataValueIn(BaseModel):
    unit: str | None = None
    period: str | None = None
    variable: str | None = None
    value: float | str | None = None


class DataValueSet(BaseModel):
    dataValues: list[DataValueIn]
    reason: str | None = None


class Conflict(BaseModel):
    index: int = Field(description="0-based position in dataValues")
    unit: str | None
    period: str | None
    variable: str | None
    reason: str


class ImportSummaryOut(BaseModel):
    status: Literal["OK", "ERROR"]
    dryRun: bool
    imported: int = Field(description="new values (would be) added")
    updated: int = Field(description="values (would be) changed")
    unchanged: int
    conflicts: list[Conflict]


# ====================================================================== routes


def _unit_out(u: OrgUnit, codes: dict[int, str]) -> UnitOut:
    return UnitOut(
        code=u.code,
        name=u.name,
        level=u.level,
        parent=codes.get(u.parent_id) if u.parent_id is not None else None,
        rulebook=u.rulebook,
    )


@router.get("/units", response_model=list[UnitOut], summary="Units the caller may read")
def api_units(db: Db, user: SignedIn) -> list[UnitOut]:
    units = all_units(db)
    codes = {u.id: u.code for u in units}
    scope = scope_ids(db, user)
    return [_unit_out(u, codes) for u in units if scope is None or u.id in scope]


def _data_out(db: Db, user: SignedIn, unit: str, period: str) -> DataOut:
    u = unit_by_code(db, unit)
    require_read(db, user, u)
    form = entry_form(db, user, u, period)
    return DataOut(
        unit=u.code,
        name=u.name,
        period=str(form.period),
        previous_period=str(form.previous),
        rulebook=form.ctx.rb.code,
        state=form.state,
        comment=form.comment,
        editable=form.editable,
        missing=form.missing,
        fields=[
            FieldOut(
                variable=f.code,
                label=f.label,
                unit=f.measure,
                kind=f.kind,
                value=f.value,
                previous=f.previous,
                default=f.default,
                required=f.required,
                integer=f.integer,
                min=f.min,
                max=f.max,
            )
            for f in form.fields
        ],
    )


@router.get(
    "/data/{unit}/{period}",
    response_model=DataOut,
    summary="The entry form of a unit and period: values, previous period's values, state",
)
def api_get_data(db: Db, user: SignedIn, unit: str, period: str) -> DataOut:
    return _data_out(db, user, unit, period)


@router.put(
    "/data/{unit}/{period}",
    response_model=DataChanged,
    summary="Set or clear values of a unit and period (validated, audited; all or nothing)",
    responses={
        403: {},
        404: {},
        409: {"description": "locked"},
        422: {"description": "invalid values"},
    },
)
def api_put_data(db: Db, user: SignedIn, unit: str, period: str, body: DataIn) -> DataChanged:
    u = unit_by_code(db, unit)
    try:
        changes = set_values(db, user, u, period, body.values, body.reason)
    except DataError as e:
        raise HTTPException(422, {"message": "invalid values", "errors": e.errors}) from None
    except Locked as e:
        raise HTTPException(409, str(e)) from None
    return DataChanged(
        unit=u.code,
        period=period,
        changes=[ChangeOut(variable=c.variable, old=c.old, new=c.new) for c in changes],
    )


@router.post(
    "/submissions/{unit}/{period}/{action}",
    response_model=SubmissionOut,
    summary="Submit, return (comment required), approve or reopen (reason required)",
    responses={403: {}, 404: {}, 409: {"description": "not allowed in the current state"}},
)
def api_transition(
    db: Db,
    user: SignedIn,
    unit: str,
    period: str,
    action: Literal["submit", "return", "approve", "reopen"],
    body: Annotated[TransitionIn | None, Body()] = None,
) -> SubmissionOut:
    u = unit_by_code(db, unit)
    require_read(db, user, u)
    text = None
    if body is not None:
        first, second = (
            (body.reason, body.comment) if action == "reopen" else (body.comment, body.reason)
        )
        text = first or second
    try:
        sub = submissions.transition(db, user, u, period, action, text)
    except TransitionError as e:
        raise HTTPException(409, str(e)) from None
    return SubmissionOut(
        unit=u.code,
        period=sub.period,
        state=sub.state,
        comment=sub.comment,
        updated_at=sub.updated_at,
    )


@router.get(
    "/audit", response_model=AuditList, summary="Audit entries the caller may read, newest first"
)
def api_audit(
    db: Db,
    user: SignedIn,
    unit: str | None = None,
    period: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditList:
    u = None
    if unit:
        u = unit_by_code(db, unit)
        require_read(db, user, u)
    page = audit.entries(db, user, unit=u, period=period, action=action, limit=limit, offset=offset)
    return AuditList(
        total=page.total,
        offset=page.offset,
        limit=page.limit,
        entries=[
            AuditOut(
                id=e.id,
                at=e.at,
                user=e.user.username if e.user else None,
                action=e.action,
                unit=e.unit.code if e.unit else None,
                period=e.period,
                key=e.key,
                old=e.old,
                new=e.new,
                reason=e.reason,
            )
            for e in page.entries
        ],
    )


@router.post(
    "/dataValueSets",
    response_model=ImportSummaryOut,
    summary="Bulk import of values (dry run by default); any conflict: nothing is written",
)
def api_data_value_sets(
    db: Db,
    user: SignedIn,
    body: DataValueSet,
    dryRun: Annotated[bool, Query(description="only check and count; write nothing")] = True,
) -> Any:
    if user.role == "viewer":
        raise HTTPException(403, "无权修改数据 (viewers cannot change data)")
    summary = import_value_sets(
        db,
        user,
        [v.model_dump() for v in body.dataValues],
        dry_run=dryRun,
        reason=body.reason,
    )
    return ImportSummaryOut(
        status=summary.status,
        dryRun=summary.dry_run,
        imported=summary.imported,
        updated=summary.updated,
        unchanged=summary.unchanged,
        conflicts=[Conflict(**c) for c in summary.conflicts],
    )
