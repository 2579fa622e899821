"""JSON API of results: rankings, explanations, publications, appeals, payments, public results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kaohe.auth.permissions import Forbidden, can_read
from kaohe.store.models import Appeal
from kaohe.web.deps import CurrentUser, Db, SignedIn
from kaohe.web.results_view import PUBLISHED, publication_json, ranking, unit_view
from kaohe.web.routes_results import payments_context
from kaohe.workflow.appeals import answer_appeal, file_appeal, visible_appeals
from kaohe.workflow.payments import approve, review
from kaohe.workflow.publish import DEFAULT_APPEAL_DAYS, group_by_code, publications, publish
from kaohe.workflow.units import NotFound, unit_by_code

router = APIRouter(prefix="/api", tags=["results"])


class Ranking(BaseModel):
    """A group's ranking for a period: live (draft) for assessors, admins and viewers;
    the frozen published figures for reporters and the public."""

    group: str
    group_name: str
    period: str
    state: str = Field(description="published | draft")
    publication: dict[str, Any] | None
    changed_since_publication: bool | None = Field(
        description="live data differ from the published figures (full access only)"
    )
    rulebook_changed: bool | None
    changes: list[dict[str, Any]] = Field(description="per unit: total, rank, items old → new")
    previous_period: str | None
    max_points: float
    rows: list[dict[str, Any]] = Field(
        description="unit, name, total, rank, share, band, previous_rank, rank_change "
        "(positive = moved up), items, adjustments, rank_bonus, flags, vetoed, outcomes"
    )


class UnitResult(BaseModel):
    group: str
    unit: str
    name: str
    period: str
    state: str
    publication: dict[str, Any] | None
    published: dict[str, Any] | None = Field(description="the frozen published record")
    live: dict[str, Any] | None = Field(description="the live record (full access only)")
    changed_since_publication: bool
    explanation: dict[str, Any] | None = Field(
        description="term-by-term explanation (kaohe explain --format json)"
    )
    explanation_note: str | None
    trend: dict[str, Any]


class PublishIn(BaseModel):
    appeal_days: int = Field(DEFAULT_APPEAL_DAYS, ge=0, le=365)
    note: str | None = None


class PublicationOut(BaseModel):
    publication: dict[str, Any]
    previous_version: int | None
    changes: list[dict[str, Any]]


class AppealIn(BaseModel):
    unit: str
    period: str
    text: str = Field(min_length=1, max_length=5000)


class AnswerIn(BaseModel):
    answer: str = Field(min_length=1, max_length=5000)


class AppealOut(BaseModel):
    id: int
    unit: str
    group: str
    period: str
    publication_version: int
    text: str
    filed_at: str
    state: str
    answer: str | None
    answered_at: str | None


class PaymentUnit(BaseModel):
    unit: str
    name: str
    state: str = Field(description="pending | reviewed | approved")
    amount_yuan: str
    lines: list[dict[str, Any]]


class Payments(BaseModel):
    group: str
    period: str
    total_yuan: str
    units: list[PaymentUnit]


def _appeal(a: Appeal) -> AppealOut:
    return AppealOut(
        id=a.id,
        unit=a.unit.code,
        group=a.publication.group.code,
        period=a.publication.period,
        publication_version=a.publication.version,
        text=a.text,
        filed_at=a.filed_at.isoformat() + "Z",
        state=a.state,
        answer=a.answer,
        answered_at=None if a.answered_at is None else a.answered_at.isoformat() + "Z",
    )


@router.get("/results/{group}/{period}", response_model=Ranking)
def api_ranking(db: Db, user: SignedIn, group: str, period: str) -> dict[str, Any]:
    """The ranking of a group for a period."""
    return ranking(db, user, group_by_code(db, group), period).to_json()


@router.get("/results/{group}/{period}/{unit}", response_model=UnitResult)
def api_unit(db: Db, user: SignedIn, group: str, period: str, unit: str) -> dict[str, Any]:
    """One unit's result with its term-by-term explanation and trend."""
    g = group_by_code(db, group)
    return unit_view(db, user, g, unit_by_code(db, unit), period).to_json()


@router.post("/publications/{group}/{period}", response_model=PublicationOut)
def api_publish(
    db: Db, user: SignedIn, group: str, period: str, body: PublishIn | None = None
) -> dict[str, Any]:
    """Publish (or republish) a group's results for a period; returns what changed."""
    body = body or PublishIn()
    out = publish(db, user, group_by_code(db, group), period, body.appeal_days, body.note)
    return {
        "publication": publication_json(out.publication),
        "previous_version": None if out.previous is None else out.previous.version,
        "changes": [d.to_json() for d in out.diff],
    }


@router.get("/publications", response_model=list[dict[str, Any]])
def api_publications(db: Db, user: SignedIn) -> list[dict[str, Any]]:
    """Current publications of the groups the user may see."""
    out = []
    for pub in publications(db):
        g = pub.group
        visible = (
            user.unit is not None and user.unit.parent_id == g.id
            if user.role == "reporter"
            else can_read(db, user, g)
        )
        if visible:
            out.append(publication_json(pub))
    return out


@router.get("/appeals", response_model=list[AppealOut])
def api_appeals(db: Db, user: SignedIn) -> list[AppealOut]:
    return [_appeal(a) for a in visible_appeals(db, user)]


@router.post("/appeals", response_model=AppealOut, status_code=201)
def api_file_appeal(db: Db, user: SignedIn, body: AppealIn) -> AppealOut:
    """A reporter appeals its unit's published result (within the appeal window)."""
    return _appeal(file_appeal(db, user, unit_by_code(db, body.unit), body.period, body.text))


@router.post("/appeals/{appeal_id}/answer", response_model=AppealOut)
def api_answer(db: Db, user: SignedIn, appeal_id: int, body: AnswerIn) -> AppealOut:
    return _appeal(answer_appeal(db, user, appeal_id, body.answer))


@router.get("/payments/{group}/{period}", response_model=Payments)
def api_payments(db: Db, user: SignedIn, group: str, period: str) -> dict[str, Any]:
    """Payment lines with their review/approval state (reporters: their own unit's)."""
    ctx = payments_context(db, user, group, period)
    return {
        "group": ctx["group"].code,
        "period": str(ctx["period"]),
        "total_yuan": ctx["total"],
        "units": [
            {
                "unit": u["unit"],
                "name": u["name"],
                "state": u["state"],
                "amount_yuan": u["yuan"],
                "lines": [_line(x) for x in u["lines"]],
            }
            for u in ctx["units"]
        ],
    }


def _line(rec: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "period",
        "code",
        "label",
        "payee",
        "funder",
        "count",
        "rate_yuan",
        "amount_yuan",
        "basis_text",
        "clause",
        "status",
        "reviewed_by",
        "approved_by",
    )
    return {k: rec.get(k) for k in keys}


@router.post("/payments/{group}/{period}/{unit}/review", response_model=Payments)
def api_review(db: Db, user: SignedIn, group: str, period: str, unit: str) -> dict[str, Any]:
    """The unit's director reviews its lines of the period."""
    review(db, user, group_by_code(db, group), period, unit)
    return api_payments(db, user, group, period)


@router.post("/payments/{group}/{period}/{unit}/approve", response_model=Payments)
def api_approve(db: Db, user: SignedIn, group: str, period: str, unit: str) -> dict[str, Any]:
    """The street's deputy director approves the unit's reviewed lines (review first)."""
    approve(db, user, group_by_code(db, group), period, unit)
    return api_payments(db, user, group, period)


@router.get("/public/results/{group}/{period}", response_model=Ranking)
def api_public(db: Db, user: CurrentUser, group: str, period: str) -> dict[str, Any]:
    """Published results (no login): the frozen figures of the current publication."""
    g = group_by_code(db, group)
    view = ranking(db, None, g, period, PUBLISHED)
    if view.publication is None:
        raise NotFound(f"the results of {g.code} for {period} are not published")
    return view.to_json()


@router.get("/public/results/{group}/{period}/{unit}", response_model=UnitResult)
def api_public_unit(
    db: Db, user: CurrentUser, group: str, period: str, unit: str
) -> dict[str, Any]:
    """One unit's published result (no login)."""
    g = group_by_code(db, group)
    u = unit_by_code(db, unit)
    if u.parent_id != g.id:
        raise NotFound(f"unit '{unit}' is not assessed by {group}")
    return unit_view(db, None, g, u, period, PUBLISHED).to_json()


__all__ = ["Forbidden", "router"]
