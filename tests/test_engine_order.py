"""The result's order (group, rank, unit code): the fast path for units and groups
already in code order gives exactly the order of a plain sort."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from kaohe.engine.evaluate import _in_ranking_order

rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["T1", "T2", "T3"])),
        st.integers(min_value=1, max_value=4),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(rows=rows, sort_input=st.booleans(), all_null=st.booleans())
def test_same_order_as_a_plain_sort(
    rows: list[tuple[str | None, int]], sort_input: bool, all_null: bool
) -> None:
    units = [f"U{i:03d}" for i in range(len(rows))]
    groups = [None if all_null else g for g, _ in rows]
    frame = pl.DataFrame(
        {"unit": units, "group": groups, "rank": [r for _, r in rows]},
        schema={"unit": pl.String, "group": pl.String, "rank": pl.Int64},
    )
    if sort_input:  # the usual layout: groups and units in code order (the fast path)
        frame = frame.sort(["group", "unit"], nulls_last=False).with_columns(
            pl.Series("unit", units)
        )
        assert frame["unit"].is_sorted()
    expected = frame.sort(["group", "rank", "unit"], nulls_last=False)
    assert _in_ranking_order(frame).equals(expected)
