"""Synthetic data for the community-monthly rulebook: a street and its communities over a year.

Plausible monthly counts with occasional shortfalls, complaints and ties; one
community may have a serious incident (for the annual veto) when asked.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

COMMUNITY_NAMES = [
    "东关", "西关", "南街", "北街", "新华", "人民路", "建设", "和平", "文化", "光明",
    "幸福", "团结", "胜利", "红旗", "向阳",
]  # fmt: skip

VARIABLES = [
    "lar_due", "lar_timely", "preg_total", "preg_known_6m", "pis_births", "pis_reported",
    "complaints_verified", "serious_incidents", "key_work_points", "ligations",
    "iud_insertions", "preg_tracked", "preg_target", "staff_specialists", "staff_grid",
    "street_cadres",
]  # fmt: skip


def synth_community(
    n_communities: int = 11,
    year: int = 2022,
    seed: int = 6,
    street: str = "ST01",
    street_name: str = "城关街道",
    vetoed: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(data, units) in the spec's wide layout: one row per unit and month; the
    street's own rows carry only ``street_cadres``."""
    rng = random.Random(seed)
    codes = [f"C{i + 1:02d}" for i in range(n_communities)]
    units = pl.DataFrame(
        {
            "code": [street, *codes],
            "name": [
                street_name,
                *[f"{COMMUNITY_NAMES[i % 15]}社区" for i in range(n_communities)],
            ],
            "parent": [None, *[street] * n_communities],
        },
        schema={"code": pl.Utf8, "name": pl.Utf8, "parent": pl.Utf8},
    )
    rows: list[dict[str, object]] = []
    for m in range(1, 13):
        rows.append({"unit": street, "period": f"{year}-{m:02d}", "street_cadres": 2.0})
    for c in codes:
        quality = 0.55 + 0.4 * rng.random()  # some communities do better than others
        for m in range(1, 13):
            due = rng.choice([0, 10, 20, 30, 40])
            preg = rng.choice([0, 6, 8, 12, 16])
            births = rng.choice([0, 2, 3, 5, 6])
            row: dict[str, object] = {
                "unit": c,
                "period": f"{year}-{m:02d}",
                "lar_due": float(due),
                "lar_timely": float(
                    min(due, round(due * min(1.0, quality + rng.uniform(-0.1, 0.15))))
                ),
                "preg_total": float(preg),
                "preg_known_6m": float(
                    min(preg, round(preg * min(1.0, quality + rng.uniform(-0.1, 0.2))))
                ),
                "pis_births": float(births),
                "pis_reported": float(min(births, round(births * min(1.0, quality + 0.15)))),
                "complaints_verified": float(1 if rng.random() < 0.04 else 0),
                "serious_incidents": float(1 if (c == vetoed and m == 6) else 0),
                "key_work_points": rng.choice([0.0, 2.5, 5.0, 7.5, 10.0]),
                "ligations": float(rng.choice([0, 0, 1, 1, 2])),
                "iud_insertions": float(rng.choice([0, 1, 1, 2, 3])),
                "preg_tracked": float(rng.randint(1, 8)),
                "preg_target": float(rng.randint(2, 5)),
                "staff_specialists": 1.0,
                "staff_grid": float(rng.randint(2, 4)),
            }
            if row["serious_incidents"]:
                row["complaints_verified"] = 1.0
            rows.append(row)
    schema = {"unit": pl.Utf8, "period": pl.Utf8} | {v: pl.Float64 for v in VARIABLES}
    data = pl.DataFrame(rows, schema=schema)
    return data, units


def write_community_csv(data_path: Path, units_path: Path, **kwargs: object) -> None:
    data, units = synth_community(**kwargs)  # type: ignore[arg-type]
    data.write_csv(data_path)
    units.write_csv(units_path)


if __name__ == "__main__":  # regenerate the shipped demo files
    here = Path(__file__).parent
    write_community_csv(
        here / "community-demo.csv", here / "community-demo-units.csv", vetoed="C09"
    )
