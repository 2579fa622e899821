"""Data-entry services: the entry form, validated and audited changes, the submission
workflow with its permissions and locks, bulk imports, and scores following saved values."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden
from kaohe.auth.users import user_by_name
from kaohe.periods import Period
from kaohe.rulebook.schema import Variable
from kaohe.store.models import AuditEntry, DataValue, Submission
from kaohe.workflow import submissions
from kaohe.workflow.data import (
    DataError,
    Locked,
    check_value,
    entry_form,
    import_value_sets,
    previous_period,
    set_values,
)
from kaohe.workflow.scoring import score_group
from kaohe.workflow.submissions import TransitionError
from kaohe.workflow.units import NotFound, unit_by_code


def _value(db: Session, unit: str, period: str, variable: str) -> float | None:
    u = unit_by_code(db, unit)
    return db.scalar(
        select(DataValue.value).where(
            DataValue.unit_id == u.id, DataValue.period == period, DataValue.variable == variable
        )
    )


def _audit(db: Session, **where: object) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.id)
    for k, v in where.items():
        q = q.where(getattr(AuditEntry, k) == v)
    return list(db.scalars(q))


@pytest.mark.parametrize(
    ("period", "previous"),
    [
        ("2022T2", "2022T1"),
        ("2022T1", "2021T3"),
        ("2022-03", "2022-02"),
        ("2022-01", "2021-12"),
        ("2022", "2021"),
    ],
)
def test_previous_period(period: str, previous: str) -> None:
    assert str(previous_period(Period.parse(period))) == previous


def test_entry_form_has_labels_units_and_previous_values(db: Session) -> None:
    user = user_by_name(db, "reporter_v0000")
    v = unit_by_code(db, "V0000")
    form = entry_form(db, user, v, "2022T2")
    assert str(form.previous) == "2022T1"
    by = {f.code: f for f in form.fields}
    # flows only on a tertial row, annual variables on the year row
    assert "births_total" in by and "population" not in by
    f = by["births_total"]
    assert f.label == "核实出生数" and f.measure == "例" and f.integer
    assert f.value == _value(db, "V0000", "2022T2", "births_total")
    assert f.previous == _value(db, "V0000", "2022T1", "births_total")
    year = entry_form(db, user, v, "2022")
    assert [f.code for f in year.fields][:2] == ["org_score", "population"]
    assert str(year.previous) == "2021"


def test_entry_form_of_a_street_has_its_own_parent_level_variables(db: Session) -> None:
    user = user_by_name(db, "assessor_st01")
    form = entry_form(db, user, unit_by_code(db, "ST01"), "2022-03")
    assert [f.code for f in form.fields] == ["street_cadres"]
    c01 = entry_form(db, user, unit_by_code(db, "C01"), "2022-03")
    assert "street_cadres" not in {f.code for f in c01.fields}
    assert str(c01.previous) == "2022-02"


def test_unknown_or_wrong_periods_are_not_found(db: Session) -> None:
    user = user_by_name(db, "admin")
    v = unit_by_code(db, "V0000")
    for bad in ("2022-03", "2022Q1", "22T1", "2022T4"):
        with pytest.raises(NotFound):
            entry_form(db, user, v, bad)


def test_set_values_writes_and_audits_old_new_reason(db: Session) -> None:
    user = user_by_name(db, "reporter_v0000")
    v = unit_by_code(db, "V0000")
    old = _value(db, "V0000", "2022T2", "births_total")
    changes = set_values(
        db,
        user,
        v,
        "2022T2",
        {
            "births_total": "9",
            "births_reported": str(_value(db, "V0000", "2022T2", "births_reported")),
        },
        "核实后更正",
    )
    db.commit()
    assert [(c.variable, c.old, c.new) for c in changes] == [("births_total", old, 9.0)]
    assert _value(db, "V0000", "2022T2", "births_total") == 9.0
    [entry] = _audit(db, action="data.set", unit_id=v.id)
    assert (entry.period, entry.key, entry.old, entry.new, entry.reason) == (
        "2022T2",
        "births_total",
        str(int(old or 0)),
        "9",
        "核实后更正",
    )
    assert entry.user_id == user.id
    # clearing a value deletes it and is audited too
    set_values(db, user, v, "2022T2", {"births_total": ""})
    db.commit()
    assert _value(db, "V0000", "2022T2", "births_total") is None
    assert _audit(db, action="data.set", unit_id=v.id)[-1].new is None


def test_set_values_rejects_bad_values_and_writes_nothing(db: Session) -> None:
    user = user_by_name(db, "reporter_v0000")
    v = unit_by_code(db, "V0000")
    before = _value(db, "V0000", "2022T2", "births_total")
    with pytest.raises(DataError) as e:
        set_values(
            db,
            user,
            v,
            "2022T2",
            {
                "births_total": "12",  # fine, but the others are not: nothing is written
                "births_late": "-1",
                "births_missed": "abc",
                "births_false": "1.5",  # a count (例) must be whole
                "population": "100",  # annual: not on a tertial row
                "nonsense": "1",
            },
        )
    errs = e.value.errors
    assert set(errs) == {"births_late", "births_missed", "births_false", "population", "nonsense"}
    assert "负数" in errs["births_late"] and "不是数字" in errs["births_missed"]
    assert "整数" in errs["births_false"]
    db.rollback()
    assert _value(db, "V0000", "2022T2", "births_total") == before
    assert _audit(db, action="data.set") == []
    # scores (分) may have decimals
    set_values(db, user, v, "2022", {"association_score": "17.5"})
    assert _value(db, "V0000", "2022", "association_score") == 17.5


def test_check_value_follows_the_integer_flag() -> None:
    count = Variable(label="出生", kind="flow", unit="例")  # a count by its unit
    assert check_value(count, "3") == (3.0, None) and check_value(count, 4.0) == (4.0, None)
    assert check_value(count, "2.5") == (
        None,
        "2.5 不是整数：例数须为整数 (a count must be a whole number)",
    )
    average = Variable(label="平均在岗", kind="flow", unit="人", integer=False)
    assert check_value(average, "2.5") == (2.5, None)
    marks = Variable(label="评分", kind="annual", unit="分")
    assert check_value(marks, "17.5") == (17.5, None)
    whole_marks = Variable(label="评分", kind="annual", unit="分", integer=True)
    x, why = check_value(whole_marks, "17.5")
    assert x is None and why is not None and why.startswith("17.5 不是整数：分数须为整数")
    x, why = check_value(Variable(label="次数", kind="flow", integer=True), 1.5)
    assert x is None and why is not None and why.startswith("1.5 不是整数：该项须为整数")


def test_reporter_cannot_write_another_unit(db: Session) -> None:
    user = user_by_name(db, "reporter_v0000")
    with pytest.raises(Forbidden):
        set_values(db, user, unit_by_code(db, "V0001"), "2022T2", {"births_total": "1"})
    with pytest.raises(Forbidden):
        submissions.submit(db, user, unit_by_code(db, "V0001"), "2022T2")
    viewer = user_by_name(db, "viewer")
    with pytest.raises(Forbidden):
        set_values(db, viewer, unit_by_code(db, "V0000"), "2022T2", {"births_total": "1"})
    assessor = user_by_name(db, "assessor_t000")
    with pytest.raises(Forbidden):  # V0010 belongs to 金寨镇 (T001)
        set_values(db, assessor, unit_by_code(db, "V0010"), "2022T2", {"births_total": "1"})


def test_the_whole_workflow_with_locks_and_audit(db: Session) -> None:
    reporter = user_by_name(db, "reporter_v0000")
    assessor = user_by_name(db, "assessor_t000")
    v = unit_by_code(db, "V0000")
    # only a submitted unit can be returned or approved
    with pytest.raises(TransitionError):
        submissions.approve(db, assessor, v, "2022T2")
    with pytest.raises(TransitionError):
        submissions.return_(db, assessor, v, "2022T2", "x")
    assert submissions.submit(db, reporter, v, "2022T2").state == "submitted"
    with pytest.raises(TransitionError):
        submissions.submit(db, reporter, v, "2022T2")
    # submitted data is locked for the reporter, not for the assessor
    with pytest.raises(Locked):
        set_values(db, reporter, v, "2022T2", {"births_total": "1"})
    # reporters do not review
    with pytest.raises(Forbidden):
        submissions.approve(db, reporter, v, "2022T2")
    # returning needs a comment
    with pytest.raises(TransitionError, match="意见"):
        submissions.return_(db, assessor, v, "2022T2", "  ")
    sub = submissions.return_(db, assessor, v, "2022T2", "出生数与台账不符")
    assert (sub.state, sub.comment) == ("returned", "出生数与台账不符")
    set_values(db, reporter, v, "2022T2", {"births_total": "3"})
    submissions.submit(db, reporter, v, "2022T2")
    assert submissions.approve(db, assessor, v, "2022T2").state == "approved"
    # approved data is locked for everyone
    for who in (reporter, assessor, user_by_name(db, "admin")):
        with pytest.raises(Locked):
            set_values(db, who, v, "2022T2", {"births_total": "4"})
    with pytest.raises(TransitionError):
        submissions.submit(db, reporter, v, "2022T2")
    with pytest.raises(Forbidden):
        submissions.reopen(db, reporter, v, "2022T2", "why")
    with pytest.raises(TransitionError, match="理由"):
        submissions.reopen(db, assessor, v, "2022T2", "")
    sub = submissions.reopen(db, assessor, v, "2022T2", "上级抽查发现错误")
    assert sub.state == "draft"
    set_values(db, reporter, v, "2022T2", {"births_total": "4"})
    db.commit()
    trail = [
        (e.action, e.old, e.new, e.reason)
        for e in _audit(db, unit_id=v.id)
        if e.action.startswith("submission.")
    ]
    assert trail == [
        ("submission.submit", "draft", "submitted", None),
        ("submission.return", "submitted", "returned", "出生数与台账不符"),
        ("submission.submit", "returned", "submitted", None),
        ("submission.approve", "submitted", "approved", None),
        ("submission.reopen", "approved", "draft", "上级抽查发现错误"),
    ]


def test_failed_transition_leaves_no_submission_row(db: Session) -> None:
    assessor = user_by_name(db, "assessor_t000")
    with pytest.raises(TransitionError):
        submissions.approve(db, assessor, unit_by_code(db, "V0000"), "2022T1")
    db.flush()
    assert db.scalar(select(func.count(Submission.id))) == 0


def test_submit_refuses_when_a_required_value_is_missing(db: Session) -> None:
    reporter = user_by_name(db, "reporter_v0000")
    v = unit_by_code(db, "V0000")
    set_values(db, reporter, v, "2022T1", {"births_total": ""})
    with pytest.raises(TransitionError, match="births_total"):
        submissions.submit(db, reporter, v, "2022T1")
    set_values(db, reporter, v, "2022T1", {"births_total": "4"})
    assert submissions.submit(db, reporter, v, "2022T1").state == "submitted"


def test_reporter_may_submit_only_its_own_unit_and_assessor_reviews_its_subtree(
    db: Session,
) -> None:
    other = user_by_name(db, "assessor_t001")
    reporter = user_by_name(db, "reporter_v0000")
    v = unit_by_code(db, "V0000")
    submissions.submit(db, reporter, v, "2022T1")
    with pytest.raises(Forbidden):
        submissions.approve(db, other, v, "2022T1")
    queue = submissions.queue(db, user_by_name(db, "assessor_t000"))
    assert [(q.unit.code, q.submission.period) for q in queue] == [("V0000", "2022T1")]
    assert submissions.queue(db, other) == []


def test_scores_follow_a_saved_value(db: Session) -> None:
    admin = user_by_name(db, "admin")
    group = unit_by_code(db, "T000")
    before = score_group(db, group, "2022")
    total_before = before.table.filter(before.table["unit"] == "V0000")["total"][0]
    # six or more births of a sixth child vetoes item B1 (60 points)
    set_values(db, admin, unit_by_code(db, "V0000"), "2022T1", {"births_6plus": "1"}, "test")
    db.commit()
    after = score_group(db, group, "2022")
    total_after = after.table.filter(after.table["unit"] == "V0000")["total"][0]
    assert total_after < total_before


def test_data_value_sets_dry_run_conflicts_and_all_or_nothing(db: Session) -> None:
    assessor = user_by_name(db, "assessor_t000")
    rows = [
        {"unit": "V0000", "period": "2022T1", "variable": "births_total", "value": 11},
        {"unit": "V0001", "period": "2022", "variable": "population", "value": "1234"},
        {"unit": "V0000", "period": "2022T1", "variable": "births_total", "value": 12},
        {"unit": "V0010", "period": "2022T1", "variable": "births_total", "value": 1},
        {"unit": "NOPE", "period": "2022T1", "variable": "births_total", "value": 1},
        {"unit": "V0000", "period": "2022T1", "variable": "population", "value": 1},
        {"unit": "V0000", "period": "2022T1", "variable": "births_late", "value": -2},
        {"unit": "V0000", "period": "2022X", "variable": "births_late", "value": 2},
    ]
    before = _value(db, "V0000", "2022T1", "births_total")
    s = import_value_sets(db, assessor, rows, dry_run=False)
    assert s.status == "ERROR"
    assert [c["index"] for c in s.conflicts] == [2, 3, 4, 5, 6, 7]
    assert "重复" in s.conflicts[0]["reason"]
    assert "无权" in s.conflicts[1]["reason"]
    assert _value(db, "V0000", "2022T1", "births_total") == before  # nothing written
    good = rows[:2]
    dry = import_value_sets(db, assessor, good, dry_run=True)
    assert (dry.status, dry.dry_run, dry.updated, dry.imported) == ("OK", True, 2, 0)
    assert _value(db, "V0000", "2022T1", "births_total") == before
    done = import_value_sets(db, assessor, good, dry_run=False, reason="批量")
    db.commit()
    assert (done.status, done.updated) == ("OK", 2)
    assert _value(db, "V0000", "2022T1", "births_total") == 11
    assert _value(db, "V0001", "2022", "population") == 1234
    again = import_value_sets(db, assessor, good, dry_run=True)
    assert (again.unchanged, again.updated) == (2, 0)
    assert {e.key for e in _audit(db, action="data.set", reason="批量")} == {
        "births_total",
        "population",
    }


def test_data_value_sets_respects_locks(db: Session) -> None:
    reporter = user_by_name(db, "reporter_v0000")
    v = unit_by_code(db, "V0000")
    submissions.submit(db, reporter, v, "2022T1")
    s = import_value_sets(
        db,
        reporter,
        [{"unit": "V0000", "period": "2022T1", "variable": "births_total", "value": 99}],
        dry_run=False,
    )
    assert s.status == "ERROR" and "已提交" in s.conflicts[0]["reason"]
    # unchanged values of a locked period are not conflicts
    same = _value(db, "V0000", "2022T1", "births_late")
    s = import_value_sets(
        db,
        reporter,
        [{"unit": "V0000", "period": "2022T1", "variable": "births_late", "value": same}],
    )
    assert s.status == "OK" and s.unchanged == 1
