"""Publishing a group's results: frozen figures, versions, and what changed.

A publication freezes the JSON of ``kaohe score`` (:func:`kaohe.output.to_json_dict`)
of one group (township/street) for one period, with the rulebook version that
produced it.  Published figures are never recomputed: pages compare them with
the live scores (:func:`compare_live`) and show what changed; a republish adds
a new version, marks the old one superseded and returns the differences per
unit (:func:`diff_results`).  Every publication is audited.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden, can_review
from kaohe.engine.evaluate import plan_period
from kaohe.engine.result import ScoreResult
from kaohe.errors import KaoheError
from kaohe.output import to_json_dict
from kaohe.periods import Period, PeriodError, PeriodKind, parse_period
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.store.models import (
    AuditEntry,
    DataValue,
    OrgUnit,
    Publication,
    RulebookVersion,
    Submission,
    User,
)
from kaohe.workflow.rulebooks import loaded
from kaohe.workflow.scoring import data_fingerprint, rulebook_of, score_group
from kaohe.workflow.units import NotFound, unit_by_code

#: appeal window used when none is given (days after publication)
DEFAULT_APPEAL_DAYS = 7
MAX_APPEAL_DAYS = 365


class PublishError(KaoheError):
    """A publication request that cannot be honoured (bad period, bad appeal window)."""


# ---------------------------------------------------------------- lookups
def rulebook_for(session: Session, group: OrgUnit) -> tuple[RulebookVersion, LoadedRulebook]:
    """:func:`kaohe.workflow.scoring.rulebook_of`, looked up once per session until
    anything is written (a results page asks for it a dozen times)."""
    memo: dict[Any, tuple[RulebookVersion, LoadedRulebook]] = session.info.setdefault(
        "kaohe_rulebooks", {}
    )
    key = (_CHANGES[0], group.rulebook)
    hit = memo.get(key)
    if hit is None:
        memo.clear()
        hit = memo[key] = rulebook_of(session, group)
    return hit


def group_by_code(session: Session, code: str) -> OrgUnit:
    """A township/street that assesses its children (names a rulebook)."""
    unit = unit_by_code(session, code)
    if unit.rulebook is None:
        raise NotFound(f"unit '{code}' is not an assessing township/street (it names no rulebook)")
    return unit


def check_period(session: Session, group: OrgUnit, period: str) -> Period:
    """``period`` parsed, and known to the group's rulebook (else a clear error)."""
    try:
        p = parse_period(period)
    except PeriodError as e:
        raise NotFound(str(e)) from None
    _, rb = rulebook_for(session, group)
    try:
        plan_period(rb, p)
    except KaoheError as e:
        raise NotFound(str(e)) from None
    return p


def periods_of(session: Session, group: OrgUnit) -> list[str]:
    """Every period the group's rulebook assesses, for each year the group has data:
    steps in order, then longer periods (quarters), then the year."""
    key = (db_key(session), group.id, -1)
    stamp = change_stamp(session)
    now = time.monotonic()
    with _FP_LOCK:
        hit = _PERIODS.get(key)
        if hit is not None and hit[0] == stamp and now - hit[1] < FINGERPRINT_TTL:
            return list(hit[2])
    _, rb = rulebook_for(session, group)
    ids = [c.id for c in group.children]
    if not ids:
        return []
    years = sorted(
        {
            int(str(p)[:4])
            for p in session.scalars(
                select(DataValue.period).where(DataValue.unit_id.in_(ids)).distinct()
            )
            if str(p)[:4].isdigit()
        }
    )
    step = rb.model.periods.step
    out: list[str] = []
    for y in years:
        year = Period(y, PeriodKind.YEAR, 1)
        out += [str(s) for s in year.subperiods(step)] if step is not PeriodKind.YEAR else []
        if not rb.model.periods.cumulative and step is PeriodKind.MONTH:
            out += [str(q) for q in year.subperiods(PeriodKind.QUARTER)]
        out.append(str(year))
    with _FP_LOCK:
        _PERIODS[key] = (stamp, now, out)
    return list(out)


def previous_period(rb_step: PeriodKind, p: Period) -> Period | None:
    """The period before ``p`` of the same kind within its year (the year before for a year).

    The first step of a year has none: a year's assessment starts afresh."""
    if p.kind is PeriodKind.YEAR:
        return Period(p.year - 1, PeriodKind.YEAR, 1)
    if p.index > 1:
        return Period(p.year, p.kind, p.index - 1)
    return None


def has_data(session: Session, group: OrgUnit, year: int) -> bool:
    ids = [c.id for c in group.children]
    if not ids:
        return False
    n = session.scalar(
        select(func.count(DataValue.id))
        .where(DataValue.unit_id.in_(ids))
        .where(DataValue.period.like(f"{year}%"))
    )
    return bool(n)


def data_periods(session: Session, group: OrgUnit, p: Period) -> list[str]:
    """The data rows ``p`` is scored from: the year row and the steps it reads."""
    _, rb = rulebook_for(session, group)
    plan = plan_period(rb, p)
    step = rb.model.periods.step
    steps = [str(Period(p.year, step, k)) for k in plan.data_steps]
    return list(dict.fromkeys([str(p.year_period()), *steps]))


def unapproved(session: Session, group: OrgUnit, p: Period) -> list[tuple[str, str, str]]:
    """(unit, data period, state) of every child whose data for ``p`` is not approved
    yet (state "none" when nothing was submitted): shown before publishing."""
    periods = data_periods(session, group, p)
    states = {
        (uid, per): state
        for uid, per, state in session.execute(
            select(Submission.unit_id, Submission.period, Submission.state)
            .where(Submission.unit_id.in_([c.id for c in group.children] or [-1]))
            .where(Submission.period.in_(periods))
        )
    }
    out = []
    for c in group.children:
        for per in periods:
            state = states.get((c.id, per), "none")
            if state != "approved":
                out.append((c.code, per, state))
    return out


# ---------------------------------------------------------------- change stamps

#: a memoised fingerprint (and the period list) is reused for at most this many
#: seconds even when no change was seen (a safety net: every committed write, by
#: this process or another, is seen at once through :func:`change_stamp`)
FINGERPRINT_TTL = 60.0

#: bumped when a transaction that wrote anything the results pages show commits (or
#: rolls back: a reader in its window may have cached what it wrote) in this process,
#: and when :func:`change_stamp` sees a commit made through another connection
_CHANGES = [0]
_FP: dict[tuple[str, int, int], tuple[tuple[int, int], float, tuple[Any, ...]]] = {}
_FP_LOCK = threading.Lock()
_PERIODS: dict[tuple[str, int, int], tuple[tuple[int, int], float, list[str]]] = {}

_WRITE = re.compile(r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.I)
_READ_HEADS = ("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK", "SHOW")
#: writes to these tables do not change what any results page shows (sign-ins, sign-outs
#: and API-token use); the session and its user are read afresh on every request anyway
UNTRACKED_TABLES = frozenset({"user_session", "api_token"})


def db_key(session: Session) -> str:
    """Which database a session talks to (cache keys must not mix databases)."""
    return str(session.get_bind().engine.url)


def _tracked_write(statement: str) -> bool:
    """Whether ``statement`` may change what a results page shows (unknown statements
    that are not plain reads count as writes)."""
    m = _WRITE.match(statement)
    if m is not None:
        return m.group(1).lower() not in UNTRACKED_TABLES
    head = statement.lstrip()[:9].upper()
    return not head.startswith(_READ_HEADS) and not head.startswith("WITH")


@event.listens_for(Engine, "after_cursor_execute")
def _note_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    if _tracked_write(statement):
        with _FP_LOCK:
            _CHANGES[0] += 1  # also now: readers in this transaction's window do not cache
        conn.info["kaohe_changed"] = True


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _bump_on_end(conn: Any) -> None:
    if conn.info.pop("kaohe_changed", False):
        with _FP_LOCK:
            _CHANGES[0] += 1


#: per SQLite file: a connection of its own that only ever asks ``PRAGMA data_version``
#: (which changes whenever another connection, of any process, commits), the file's
#: identity (a file replaced by a restore is watched afresh) and the last version seen
_SENTINELS: OrderedDict[str, tuple[sqlite3.Connection, tuple[int, int], int]] = OrderedDict()
#: per PostgreSQL database: the last transaction snapshot seen
_PG_SNAPSHOTS: dict[str, str] = {}


def _data_version(conn: sqlite3.Connection) -> int:
    # fetchall: the statement is finished, so the watcher holds no read lock
    return int(conn.execute("PRAGMA data_version").fetchall()[0][0])


def _sqlite_changed(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return True
    ident = (st.st_dev, st.st_ino)
    with _FP_LOCK:
        hit = _SENTINELS.get(path)
        if hit is None or hit[1] != ident:
            if hit is not None:
                hit[0].close()
            try:  # mode=rw: never create a file that is not there
                conn = sqlite3.connect(
                    f"file:{quote(os.path.abspath(path))}?mode=rw",
                    uri=True,
                    check_same_thread=False,
                    timeout=10,
                )
            except sqlite3.Error:
                return True
            version = _data_version(conn)
            _SENTINELS[path] = (conn, ident, version)
            _SENTINELS.move_to_end(path)
            while len(_SENTINELS) > 8:
                _SENTINELS.popitem(last=False)[1][0].close()
            return True  # not watched until now
        conn, _, seen = hit
        version = _data_version(conn)
        if version == seen:
            return False
        _SENTINELS[path] = (conn, ident, version)
        return True


def change_stamp(session: Session) -> tuple[int, int]:
    """A value that changes whenever anything a results page shows may have changed:
    a tracked write committed in this process, or any commit by another connection or
    process (SQLite: ``PRAGMA data_version`` of a watching connection; PostgreSQL: the
    transaction snapshot, which moves with every committed write in the cluster).  Other
    databases: the in-process writes and a :data:`FINGERPRINT_TTL` time bucket.

    Read it *before* reading what is cached under it: a change in between makes the
    entry stale at once, never the other way round."""
    if session.new or session.dirty or session.deleted:
        session.flush()  # as the queries this stamp stands for would (autoflush)
    url = session.get_bind().engine.url
    backend = url.get_backend_name()
    changed = False
    bucket = 0
    if backend == "sqlite" and url.database and url.database != ":memory:":
        changed = _sqlite_changed(url.database)
    elif backend == "postgresql":
        snap = str(session.execute(text("SELECT txid_current_snapshot()::text")).scalar())
        key = str(url)
        with _FP_LOCK:
            changed = _PG_SNAPSHOTS.get(key) != snap
            _PG_SNAPSHOTS[key] = snap
    else:
        bucket = int(time.monotonic() // FINGERPRINT_TTL)
    with _FP_LOCK:
        if changed:
            _CHANGES[0] += 1
        return (_CHANGES[0], bucket)


def fingerprint(session: Session, group: OrgUnit, year: int) -> tuple[Any, ...]:
    """:func:`kaohe.workflow.scoring.data_fingerprint`, memoised until anything is
    committed (:func:`change_stamp`; at most :data:`FINGERPRINT_TTL` seconds): the
    aggregate over the group's values is the costliest query of a results page."""
    key = (db_key(session), group.id, year)
    stamp = change_stamp(session)
    now = time.monotonic()
    with _FP_LOCK:
        hit = _FP.get(key)
        if hit is not None and hit[0] == stamp and now - hit[1] < FINGERPRINT_TTL:
            return hit[2]
    fp = data_fingerprint(session, group, year)
    with _FP_LOCK:
        _FP[key] = (stamp, now, fp)
    return fp


# ---------------------------------------------------------------- live documents (cached)

_DOCS: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_DOCS_LOCK = threading.Lock()
_DOCS_SIZE = 256


def live_result(
    session: Session, group: OrgUnit, period: Period, fp: tuple[Any, ...] | None = None
) -> tuple[ScoreResult, dict[str, Any]]:
    """The live score of ``group`` for ``period`` and its JSON document (both cached
    while the data is unchanged).  ``fingerprint``: the group's data fingerprint for
    the period's year, when the caller already has it."""
    version, _ = rulebook_for(session, group)
    if fp is None:
        fp = fingerprint(session, group, period.year)
    key = (db_key(session), group.id, str(period), version.id, *fp)
    with _DOCS_LOCK:
        hit = _DOCS.get(key)
        if hit is not None:
            _DOCS.move_to_end(key)
            return hit["result"], hit["doc"]
    result = score_group(session, group, period)
    doc = to_json_dict(result)
    with _DOCS_LOCK:
        _DOCS[key] = {"result": result, "doc": doc}
        while len(_DOCS) > _DOCS_SIZE:
            _DOCS.popitem(last=False)
    return result, doc


def clear_cache() -> None:
    with _DOCS_LOCK:
        _DOCS.clear()
    with _FP_LOCK:
        _FP.clear()
        _PERIODS.clear()


# ---------------------------------------------------------------- differences


@dataclass
class UnitDiff:
    """How one unit's result differs between two documents (old → new)."""

    unit: str
    name: str
    total: tuple[float | None, float | None]
    rank: tuple[int | None, int | None]
    #: item, adjustment, rank-bonus, flag and veto changes: code -> (old, new)
    items: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    outcomes: tuple[list[str], list[str]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "name": self.name,
            "total": {"old": self.total[0], "new": self.total[1]},
            "rank": {"old": self.rank[0], "new": self.rank[1]},
            "items": {k: {"old": a, "new": b} for k, a, b in _triples(self.items)},
            "outcomes": None
            if self.outcomes is None
            else {"old": self.outcomes[0], "new": self.outcomes[1]},
        }


def _triples(d: dict[str, tuple[Any, Any]]) -> list[tuple[str, Any, Any]]:
    return [(k, v[0], v[1]) for k, v in d.items()]


def _outcome_keys(rec: dict[str, Any]) -> list[str]:
    return sorted(
        f"{o['code']}" + (f":{o['amount']}" if o.get("amount") is not None else "")
        for o in rec.get("outcomes", [])
    )


_FIXED = {"unit", "name", "group", "period", "total", "rank", "items", "adjustments", "outcomes"}


def diff_results(old: dict[str, Any], new: dict[str, Any]) -> list[UnitDiff]:
    """Per unit: what differs between two ``kaohe score`` documents (units only in
    one of them appear with None on the other side).  Unchanged units are left out."""
    a = {r["unit"]: r for r in old.get("results", [])}
    b = {r["unit"]: r for r in new.get("results", [])}
    out: list[UnitDiff] = []
    for unit in [*b, *(u for u in a if u not in b)]:
        ra, rb_ = a.get(unit), b.get(unit)
        name = str((rb_ or ra or {}).get("name") or unit)
        if ra is None or rb_ is None:
            out.append(
                UnitDiff(
                    unit,
                    name,
                    (ra["total"] if ra else None, rb_["total"] if rb_ else None),
                    (ra["rank"] if ra else None, rb_["rank"] if rb_ else None),
                )
            )
            continue
        items: dict[str, tuple[Any, Any]] = {}
        for code in dict.fromkeys([*ra["items"], *rb_["items"]]):
            x, y = ra["items"].get(code), rb_["items"].get(code)
            if x != y:
                items[code] = (x, y)
        for code in dict.fromkeys([*ra.get("adjustments", {}), *rb_.get("adjustments", {})]):
            x, y = ra.get("adjustments", {}).get(code, 0), rb_.get("adjustments", {}).get(code, 0)
            if x != y:
                items[code] = (x, y)
        for key in dict.fromkeys([*ra, *rb_]):
            if key in _FIXED:
                continue
            if ra.get(key) != rb_.get(key):
                items[key] = (ra.get(key), rb_.get(key))
        oa, ob = _outcome_keys(ra), _outcome_keys(rb_)
        outcomes = (oa, ob) if oa != ob else None
        if ra["total"] != rb_["total"] or ra["rank"] != rb_["rank"] or items or outcomes:
            out.append(
                UnitDiff(
                    unit,
                    name,
                    (ra["total"], rb_["total"]),
                    (ra["rank"], rb_["rank"]),
                    items,
                    outcomes,
                )
            )
    return out


# ---------------------------------------------------------------- publications


def doc_of(pub: Publication) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(pub.results)
    return doc


def published(session: Session, group: OrgUnit, period: str | Period) -> Publication | None:
    """The current (not superseded) publication of ``group`` for ``period``."""
    return session.scalar(
        select(Publication)
        .where(Publication.group_id == group.id)
        .where(Publication.period == str(period))
        .where(Publication.superseded.is_(False))
        .order_by(Publication.version.desc())
        .limit(1)
    )


def publication_history(session: Session, group: OrgUnit, period: str) -> list[Publication]:
    return list(
        session.scalars(
            select(Publication)
            .where(Publication.group_id == group.id)
            .where(Publication.period == str(period))
            .order_by(Publication.version.desc())
        )
    )


def publications(session: Session, group_ids: set[int] | None = None) -> list[Publication]:
    """Current publications (newest first), of ``group_ids`` only when given."""
    q = select(Publication).where(Publication.superseded.is_(False))
    if group_ids is not None:
        q = q.where(Publication.group_id.in_(group_ids or {-1}))
    return list(session.scalars(q.order_by(Publication.published_at.desc(), Publication.id.desc())))


@dataclass
class PublishOutcome:
    publication: Publication
    previous: Publication | None
    #: per-unit differences against the previous version (empty for a first publication)
    diff: list[UnitDiff]


def publish(
    session: Session,
    user: User | None,
    group: OrgUnit,
    period: str | Period,
    appeal_days: int = DEFAULT_APPEAL_DAYS,
    note: str | None = None,
) -> PublishOutcome:
    """Freeze the group's current scores for ``period`` (a republish: version + 1,
    the old version superseded, the differences returned).  Only the group's
    assessors (and admins) may publish."""
    if not can_review(session, user, group):
        raise Forbidden()
    p = check_period(session, group, str(period))
    if not isinstance(appeal_days, int) or not 0 <= appeal_days <= MAX_APPEAL_DAYS:
        raise PublishError(
            f"appeal_days: {appeal_days!r} is not a whole number of days from 0 to "
            f"{MAX_APPEAL_DAYS} (申诉期天数应为 0–{MAX_APPEAL_DAYS} 的整数)"
        )
    version, _ = rulebook_for(session, group)
    _, doc = live_result(session, group, p)
    previous = published(session, group, p)
    number = 1
    diff: list[UnitDiff] = []
    if previous is not None:
        number = previous.version + 1
        previous.superseded = True
        diff = diff_results(doc_of(previous), doc)
        session.flush()
    pub = Publication(
        group_id=group.id,
        period=str(p),
        version=number,
        rulebook_version_id=version.id,
        results=json.dumps(doc, ensure_ascii=False),
        published_by_id=user.id if user else None,
        appeal_days=appeal_days,
        note=(note or "").strip() or None,
    )
    session.add(pub)
    session.flush()
    session.add(
        AuditEntry(
            user_id=user.id if user else None,
            action="publication.publish",
            unit_id=group.id,
            period=str(p),
            key=f"v{number}",
            old=None
            if previous is None
            else f"v{previous.version} ({len(diff)} units changed: "
            + ", ".join(d.unit for d in diff[:20])
            + ("…" if len(diff) > 20 else "")
            + ")",
            new=f"v{number} {version.code}@{version.sha256[:12]} "
            f"({len(doc['results'])} units, appeal {appeal_days} days)",
            reason=pub.note,
        )
    )
    return PublishOutcome(pub, previous, diff)


@dataclass
class Comparison:
    """Live scores against the current publication."""

    publication: Publication
    diff: list[UnitDiff]
    #: the group's rulebook has a newer version than the one that produced the publication
    rulebook_changed: bool

    @property
    def changed(self) -> bool:
        return bool(self.diff) or self.rulebook_changed


def compare_live(
    session: Session,
    group: OrgUnit,
    pub: Publication,
    fp: tuple[Any, ...] | None = None,
) -> Comparison:
    """What differs between the published figures and the group's live scores (the
    published figures themselves are never touched)."""
    p = parse_period(pub.period)
    _, live = live_result(session, group, p, fp)
    version, _ = rulebook_for(session, group)
    return Comparison(pub, diff_results(doc_of(pub), live), version.id != pub.rulebook_version_id)


def frozen_rulebook(pub: Publication) -> LoadedRulebook:
    """The parsed rulebook version that produced ``pub`` (item names, points, source text)."""
    return loaded(pub.rulebook_version)


__all__ = [
    "Comparison",
    "PublishError",
    "PublishOutcome",
    "UnitDiff",
    "check_period",
    "compare_live",
    "diff_results",
    "group_by_code",
    "live_result",
    "previous_period",
    "publication_history",
    "publications",
    "publish",
    "published",
]
