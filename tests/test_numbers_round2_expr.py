"""round2_expr (vectorised, used by the writers) agrees with round2 bit for bit."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from kaohe.numbers import round2, round2_expr


def _vector(xs: list[float | None]) -> list[float | None]:
    frame = pl.DataFrame({"x": xs}, schema={"x": pl.Float64})
    return frame.select(round2_expr(pl.col("x")))["x"].to_list()


def _same(got: list[float | None], want: list[float | None]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None
        else:
            assert g is not None
            # bit for bit: equal and the same sign of zero (-0.0 would print "-0.0")
            assert (g, math.copysign(1.0, g)) == (w, math.copysign(1.0, w))


# half-cent boundaries: k/100 + 0.005, as decimal text (nearest double) and
# nudged within the 6-decimal snap (±4e-9) and just outside it (±1e-6 of a cent)
_cents = st.integers(min_value=-(10**9), max_value=10**9)
_boundary = st.builds(
    lambda k, nudge: float(f"{k / 100 + math.copysign(0.005, k or 1):.12g}") + nudge,
    _cents,
    st.sampled_from([0.0, 4e-9, -4e-9, 1e-8, -1e-8, 2e-8, -2e-8, 5e-12, -5e-12]),
)
_floats = st.one_of(
    _boundary,
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    st.floats(min_value=-1e10, max_value=1e10, allow_nan=False),
    st.floats(min_value=-0.01, max_value=0.01, allow_nan=False),
    st.decimals(min_value=-(10**6), max_value=10**6, places=3).map(float),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_floats, min_size=1, max_size=50))
def test_round2_expr_equals_round2(xs: list[float | None]) -> None:
    _same(_vector(xs), [round2(x) for x in xs])


def test_round2_expr_known_values() -> None:
    xs: list[float | None] = [
        1.005, -1.005, 97.265, -97.265, 64.57, 64.565, 0.125, -0.125,
        # 0.004999999: 0.4999999 cents snaps to 0.5 (6 decimals) and rounds up
        -0.004, -0.0, 0.0, 0.004999999, -0.00499999, None, 1155.275, -1155.275,
    ]  # fmt: skip
    want = [
        1.01, -1.01, 97.27, -97.27, 64.57, 64.57, 0.13, -0.13,
        0.0, 0.0, 0.0, 0.01, 0.0, None, 1155.28, -1155.28,
    ]  # fmt: skip
    _same(_vector(xs), want)
    _same(_vector(xs), [round2(x) for x in xs])
