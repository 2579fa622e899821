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
    cents = ((e.abs() * 100).round(SNAP_DECIMALS) + 0.5).floor()
    # .round(2) gives the double nearest to the 2-decimal value: Polars may compute
    # cents / 100 as cents * 0.01, which is 64.57000000000001 for 6457 cents
    value = (cents / 100 * e.sign()).round(2)
    return pl.when(cents != 0).then(value).when(cents == 0).then(pl.lit(0.0))


def fmt2(x: float | None) -> str:
    r = round2(x)
    return "" if r is None else f"{r:.2f}"
