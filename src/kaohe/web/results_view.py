"""View models of the results pages and API: ranking rows, heat map, trend, explanations.

Pages and the JSON API share these functions.  Who sees what:

- ``full``: admins, viewers and the group's assessors: live (draft) scores and
  the current publication with the differences between them;
- ``published``: a reporter (its own group) and the public: the frozen
  figures of the current publication only.
"""

from __future__ import annotations

import html
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden, can_read
from kaohe.engine.evaluate import rank_col
from kaohe.engine.explain import Explanation, _add_outcomes, _explanation, explain_unit
from kaohe.engine.explain import to_json as explanation_json
from kaohe.engine.reference import assessed_groups, dataset_values, score_units, steps_of
from kaohe.engine.result import ScoreResult
from kaohe.numbers import fmt2
from kaohe.periods import Period, PeriodKind, parse_period
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.store.models import OrgUnit, Publication, User
from kaohe.web.i18n import translator
from kaohe.workflow.publish import (
    Comparison,
    compare_live,
    db_key,
    doc_of,
    fingerprint,
    frozen_rulebook,
    has_data,
    live_result,
    periods_of,
    previous_period,
    published,
    rulebook_for,
)
from kaohe.workflow.scoring import GroupInputs, group_inputs
from kaohe.workflow.units import group_of

FULL = "full"
PUBLISHED = "published"

#: colour bands by share of the maximum points: (lowest share, css class, label)
BANDS = [(0.9, "band-a", "≥90%"), (0.8, "band-b", "80–90%"), (0.6, "band-c", "60–80%")]
LOW_BAND = ("band-d", "<60%")


def group_mode(session: Session, user: User | None, group: OrgUnit) -> str:
    """``full`` or ``published`` access to a group's results; Forbidden otherwise."""
    if user is None:
        return PUBLISHED
    if user.role == "reporter":
        if user.unit is not None and user.unit.parent_id == group.id:
            return PUBLISHED
        raise Forbidden()
    if can_read(session, user, group):
        return FULL
    raise Forbidden()


def unit_mode(session: Session, user: User | None, group: OrgUnit, unit: OrgUnit) -> str:
    """Access to one unit's page: reporters only their own unit (with its live explanation)."""
    if unit.parent_id != group.id:
        from kaohe.workflow.units import NotFound

        raise NotFound(f"unit '{unit.code}' is not assessed by {group.code}")
    if user is None:
        return PUBLISHED
    if user.role == "reporter":
        if user.unit_id == unit.id:
            return FULL
        raise Forbidden()
    if can_read(session, user, unit):
        return FULL
    raise Forbidden()


def visible_groups(session: Session, user: User | None, groups: list[OrgUnit]) -> list[OrgUnit]:
    out = []
    for g in groups:
        try:
            group_mode(session, user, g)
        except Forbidden:
            continue
        out.append(g)
    return out


# ---------------------------------------------------------------- the rulebook's shape


def max_points(rb: LoadedRulebook, p: Period) -> float:
    """The most points the items can give for ``p`` (summed periods: per step × steps)."""
    total = sum(x for x in (rb.points(i) for i in rb.model.items) if x is not None)
    how, steps = steps_of(rb, p)
    return total * (len(steps) if how == "sum" else 1)


def item_points(rb: LoadedRulebook, p: Period) -> dict[str, float | None]:
    how, steps = steps_of(rb, p)
    k = len(steps) if how == "sum" else 1
    return {
        i.code: (None if rb.points(i) is None else float(rb.points(i) or 0) * k)
        for i in rb.model.items
    }


def band(share: float | None) -> tuple[str, str]:
    if share is None:
        return LOW_BAND
    for low, css, label in BANDS:
        if share >= low:
            return css, label
    return LOW_BAND


# ---------------------------------------------------------------- ranking


@dataclass
class Ranking:
    group: OrgUnit
    period: Period
    mode: str
    rulebook: LoadedRulebook | None
    publication: Publication | None
    comparison: Comparison | None
    doc: dict[str, Any] | None  # the figures shown: live (full) or frozen (published)
    previous: Period | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)
    max_points: float = 0.0
    periods: list[str] = field(default_factory=list)
    #: the database and data fingerprint the figures come from (cache keys)
    db: str = ""
    fp: tuple[Any, ...] | None = None

    @property
    def state(self) -> str:
        return "published" if self.publication is not None else "draft"

    def heat(self) -> dict[str, Any]:
        """ECharts heat map data: [item index, unit index, score / points]."""
        items = [i for i in self.items if i["points"]]
        data = []
        for y, r in enumerate(self.rows):
            scores = r["items"]
            for x, it in enumerate(items):
                v = scores.get(it["code"])
                if v is not None:
                    data.append([x, y, round(float(v) / float(it["points"]), 4)])
        return {
            "items": [f"{i['code']} {i['name']}" for i in items],
            "units": [r["name"] for r in self.rows],
            "data": data,
        }

    def to_json(self) -> dict[str, Any]:
        pub = self.publication
        return {
            "group": self.group.code,
            "group_name": self.group.name,
            "period": str(self.period),
            "state": self.state,
            "publication": None if pub is None else publication_json(pub),
            "changed_since_publication": None
            if self.comparison is None
            else self.comparison.changed,
            "rulebook_changed": None
            if self.comparison is None
            else self.comparison.rulebook_changed,
            "changes": []
            if self.comparison is None
            else [d.to_json() for d in self.comparison.diff],
            "previous_period": None if self.previous is None else str(self.previous),
            "max_points": self.max_points,
            "rows": [{k: v for k, v in r.items() if k not in ("band_label",)} for r in self.rows],
        }


_TABLES: OrderedDict[tuple[Any, ...], tuple[str, str]] = OrderedDict()
_TABLES_LOCK = threading.Lock()


def ranking_html(view: Ranking, base: str, lang: str) -> tuple[str, str]:
    """The ranking table's HTML and the heat map's JSON, built once per figures shown
    (a 500-row table through Jinja costs tens of milliseconds; this is a lookup)."""
    pub = view.publication
    key = (
        view.db,
        view.group.id,
        str(view.period),
        view.mode,
        view.fp,
        None if pub is None else pub.id,
        lang,
        base,
    )
    with _TABLES_LOCK:
        hit = _TABLES.get(key)
        if hit is not None:
            _TABLES.move_to_end(key)
            return hit
    out = (_table_html(view, base, translator(lang)), _script_json(view.heat()))
    with _TABLES_LOCK:
        _TABLES[key] = out
        while len(_TABLES) > 128:
            _TABLES.popitem(last=False)
    return out


def _script_json(value: Any) -> str:
    """JSON for a <script type="application/json"> block (no '</' can close it)."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def _table_html(view: Ranking, base: str, _: Any) -> str:
    e = html.escape
    head = [
        f'<th data-sort="num">{e(_("名次"))}</th>',
        f'<th data-sort="text">{e(_("单位"))}</th>',
        f'<th data-sort="num" class="num">{e(_("总分"))}</th>',
        f'<th data-sort="num" class="num">{e(_("得分率"))}</th>',
        f'<th data-sort="num">{e(_("名次变化"))}</th>',
        *(f'<th data-sort="text">{e(label)}</th>' for label in view.flags.values()),
        f"<th>{e(_('结果运用'))}</th>",
        *(
            f'<th data-sort="num" class="num" title="{e(it["name"])}">{e(it["code"])}</th>'
            for it in view.items
        ),
    ]
    yes, no = e(_("是")), e(_("否"))
    changed_badge = (
        f' <span class="badge returned" title="{e(_("数据在公布后有变化"))}">'
        f"{e(_('有变化'))}</span>"
    )
    up, down, veto = e(_("上升")), e(_("下降")), e(_("一票否决"))
    codes = [it["code"] for it in view.items]
    href = f"{base}/{e(view.group.code)}/{e(str(view.period))}/"
    body = []
    for r in view.rows:
        ch = r["rank_change"]
        if ch is None:
            change = '<span class="muted">—</span>'
        elif ch > 0:
            change = f'<span class="up" title="{up}">↑{ch}</span>'
        elif ch < 0:
            change = f'<span class="down" title="{down}">↓{-ch}</span>'
        else:
            change = '<span class="muted">–</span>'
        flags = "".join(
            f'<td data-value="{1 if r["flags"].get(c) else 0}">'
            + ((yes if r["flags"][c] else no) if c in r["flags"] else "")
            + "</td>"
            for c in view.flags
        )
        outcomes = (f'<strong class="down">{veto}</strong> ' if r["vetoed"] else "") + e(
            "、".join(r["outcomes"])
        )
        items = r["items"]
        cells = "".join(
            f'<td class="num" data-value="{items.get(c) or 0}">{fmt2(items.get(c))}</td>'
            for c in codes
        )
        share = "" if r["share"] is None else f"{r['share'] * 100:.1f}%"
        body.append(
            f'<tr class="{r["band"]}" data-unit="{e(r["unit"])}">'
            f'<td data-value="{r["rank"]}" class="num">{r["rank"]}</td>'
            f'<td data-value="{e(r["name"])}"><a href="{href}{e(r["unit"])}">{e(r["name"])}</a>'
            f"{changed_badge if r['changed'] else ''}</td>"
            f'<td data-value="{r["total"]}" class="num">{fmt2(r["total"])}</td>'
            f'<td data-value="{r["share"] or 0}" class="num">{share}</td>'
            f'<td data-value="{ch if ch is not None else 0}" class="change">{change}</td>'
            f"{flags}<td>{outcomes}</td>{cells}</tr>"
        )
    return (
        '<table class="grid sortable" id="ranking"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>"
        + "\n".join(body)
        + "</tbody></table>"
    )


def publication_json(pub: Publication) -> dict[str, Any]:
    return {
        "id": pub.id,
        "group": pub.group.code,
        "period": pub.period,
        "version": pub.version,
        "rulebook": pub.rulebook_version.code,
        "rulebook_sha256": pub.rulebook_version.sha256,
        "published_at": pub.published_at.isoformat() + "Z",
        "appeal_days": pub.appeal_days,
        "note": pub.note,
        "superseded": pub.superseded,
    }


def _prev_ranks(
    session: Session,
    group: OrgUnit,
    prev: Period | None,
    mode: str,
    fp: tuple[Any, ...] | None = None,
) -> dict[str, int] | None:
    if prev is None:
        return None
    if mode == PUBLISHED:
        pub = published(session, group, prev)
        if pub is None:
            return None
        return {r["unit"]: r["rank"] for r in doc_of(pub)["results"]}
    if fp is None and not has_data(session, group, prev.year):
        return None
    _, doc = live_result(session, group, prev, fp)
    return {r["unit"]: r["rank"] for r in doc["results"]}


def ranking(
    session: Session, user: User | None, group: OrgUnit, period: str, mode: str | None = None
) -> Ranking:
    from kaohe.workflow.publish import check_period

    mode = mode or group_mode(session, user, group)
    p = check_period(session, group, period)
    pub = published(session, group, p)
    comparison = None
    fp: tuple[Any, ...] | None = None
    doc: dict[str, Any] | None
    rb: LoadedRulebook | None
    if mode == FULL:
        fp = fingerprint(session, group, p.year)
        _, doc = live_result(session, group, p, fp)
        _, rb = rulebook_for(session, group)
        if pub is not None:
            comparison = compare_live(session, group, pub, fp)
    else:
        doc = doc_of(pub) if pub is not None else None
        rb = frozen_rulebook(pub) if pub is not None else None
    prev = previous_period(p.kind, p)
    view = Ranking(group, p, mode, rb, pub, comparison, doc, prev, db=db_key(session), fp=fp)
    if doc is None or rb is None:
        return view
    pts = item_points(rb, p)
    view.items = [{"code": i.code, "name": i.name, "points": pts[i.code]} for i in rb.model.items]
    view.flags = {code: f.label for code, f in rb.model.flags.items()}
    view.max_points = max_points(rb, p)
    same_year = fp if prev is not None and prev.year == p.year else None
    prev_ranks = _prev_ranks(session, group, prev, mode, same_year)
    changed = {d.unit for d in comparison.diff} if comparison is not None else set()
    for r in doc["results"]:
        share = r["total"] / view.max_points if view.max_points else None
        css, label = band(share)
        before = prev_ranks.get(r["unit"]) if prev_ranks is not None else None
        view.rows.append(
            {
                "unit": r["unit"],
                "name": r["name"],
                "total": r["total"],
                "rank": r["rank"],
                "share": None if share is None else round(share, 4),
                "band": css,
                "band_label": label,
                "previous_rank": before,
                # positive: moved up (a smaller rank number than before)
                "rank_change": None if before is None else before - r["rank"],
                "items": r["items"],
                "adjustments": r.get("adjustments", {}),
                "rank_bonus": r.get("rank_bonus", 0),
                "flags": {c: bool(r.get(c)) for c in view.flags if c in r},
                "vetoed": bool(r.get("vetoed")),
                "outcomes": [o["label"] for o in r.get("outcomes", [])],
                "changed": r["unit"] in changed,
            }
        )
    return view


# ---------------------------------------------------------------- explanations (cached)

_INPUTS: OrderedDict[tuple[Any, ...], GroupInputs] = OrderedDict()
_EXPL: OrderedDict[tuple[Any, ...], Explanation] = OrderedDict()
_LOCK = threading.Lock()


def _cached_inputs(
    session: Session, group: OrgUnit, year: int, fp: tuple[Any, ...], version_id: int
) -> GroupInputs:
    key = (db_key(session), group.id, year, version_id, *fp)
    with _LOCK:
        hit = _INPUTS.get(key)
        if hit is not None:
            _INPUTS.move_to_end(key)
            return hit
    inputs = group_inputs(session, group, year)
    with _LOCK:
        _INPUTS[key] = inputs
        while len(_INPUTS) > 32:
            _INPUTS.popitem(last=False)
    return inputs


def explain(
    session: Session,
    group: OrgUnit,
    p: Period,
    unit: str,
    fp: tuple[Any, ...] | None = None,
) -> Explanation:
    """The live term-by-term explanation of ``unit``: ranks, flags and outcomes from
    the group's cached scores (no re-scoring of the group), the unit's terms from
    the reference interpreter."""
    version, rb = rulebook_for(session, group)
    fp = fp if fp is not None else fingerprint(session, group, p.year)
    key = (db_key(session), group.id, str(p), unit, version.id, *fp)
    with _LOCK:
        hit = _EXPL.get(key)
        if hit is not None:
            _EXPL.move_to_end(key)
            return hit
    result, _ = live_result(session, group, p, fp)
    ranks = _ranks_of(session, group, rb, result, p, unit, fp)
    inputs = _cached_inputs(session, group, p.year, fp, version.id)
    expl = _explain_one(inputs, p, unit, ranks)
    _add_outcomes(inputs.rulebook, expl, result, unit)
    with _LOCK:
        _EXPL[key] = expl
        while len(_EXPL) > 2048:
            _EXPL.popitem(last=False)
    return expl


@dataclass
class _GroupValues:
    """What :func:`kaohe.engine.explain.explain_unit` derives from a group's inputs
    before it scores one unit, derived once per group, year and data."""

    groups: dict[str, str | None]
    names: dict[str, str]
    values: dict[str, dict[str, dict[str, float | None]]]


_VALUES: OrderedDict[int, tuple[GroupInputs, int, _GroupValues]] = OrderedDict()


def _group_values(inputs: GroupInputs, year: int) -> _GroupValues:
    with _LOCK:
        hit = _VALUES.get(id(inputs))
        if hit is not None and hit[0] is inputs and hit[1] == year:
            return hit[2]
    rb, dataset, units = inputs.rulebook, inputs.dataset, inputs.units
    out = _GroupValues(
        assessed_groups(rb, dataset.units(), units),
        units.name_of() if units is not None else {},
        dataset_values(rb, dataset, year),
    )
    with _LOCK:
        _VALUES[id(inputs)] = (inputs, year, out)  # the inputs are kept: ids stay unique
        while len(_VALUES) > 32:
            _VALUES.popitem(last=False)
    return out


def _explain_one(inputs: GroupInputs, p: Period, unit: str, ranks: dict[str, int]) -> Explanation:
    """``explain_unit(..., ranks=ranks)`` of a group's own inputs (one rank group: the
    group's children), with the group's values read once for all its units."""
    rb = inputs.rulebook
    how, steps = steps_of(rb, p)
    keys = [str(p)]
    if how != "step":
        keys += [str(Period(p.year, rb.model.periods.step, k)) for k in steps]
    gv = _group_values(inputs, p.year)
    if unit not in gv.groups or any(k not in ranks for k in keys):
        return explain_unit(rb, inputs.dataset, inputs.units, p, unit, ranks=ranks)
    res = score_units(
        rb, {unit: gv.values.get(unit, {})}, gv.groups, p, {unit: dict(ranks)}, detail={unit}
    )[unit]
    group = gv.groups[unit]
    group_name = gv.names.get(group, group) if group is not None else None
    return _explanation(rb, res, p, gv.names.get(unit, unit), group_name)


#: per score result (kept, so that ids stay unique): unit -> rank, unit -> step ranks
_RANKS: OrderedDict[int, tuple[ScoreResult, dict[str, int], dict[str, dict[str, int]]]] = (
    OrderedDict()
)


def _rank_maps(result: ScoreResult) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    with _LOCK:
        hit = _RANKS.get(id(result))
        if hit is not None and hit[0] is result:
            return hit[1], hit[2]
    t = result.table
    ranks = dict(zip(t["unit"].to_list(), t["rank"].to_list(), strict=True))
    steps: dict[str, dict[str, int]] = {}
    if result.steps is not None:
        units = result.steps["unit"].to_list()
        for col in result.steps.columns:
            if col != "unit":
                steps[col] = dict(zip(units, result.steps[col].to_list(), strict=True))
    with _LOCK:
        _RANKS[id(result)] = (result, ranks, steps)
        while len(_RANKS) > 512:
            _RANKS.popitem(last=False)
    return ranks, steps


def _ranks_of(
    session: Session,
    group: OrgUnit,
    rb: LoadedRulebook,
    result: ScoreResult,
    p: Period,
    unit: str,
    fp: tuple[Any, ...],
) -> dict[str, int]:
    table, step_ranks = _rank_maps(result)
    if unit not in table:
        from kaohe.workflow.units import NotFound

        raise NotFound(f"unit '{unit}' has no result for {p} in {group.code}")
    ranks = {str(p): int(table[unit])}
    how, steps = steps_of(rb, p)
    if how == "step":
        return ranks
    step = rb.model.periods.step
    for k in steps:
        sp = Period(p.year, step, k)
        if rank_col(k) in step_ranks:
            ranks[str(sp)] = int(step_ranks[rank_col(k)][unit])
        else:
            sub, _ = live_result(session, group, sp, fp)
            ranks[str(sp)] = int(_rank_maps(sub)[0][unit])
    return ranks


def clear_caches() -> None:
    with _LOCK:
        _INPUTS.clear()
        _EXPL.clear()
        _VALUES.clear()
        _RANKS.clear()


# ---------------------------------------------------------------- the unit page


@dataclass
class UnitView:
    group: OrgUnit
    unit: OrgUnit
    period: Period
    mode: str
    publication: Publication | None
    published_record: dict[str, Any] | None
    live_record: dict[str, Any] | None
    explanation: Explanation | None
    #: why no explanation is shown (published mode, data changed since publication)
    explanation_note: str | None
    unit_changed: bool
    trend: dict[str, Any]
    rulebook: LoadedRulebook | None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group.code,
            "unit": self.unit.code,
            "name": self.unit.name,
            "period": str(self.period),
            "state": "published" if self.publication is not None else "draft",
            "publication": None if self.publication is None else publication_json(self.publication),
            "published": self.published_record,
            "live": self.live_record,
            "changed_since_publication": self.unit_changed,
            "explanation": None if self.explanation is None else explanation_json(self.explanation),
            "explanation_note": self.explanation_note,
            "trend": self.trend,
        }


def _record(doc: dict[str, Any] | None, unit: str) -> dict[str, Any] | None:
    if doc is None:
        return None
    return next((r for r in doc["results"] if r["unit"] == unit), None)


def trend_periods(rb: LoadedRulebook, p: Period) -> list[Period]:
    """The periods of ``p``'s year of the rulebook's step (T1–T3 or the months)."""
    step = rb.model.periods.step
    year = Period(p.year, PeriodKind.YEAR, 1)
    return year.subperiods(step) if step is not PeriodKind.YEAR else [year]


def unit_view(
    session: Session,
    user: User | None,
    group: OrgUnit,
    unit: OrgUnit,
    period: str,
    mode: str | None = None,
) -> UnitView:
    from kaohe.workflow.publish import check_period

    mode = mode or unit_mode(session, user, group, unit)
    p = check_period(session, group, period)
    pub = published(session, group, p)
    pub_doc = doc_of(pub) if pub is not None else None
    published_record = _record(pub_doc, unit.code)
    live_record = None
    expl = None
    note = None
    changed = False
    if mode == FULL:
        fp = fingerprint(session, group, p.year)
        _, live = live_result(session, group, p, fp)
        live_record = _record(live, unit.code)
        if live_record is None:
            from kaohe.workflow.units import NotFound

            raise NotFound(f"unit '{unit.code}' has no result for {p}")
        expl = explain(session, group, p, unit.code, fp)
        _, rb = rulebook_for(session, group)
        if published_record is not None:
            changed = published_record != live_record
        trend = _trend_live(session, group, rb, p, unit.code, fp)
    else:
        if pub is None or published_record is None:
            from kaohe.workflow.units import NotFound

            raise NotFound(f"the results of {group.code} for {p} are not published")
        rb = frozen_rulebook(pub)
        fp = fingerprint(session, group, p.year)
        comparison = compare_live(session, group, pub, fp)
        changed = any(d.unit == unit.code for d in comparison.diff) or comparison.rulebook_changed
        if changed:
            note = "数据在公布后有变化，逐项说明以公布的得分为准，暂不显示计算明细"
        else:
            expl = explain(session, group, p, unit.code, fp)
        trend = _trend_published(session, group, rb, p, unit.code)
    return UnitView(
        group, unit, p, mode, pub, published_record, live_record, expl, note, changed, trend, rb
    )


def _trend_live(
    session: Session,
    group: OrgUnit,
    rb: LoadedRulebook,
    p: Period,
    unit: str,
    fp: tuple[Any, ...],
) -> dict[str, Any]:
    out: dict[str, Any] = {"periods": [], "labels": [], "total": [], "rank": []}
    for sp in trend_periods(rb, p):
        _, doc = live_result(session, group, sp, fp)
        rec = _record(doc, unit)
        out["periods"].append(str(sp))
        out["labels"].append(sp.label_zh)
        out["total"].append(None if rec is None else rec["total"])
        out["rank"].append(None if rec is None else rec["rank"])
    return out


def _trend_published(
    session: Session, group: OrgUnit, rb: LoadedRulebook, p: Period, unit: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"periods": [], "labels": [], "total": [], "rank": []}
    for sp in trend_periods(rb, p):
        pub = published(session, group, sp)
        rec = _record(doc_of(pub), unit) if pub is not None else None
        out["periods"].append(str(sp))
        out["labels"].append(sp.label_zh)
        out["total"].append(None if rec is None else rec["total"])
        out["rank"].append(None if rec is None else rec["rank"])
    return out


def group_of_unit(session: Session, unit: OrgUnit) -> OrgUnit | None:
    return group_of(session, unit)


def all_periods(session: Session, group: OrgUnit) -> list[str]:
    return periods_of(session, group)


__all__ = ["FULL", "PUBLISHED", "Ranking", "UnitView", "parse_period", "ranking", "unit_view"]
