"""Demo data for kaohe: a synthetic data generator and a small shipped fixture.

``DEMO_DATA`` and ``DEMO_UNITS`` are the shipped village-1000 fixture (2 townships
× 10 villages, year 2022) made by :func:`kaohe.demo.synth.write_village_csv` with
``DEMO_SEED``; ``tests/test_synth.py`` checks that regenerating it gives the same bytes.
The seed was picked so the fixture shows the interesting cases: a tie (V0007 = V0008),
sixth-child births (item veto), a village with population 0, zero denominators, and
bonuses and deductions.

Regenerate with::

    uv run python -c "from kaohe.demo import *; write_village_csv(DEMO_DATA, DEMO_UNITS, \
        DEMO_N_VILLAGES, DEMO_N_TOWNSHIPS, seed=DEMO_SEED, year=DEMO_YEAR)"
"""

from __future__ import annotations

from pathlib import Path

from kaohe.demo.synth import synth_village, write_village_csv, write_village_parquet

__all__ = [
    "DEMO_DATA",
    "DEMO_N_TOWNSHIPS",
    "DEMO_N_VILLAGES",
    "DEMO_SEED",
    "DEMO_UNITS",
    "DEMO_YEAR",
    "synth_village",
    "write_village_csv",
    "write_village_parquet",
]

_HERE = Path(__file__).resolve().parent

#: the shipped fixture (wide data layout) and its org units
DEMO_DATA: Path = _HERE / "village-demo.csv"
DEMO_UNITS: Path = _HERE / "village-demo-units.csv"
#: how the fixture was made
DEMO_N_VILLAGES = 20
DEMO_N_TOWNSHIPS = 2
DEMO_YEAR = 2022
DEMO_SEED = 25
