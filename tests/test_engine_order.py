"""The result's order (group, rank, unit code): the fast path for units and groups
already in code order gives exactly the order of a plain sort."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from kaohe.engine.evaluate import _in_code_order, _in_ranking_order, _ranked_runs

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
    assert _in_ranking_order(frame, _in_code_order(frame)).equals(expected)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["T1", "T2", "T3"]), st.sampled_from([0.0, 1.5, 2.0, 7.25])),
        max_size=30,
    ),
    all_null=st.booleans(),
)
def test_ranks_from_one_sort(rows: list[tuple[str, float]], all_null: bool) -> None:
    """_ranked_runs: competition ranks within groups (1, 1, 3), highest total first, in
    the order group, rank, unit — computed here by counting, unit by unit."""
    rows = sorted(rows)  # groups in code order; units numbered in that order below
    groups = [None if all_null else g for g, _ in rows]
    frame = pl.DataFrame(
        {
            "unit": [f"U{i:03d}" for i in range(len(rows))],
            "group": groups,
            "total": [t for _, t in rows],
        },
        schema={"unit": pl.String, "group": pl.String, "total": pl.Float64},
    )
    assert _in_code_order(frame)
    got = _ranked_runs(frame)
    expected_rank = {
        u: 1 + sum(1 for g2, t2 in zip(groups, frame["total"], strict=True) if g2 == g and t2 > t)
        for u, g, t in frame.iter_rows()
    }
    assert dict(zip(got["unit"], got["rank"], strict=True)) == expected_rank
    key = {u: (g or "", expected_rank[u], u) for u, g, _ in frame.iter_rows()}
    assert got["unit"].to_list() == sorted(frame["unit"], key=key.__getitem__)
    assert sorted(got.columns) == sorted([*frame.columns, "rank"])
