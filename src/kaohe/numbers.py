"""Number formatting: results are rounded half-up to 2 decimals on output only.

Half-up means half away from zero (1.005 → 1.01, −1.005 → −1.01).  The value
in cents is first snapped to 6 decimals so that binary floating-point noise
(97.26499999999999 for an exact 97.265) cannot flip the rounding.  The scalar
:func:`round2` and the vectorised :func:`round2_expr` compute the same thing.
"""

from __future__ import annotations

import math

import polars as pl

SNAP_DECIMALS = 6


def round2(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    cents = math.floor(round(abs(x) * 100, SNAP_DECIMALS) + 0.5)
    r = math.copysign(cents / 100, x)
    return r + 0.0  # no negative zero


def round2_expr(e: pl.Expr) -> pl.Expr:
    """Vectorised :func:`round2` (bit for bit, for |x| < 1e13), in five passes.

    Multiplication and Polars' rounding modes are symmetric in the sign, so
    rounding the signed cents half away from zero equals ``round2``'s
    ``copysign(floor(|cents| + 0.5))`` (both exact below 2**52 cents).
    """
    cents = (e * 100).round(SNAP_DECIMALS).round(0, mode="half_away_from_zero")
    # cents is an integer below 2**52, so + 0.5 − 0.5 is exact and turns −0.0
    # (from −0.004) into 0.0; .round(2) gives the double nearest to the 2-decimal
    # value: Polars computes cents / 100 as cents * 0.01 (64.57000000000001 for 6457)
    return (((cents + 0.5) - 0.5) / 100).round(2)


def fmt2(x: float | None) -> str:
    r = round2(x)
    return "" if r is None else f"{r:.2f}"
