"""The demo county in the store: one county, the demo townships and their villages
(village-1000), the demo street and its communities (community-monthly), and
their 2022 data.  Used by ``make run`` and by the web tests."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.auth.passwords import password_problem
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import load_rulebook
from kaohe.store.models import OrgUnit, Submission, User
from kaohe.workflow.load import add_unit, load_dataset, load_org_units
from kaohe.workflow.rulebooks import store_rulebook

COUNTY = ("X01", "示范县")


def create_demo_county(session: Session) -> OrgUnit:
    """Units, rulebook versions and 2022 data values of the demo county (no users)."""
    from kaohe.demo.run import community_files, demo_files

    county = add_unit(session, COUNTY[0], COUNTY[1], "county")
    for rulebook, (data_path, units_path), group_level, leaf_level in (
        ("village-1000", demo_files(), "township", "village"),
        ("community-monthly", community_files(), "street", "community"),
    ):
        store_rulebook(session, rulebook)
        rb = load_rulebook(rulebook)
        org = read_units(units_path)
        load_org_units(
            session,
            org,
            under=county,
            group_level=group_level,
            leaf_level=leaf_level,
            rulebook=rulebook,
        )
        load_dataset(session, read_data(data_path, rb, org))
    return county


# ---------------------------------------------------------------- users and workflow states

#: the demo database's users: (username, role, unit code, display name)
DEMO_USERS: tuple[tuple[str, str, str | None, str], ...] = (
    ("admin", "admin", None, "县考核办管理员"),
    ("assessor_t000", "assessor", "T000", "城关镇考核员"),
    ("assessor_t001", "assessor", "T001", "金寨镇考核员"),
    ("assessor_st01", "assessor", "ST01", "城关街道考核员"),
    ("reporter_v0000", "reporter", "V0000", "蔡寨村填报员"),
    ("reporter_v0001", "reporter", "V0001", "崔岗村填报员"),
    ("reporter_v0018", "reporter", "V0018", "叶屯村填报员"),
    ("reporter_c01", "reporter", "C01", "东关社区填报员"),
    ("reporter_c02", "reporter", "C02", "西关社区填报员"),
    ("viewer", "viewer", None, "县领导（只读）"),
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    unit: str | None
    password: str


def new_password() -> str:
    """A random password of 14 letters and digits (with at least one of each)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(14))
        if not password_problem(pw):
            return pw


def create_demo_users(session: Session, passwords: dict[str, str] | None = None) -> list[DemoUser]:
    """Add :data:`DEMO_USERS` with the given passwords (random ones where missing)."""
    from kaohe.auth.users import add_user

    passwords = passwords or {}
    users = []
    for username, role, unit, display in DEMO_USERS:
        password = passwords.get(username) or new_password()
        add_user(session, username, password, role, unit, display_name=display)
        users.append(DemoUser(username, role, unit, password))
    return users


#: (unit codes, state) per data period of the villages (village-1000)
_VILLAGE_STATES: dict[str, list[tuple[str, str]]] = {
    "2022T1": [(f"V{i:04d}", "approved") for i in range(16)]
    + [("V0016", "submitted"), ("V0017", "submitted"), ("V0018", "returned"), ("V0019", "draft")],
    "2022T2": [(f"V{i:04d}", "approved") for i in range(6)]
    + [(f"V{i:04d}", "submitted") for i in range(6, 14)]
    + [(f"V{i:04d}", "draft") for i in range(14, 20)],
    "2022T3": [(f"V{i:04d}", "submitted") for i in range(4)]
    + [(f"V{i:04d}", "draft") for i in range(4, 20)],
    "2022": [(f"V{i:04d}", "draft") for i in range(20)],
}

#: returned submissions: (unit, period) -> the assessor's comment
RETURN_COMMENTS: dict[tuple[str, str], str] = {
    ("V0018", "2022T1"): "出生人数与台账不符（台账 5 人），请核实后重新上报。",
    ("C03", "2022-10"): "重点工作得分缺少佐证材料，请补充后重新提交。",
}


def _community_states() -> dict[str, list[tuple[str, str]]]:
    communities = [f"C{i:02d}" for i in range(1, 12)]
    states: dict[str, list[tuple[str, str]]] = {}
    for month in range(1, 13):
        period = f"2022-{month:02d}"
        if month <= 9:
            states[period] = [(c, "approved") for c in communities]
        elif month == 10:
            states[period] = [
                (c, "returned" if c == "C03" else "approved" if c < "C06" else "submitted")
                for c in communities
            ]
        elif month == 11:
            states[period] = [(c, "submitted" if c < "C04" else "draft") for c in communities]
        else:
            states[period] = [(c, "draft") for c in communities]
    return states


def demo_submission_states() -> dict[tuple[str, str], str]:
    """(unit code, data period) -> workflow state of the demo's 2022 data."""
    out: dict[tuple[str, str], str] = {}
    for table in (_VILLAGE_STATES, _community_states()):
        for period, rows in table.items():
            for unit, state in rows:
                out[(unit, period)] = state
    return out


def create_demo_submissions(session: Session) -> int:
    """Submissions in several workflow states, made through the workflow service
    (:mod:`kaohe.workflow.submissions`: the same checks and audit entries as the
    pages): approved, submitted, returned with a comment; drafts get a draft row.
    Reporters submit their own unit (the administrator the others), the group's
    assessor approves or returns.  Returns the number of submissions."""
    from kaohe.workflow import submissions as flow

    units = {u.code: u for u in session.scalars(select(OrgUnit))}
    users = {u.username: u for u in session.scalars(select(User))}
    admin = users["admin"]
    assessor_of = {"T000": "assessor_t000", "T001": "assessor_t001", "ST01": "assessor_st01"}
    reporter_of = {
        u.unit.code: u for u in users.values() if u.role == "reporter" and u.unit is not None
    }
    n = 0
    for (code, period), state in sorted(demo_submission_states().items()):
        unit = units[code]
        if state == "draft":
            session.add(Submission(unit_id=unit.id, period=period, state="draft"))
            n += 1
            continue
        group = unit.parent.code if unit.parent is not None else ""
        assessor = users.get(assessor_of.get(group, "")) or admin
        flow.submit(session, reporter_of.get(code, admin), unit, period)
        if state == "approved":
            flow.approve(session, assessor, unit, period)
        elif state == "returned":
            flow.return_(session, assessor, unit, period, RETURN_COMMENTS[(code, period)])
        n += 1
    session.flush()
    return n


def create_demo_results(session: Session) -> list[str]:
    """What follows the data: T000's 2022T1 result published by its assessor, an open
    appeal of V0001 against it, and C01's payment lines of 2022Q1 reviewed by its
    director (not yet approved).  Returns what was added."""
    added: list[str] = []
    users = {u.username: u for u in session.scalars(select(User))}
    units = {u.code: u for u in session.scalars(select(OrgUnit))}
    from kaohe.workflow.appeals import file_appeal
    from kaohe.workflow.payments import review
    from kaohe.workflow.publish import publish

    publish(
        session,
        users["assessor_t000"],
        units["T000"],
        "2022T1",
        note="2022年第一期考核结果（演示）",
    )
    added.append("publication T000 2022T1")
    file_appeal(
        session,
        users["reporter_v0001"],
        units["V0001"],
        "2022T1",
        "我村第一期孕检人数应为 12 人，台账已补报，请复核“孕情检查”一项的得分。",
    )
    added.append("appeal V0001 2022T1")
    review(session, users["reporter_c01"], units["ST01"], "2022Q1", "C01")
    added.append("payment review C01 2022Q1")
    session.flush()
    return added
