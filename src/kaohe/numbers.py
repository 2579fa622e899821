"""Number formatting: results are rounded half-up to 2 decimals on output only."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_SNAP = Decimal("1e-9")
_CENT = Decimal("0.01")


def round2(x: float | None) -> float | None:
    """Round half-up to 2 decimals.

    The value is first snapped to 9 decimals so that binary floating-point
    noise (97.26499999999999 for an exact 97.265) cannot flip the rounding.
    """
    if x is None:
        return None
    d = Decimal(repr(float(x))).quantize(_SNAP, rounding=ROUND_HALF_UP)
    r = float(d.quantize(_CENT, rounding=ROUND_HALF_UP))
    return 0.0 if r == 0 else r


def fmt2(x: float | None) -> str:
    r = round2(x)
    return "" if r is None else f"{r:.2f}"
