"""The demo county in the store: one county, the demo townships and their villages
(village-1000), the demo street and its communities (community-monthly), and
their 2022 data.  Used by ``make run`` and by the web tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import load_rulebook
from kaohe.store.models import OrgUnit
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
