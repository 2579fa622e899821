"""Publications, appeals and payment approvals as services over the store."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden
from kaohe.auth.users import user_by_name
from kaohe.output import to_json_dict
from kaohe.store.models import AuditEntry, DataValue, Publication, utcnow
from kaohe.workflow.appeals import AppealError, answer_appeal, file_appeal, visible_appeals
from kaohe.workflow.payments import PaymentError, approve, review, sheet_for
from kaohe.workflow.publish import compare_live, doc_of, group_by_code, publish, published
from kaohe.workflow.scoring import score_group
from kaohe.workflow.units import unit_by_code


def change_value(db: Session, unit: str, period: str, variable: str, value: float) -> float:
    """Change one stored value as a data-entry edit would; returns the old value."""
    uid = unit_by_code(db, unit).id
    row = db.scalar(
        select(DataValue).where(
            DataValue.unit_id == uid, DataValue.period == period, DataValue.variable == variable
        )
    )
    assert row is not None
    old = row.value
    row.value = value
    row.updated_at = utcnow()
    db.flush()
    return old


def test_publish_freezes_scores_and_republish_shows_the_diff(db: Session) -> None:
    assessor = user_by_name(db, "assessor_t000")
    group = group_by_code(db, "T000")
    live_before = to_json_dict(score_group(db, group, "2022"))
    out = publish(db, assessor, group, "2022", 10, "first")
    db.commit()
    pub = out.publication
    assert pub.version == 1 and not pub.superseded and out.diff == []
    assert doc_of(pub)["results"] == live_before["results"]
    assert pub.rulebook_version.code == "village-1000"
    assert pub.appeal_days == 10

    # change V0000's data after publishing: the published figures stay as they were
    v0 = next(r for r in live_before["results"] if r["unit"] == "V0000")
    change_value(db, "V0000", "2022", "org_score", 0.0)  # A1 (组织领导) scored from org_score
    db.commit()
    live_after = to_json_dict(score_group(db, group, "2022"))
    v0_after = next(r for r in live_after["results"] if r["unit"] == "V0000")
    assert v0_after["total"] < v0["total"]
    current = published(db, group, "2022")
    assert current is not None and current.id == pub.id
    frozen = next(r for r in doc_of(current)["results"] if r["unit"] == "V0000")
    assert frozen["total"] == v0["total"]

    cmp = compare_live(db, group, current)
    assert cmp.changed
    d = next(x for x in cmp.diff if x.unit == "V0000")
    assert d.total == (v0["total"], v0_after["total"])
    assert d.items["A1"][0] == v0["items"]["A1"] and d.items["A1"][1] == v0_after["items"]["A1"]

    # republish: version 2, version 1 superseded (not overwritten), diff returned
    out2 = publish(db, assessor, group, "2022", 7, "corrected")
    db.commit()
    assert out2.publication.version == 2 and out2.previous is not None
    assert out2.previous.superseded
    assert json.loads(out2.previous.results)["results"] == live_before["results"]
    assert "V0000" in [x.unit for x in out2.diff]
    assert published(db, group, "2022").id == out2.publication.id  # type: ignore[union-attr]
    assert not compare_live(db, group, out2.publication).changed
    versions = db.scalars(
        select(Publication.version)
        .where(Publication.group_id == group.id)
        .order_by(Publication.version)
    ).all()
    assert versions == [1, 2]
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.action == "publication.publish")
    ).all()
    assert len(actions) == 2


def test_only_the_groups_assessor_publishes(db: Session) -> None:
    group = group_by_code(db, "T000")
    for name in ("assessor_t001", "reporter_v0000", "viewer"):
        with pytest.raises(Forbidden):
            publish(db, user_by_name(db, name), group, "2022T1")
    publish(db, user_by_name(db, "admin"), group, "2022T1")


def test_bad_period_and_appeal_days_are_refused(db: Session) -> None:
    from kaohe.workflow.publish import PublishError
    from kaohe.workflow.units import NotFound

    a = user_by_name(db, "assessor_t000")
    group = group_by_code(db, "T000")
    with pytest.raises(NotFound, match="2022-03"):
        publish(db, a, group, "2022-03")  # village-1000 is assessed per tertial
    with pytest.raises(PublishError, match="appeal_days"):
        publish(db, a, group, "2022T1", appeal_days=-1)


def test_appeal_window_answer_and_audit(db: Session) -> None:
    group = group_by_code(db, "T000")
    unit = unit_by_code(db, "V0000")
    reporter = user_by_name(db, "reporter_v0000")
    with pytest.raises(AppealError, match="尚未公布"):
        file_appeal(db, reporter, unit, "2022T1", "分数有误")
    pub = publish(db, user_by_name(db, "assessor_t000"), group, "2022T1", 5).publication
    db.commit()
    # another unit's reporter cannot appeal for V0000
    with pytest.raises(Forbidden):
        file_appeal(db, user_by_name(db, "reporter_v0001"), unit, "2022T1", "x")
    # late: the window closes appeal_days after publication
    late = pub.published_at + dt.timedelta(days=5, seconds=1)
    with pytest.raises(AppealError, match="申诉期已过"):
        file_appeal(db, reporter, unit, "2022T1", "分数有误", now=late)
    on_time = pub.published_at + dt.timedelta(days=4, hours=23)
    appeal = file_appeal(db, reporter, unit, "2022T1", "A1 分数有误", now=on_time)
    db.commit()
    assert appeal.state == "open" and appeal.publication_id == pub.id
    with pytest.raises(AppealError):
        file_appeal(db, reporter, unit, "2022T1", "   ", now=on_time)
    # only the group's assessor answers
    with pytest.raises(Forbidden):
        answer_appeal(db, user_by_name(db, "assessor_t001"), appeal.id, "no")
    with pytest.raises(Forbidden):
        answer_appeal(db, reporter, appeal.id, "no")
    answered = answer_appeal(db, user_by_name(db, "assessor_t000"), appeal.id, "经复核，分数无误。")
    db.commit()
    assert answered.state == "answered" and answered.answer == "经复核，分数无误。"
    with pytest.raises(AppealError, match="已答复"):
        answer_appeal(db, user_by_name(db, "assessor_t000"), appeal.id, "again")
    assert [a.id for a in visible_appeals(db, reporter)] == [appeal.id]
    assert visible_appeals(db, user_by_name(db, "reporter_v0001")) == []
    assert visible_appeals(db, user_by_name(db, "assessor_t001")) == []
    audit = db.execute(
        select(AuditEntry.action, AuditEntry.reason, AuditEntry.user_id)
        .where(AuditEntry.action.like("appeal.%"))
        .order_by(AuditEntry.id)
    ).all()
    assert [(a, r) for a, r, _ in audit] == [
        ("appeal.file", "A1 分数有误"),
        ("appeal.answer", "经复核，分数无误。"),
    ]


def test_payment_review_then_approve_and_sheet_states(db: Session) -> None:
    street = group_by_code(db, "ST01")
    director = user_by_name(db, "reporter_c01")
    deputy = user_by_name(db, "assessor_st01")
    before = sheet_for(db, street, "2022Q1").lines
    c01 = before.filter(before["unit"] == "C01")
    assert c01.height > 0 and set(c01["status"].to_list()) == {"pending"}

    # approval before review is refused, and nothing is written
    with pytest.raises(PaymentError, match="尚未经社区主任审核"):
        approve(db, deputy, street, "2022Q1", "C01")
    # only the community's own director reviews; the street's assessor does not
    with pytest.raises(Forbidden):
        review(db, deputy, street, "2022Q1", "C01")
    with pytest.raises(Forbidden):
        review(db, director, street, "2022Q1", "C02")
    # the community director cannot approve
    with pytest.raises(Forbidden):
        approve(db, director, street, "2022Q1", "C01")

    review(db, director, street, "2022Q1", "C01")
    db.commit()
    lines = sheet_for(db, street, "2022Q1").lines
    mine = lines.filter(lines["unit"] == "C01")
    assert set(mine["status"].to_list()) == {"reviewed"}
    assert set(mine["reviewed_by"].to_list()) == {director.display_name}
    others = lines.filter(lines["unit"] == "C02")
    assert set(others["status"].to_list()) == {"pending"}

    approve(db, deputy, street, "2022Q1", "C01")
    db.commit()
    lines = sheet_for(db, street, "2022Q1").lines
    mine = lines.filter(lines["unit"] == "C01")
    assert set(mine["status"].to_list()) == {"approved"}
    assert set(mine["approved_by"].to_list()) == {deputy.display_name}
    # a month's sheet inside the quarter shows the same sign-offs
    march = sheet_for(db, street, "2022-03").lines
    assert set(march.filter(march["unit"] == "C01")["status"].to_list()) == {"approved"}
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.action.like("payment.%"))).all()
    assert actions.count("payment.review") >= 3 and actions.count("payment.approve") >= 3


def test_payment_unit_must_belong_to_the_group(db: Session) -> None:
    from kaohe.workflow.units import NotFound

    with pytest.raises(NotFound):
        review(db, user_by_name(db, "admin"), group_by_code(db, "ST01"), "2022Q1", "V0000")


def test_memoised_fingerprint_sees_every_committed_write(db: Session) -> None:
    from sqlalchemy import text, update

    from kaohe.periods import parse_period
    from kaohe.workflow.publish import fingerprint, live_result

    group = group_by_code(db, "T000")
    p = parse_period("2022")
    fp1 = fingerprint(db, group, 2022)
    total = lambda: next(  # noqa: E731
        r["total"] for r in live_result(db, group, p)[1]["results"] if r["unit"] == "V0000"
    )
    before = total()
    # a Core UPDATE (as bulk imports do)
    uid = unit_by_code(db, "V0000").id
    db.execute(
        update(DataValue)
        .where(DataValue.unit_id == uid, DataValue.period == "2022")
        .where(DataValue.variable == "org_score")
        .values(value=0.0)
    )
    db.commit()
    fp2 = fingerprint(db, group, 2022)
    assert fp2 != fp1 and total() < before
    # raw SQL through another connection
    with db.get_bind().engine.begin() as conn:  # type: ignore[union-attr]
        conn.execute(
            text(
                "UPDATE data_value SET value = 7 WHERE unit_id = :u AND period = '2022' "
                "AND variable = 'org_score'"
            ),
            {"u": uid},
        )
    assert fingerprint(db, group, 2022) != fp2 and total() == before
