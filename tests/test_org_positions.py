"""OrgUnits lookups: the sorted-codes fast path (binary search) and the general path
(hash join) give the same positions as a plain dictionary lookup."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from kaohe.io.dataset import OrgUnits

codes = st.lists(st.text(alphabet="ABC01", min_size=1, max_size=3), unique=True, max_size=12)


def _org(cs: list[str]) -> OrgUnits:
    return OrgUnits(
        pl.DataFrame(
            {"code": cs, "name": cs, "parent": [None] * len(cs)},
            schema={"code": pl.String, "name": pl.String, "parent": pl.String},
        )
    )


@settings(max_examples=200, deadline=None)
@given(
    cs=codes,
    queries=st.lists(st.one_of(st.none(), st.text(alphabet="ABC01", max_size=3)), max_size=20),
    sort=st.booleans(),
)
def test_positions_match_a_dictionary(cs: list[str], queries: list[str | None], sort: bool) -> None:
    if sort:
        cs = sorted(cs)
    org = _org(cs)
    assert org.codes_sorted() == (cs == sorted(cs))
    assert org.codes_unique()
    where = {c: i for i, c in enumerate(cs)}
    got = org.positions(pl.Series(queries, dtype=pl.String)).to_list()
    assert got == [where.get(q) if q is not None else None for q in queries]


def test_sorted_codes_with_a_repeat_are_not_unique() -> None:
    org = _org(["A", "B", "B", "C"])
    assert not org.codes_sorted()
    assert not org.codes_unique()


def test_parent_positions_by_binary_search() -> None:
    org = OrgUnits(
        pl.DataFrame(
            {"code": ["T1", "T2", "V1", "V2", "V3"], "name": ["t1", "t2", "v1", "v2", "v3"],
             "parent": [None, None, "T2", "T1", "T9"]}
        )
    )  # fmt: skip
    assert org.codes_sorted()
    assert org.parent_positions().to_list() == [None, None, 1, 0, None]
    assert org.is_parent().to_list() == [True, True, False, False, False]


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["A", "B", "C"])),
            st.one_of(st.none(), st.sampled_from(["2022", "2022T1", "2022T2"])),
        ),
        max_size=12,
    ),
    by_position=st.booleans(),
)
def test_increasing_rows_are_distinct(
    rows: list[tuple[str | None, str | None]], by_position: bool
) -> None:
    """read_data's duplicate check skips hashing when rows come in increasing (unit,
    period) order: that must imply distinct, non-null pairs (and hold for sorted ones)."""
    from kaohe.io.read import _increasing

    frame = pl.DataFrame(rows, schema={"unit": pl.String, "period": pl.String}, orient="row")
    unit = pl.lit(_org(["A", "B", "C"]).positions(frame["unit"])) if by_position else pl.col("unit")
    increasing = frame.select(_increasing(unit)).item()
    if increasing:
        assert None not in [x for r in rows for x in r]
        assert len(set(rows)) == len(rows)
    if rows and None not in [x for r in rows for x in r] and rows == sorted(set(rows)):
        assert increasing
