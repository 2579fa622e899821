"""The store: migrations, the seeded demo county, scoring from the store equals
scoring from the files (SQLite and, with KAOHE_TEST_DATABASE_URL, PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import func, inspect, select

from kaohe.engine import score
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.output import to_json_dict
from kaohe.rulebook.loader import load_rulebook
from kaohe.store.db import current_revisions, head_revisions
from kaohe.store.models import Base, DataValue, OrgUnit
from kaohe.workflow.scoring import explain_in_group, score_group
from kaohe.workflow.units import unit_by_code


def test_migrated_to_head_and_matches_models(engine):  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import kaohe.store.all_models  # noqa: F401

    assert current_revisions(engine) == head_revisions()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    assert "data_value" in inspect(engine).get_table_names()


def test_demo_county_seeded(db):  # type: ignore[no-untyped-def]
    county = unit_by_code(db, "X01")
    assert [c.code for c in county.children] == ["T000", "T001", "ST01"]
    assert unit_by_code(db, "V0000").parent.code == "T000"
    assert db.scalar(select(func.count(DataValue.id))) > 5000
    assert db.scalar(select(func.count(OrgUnit.id))) == 1 + 2 + 20 + 1 + 11


def test_scores_from_store_equal_scores_from_files(db):  # type: ignore[no-untyped-def]
    from kaohe.demo.run import community_files, demo_files

    for rulebook, files, group, periods in (
        ("village-1000", demo_files(), "T001", ["2022T1", "2022T2", "2022"]),
        ("community-monthly", community_files(), "ST01", ["2022-03", "2022Q1", "2022-11"]),
    ):
        rb = load_rulebook(rulebook)
        org = read_units(files[1])
        ds = read_data(files[0], rb, org)
        for period in periods:
            expected = [
                r
                for r in to_json_dict(score(rb, ds, period, org))["results"]
                if r["group"] == group
            ]
            got = to_json_dict(score_group(db, unit_by_code(db, group), period))["results"]
            assert got == expected, (rulebook, period)


def test_cached_scores_follow_data_changes(db):  # type: ignore[no-untyped-def]
    group = unit_by_code(db, "T000")
    before = score_group(db, group, "2022T1")
    v = db.scalar(
        select(DataValue)
        .join(OrgUnit, OrgUnit.id == DataValue.unit_id)
        .where(
            OrgUnit.code == "V0000",
            DataValue.period == "2022T1",
            DataValue.variable == "meeting_absences",
        )
    )
    v.value = v.value + 3
    db.flush()
    after = score_group(db, group, "2022T1")
    t0 = before.table.filter(before.table["unit"] == "V0000")["total"][0]
    t1 = after.table.filter(after.table["unit"] == "V0000")["total"][0]
    assert t1 < t0


def test_explanation_from_store(db):  # type: ignore[no-untyped-def]
    group = unit_by_code(db, "T000")
    result = score_group(db, group, "2022")
    expl = explain_in_group(db, group, "2022", "V0003")
    total = result.table.filter(result.table["unit"] == "V0003")["total"][0]
    assert abs(expl.total - total) < 1e-9
