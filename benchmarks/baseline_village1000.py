"""Hand-written Polars baseline for the village-1000 rules (shared/spec/village-1000.md).

This is the speed (and independent-correctness) yardstick for the kaohe engine: the
rules of the spec written directly as Polars column arithmetic, without the engine,
the rulebook or any kaohe import.  The long input (one row per unit and period) is
pivoted to one row per village with columns ``<var>_T1``, ``<var>_T2``, ``<var>_T3``;
year-to-date flows are sums of those columns and every item is a vectorised expression.

    score_baseline(data_path, units_path, "2022")    # annual: YTD as of T3 + rank bonuses
    score_baseline(data_path, units_path, "2022T2")  # YTD as of T2, ranked, no bonus

Command line (used by benchmarks/run.py)::

    python benchmarks/baseline_village1000.py --data F --units U --period 2022 --output OUT

writes the result (unrounded) as CSV, or Parquet when OUT ends in ``.parquet``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Literal

import polars as pl

ANNUAL = (
    "org_score",
    "population",
    "certs_target",
    "prepreg_target",
    "ligation_target",
    "iud_target",
    "association_score",
)
FLOWS = (
    "meeting_absences",
    "unplanned_one_boy",
    "unplanned_multi",
    "births_5th",
    "births_6plus",
    "births_total",
    "births_reported",
    "births_late",
    "births_missed",
    "births_false",
    "report_errors",
    "clients_unmanaged",
    "checkups_due",
    "checkups_done",
    "certs_done",
    "prepreg_done",
    "prepreg_followup_missed",
    "phones_checked",
    "phones_correct",
    "dept_info_failures",
    "migrant_info_failures",
    "deaths_total",
    "deaths_timely",
    "deaths_concealed",
    "households_no_materials",
    "publicity_events",
    "board_updates_missed",
    "slogans",
    "ligation_done",
    "ligation_two_daughter",
    "induced_terminations",
    "iud_done",
    "fee_cases_due",
    "fee_cases_collected",
    "fee_first_due",
    "fee_first_collected",
    "fee_collusion_cases",
    "fee_enforce_required",
    "fee_enforce_done",
)
#: spec §4: points per case (township_criticism counted once, at -5 [I9])
ADJUSTMENTS: dict[str, float] = {
    "commend_city": 10,
    "commend_above": 20,
    "two_non_leads": 20,
    "inspect_pass_province": 20,
    "inspect_pass_prefecture": 15,
    "inspect_pass_city": 10,
    "township_praise": 2,
    "township_criticism": -5,
    "fee_rich_cases": 20,
    "credit_blacklist_reports": 20,
    "cadre_violations": -20,
    "cadre_violations_past": -10,
    "criticism_province": -20,
    "criticism_prefecture": -15,
    "criticism_city": -10,
    "inspect_fail_above": -30,
    "inspect_fail_prefecture": -15,
    "fee_undercharge_cases": -10,
    "fine_for_birth_cases": -20,
}
ITEMS = (
    "A1",
    "A2",
    "B1",
    "B2",
    "C1",
    "C2",
    "D1",
    "E1",
    "E2",
    "E3",
    "E4",
    "E5",
    "E6",
    "E7",
    "F1",
    "F2",
    "G1",
    "G2",
    "G3",
    "H1",
)
#: cumulative target share after T1, T2, T3 (targets issued 4:3:3)
SHARES = (0.4, 0.7, 1.0)
RANK_BONUS = {1: 4.0, 2: 2.0}
#: totals equal to this many decimals tie
TIE_DECIMALS = 9

_PERIOD = re.compile(r"^(\d{4})(?:T([1-3]))?$")
_ALL_FLOWS = FLOWS + tuple(ADJUSTMENTS)


# --- spec §3 notation ---------------------------------------------------------------------


def _ratio(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """a / b, or 1 when b = 0 [I1]."""
    return pl.when(b == 0).then(1.0).otherwise(a / b)


def _pct(a: pl.Expr, b: pl.Expr, threshold: float) -> pl.Expr:
    """100·a / b, or the item's threshold when b = 0 [I1]; exact, not truncated [I2]."""
    return pl.when(b == 0).then(threshold).otherwise(100.0 * a / b)


def _min1(x: pl.Expr) -> pl.Expr:
    return x.clip(upper_bound=1.0)


def _over(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a - b).clip(lower_bound=0.0)


def _floor0(x: pl.Expr) -> pl.Expr:
    return x.clip(lower_bound=0.0)


# --- input ------------------------------------------------------------------------------


def _read_long(path: Path) -> tuple[pl.LazyFrame, Literal["streaming", "in-memory"]]:
    """The data file as a lazy frame and the engine to collect its parts with.

    Parquet is scanned by the streaming engine: each period's part reads only its rows
    and columns.  CSV is parsed once, eagerly, straight to Float64 (scanning it once per
    period would parse the text four times)."""
    if path.suffix.lower() == ".parquet":
        return pl.scan_parquet(path), "streaming"
    schema: dict[str, pl.DataType] = {"unit": pl.String(), "period": pl.String()}
    schema |= {v: pl.Float64() for v in ANNUAL + _ALL_FLOWS}
    return pl.read_csv(path, schema_overrides=schema, columns=list(schema)).lazy(), "in-memory"


def _read_wide(data_path: Path, year: str, k_max: int) -> pl.DataFrame:
    """One row per unit: the annual variables and ``<flow>_T<j>`` for j = 1..k_max."""
    long, engine = _read_long(data_path)
    is_text = pl.col("period").cast(pl.String)

    def part(long: pl.LazyFrame, period: str, names: tuple[str, ...], suffix: str) -> pl.LazyFrame:
        return long.filter(is_text == period).select(
            pl.col("unit").cast(pl.String),
            *(pl.col(v).cast(pl.Float64).alias(v + suffix) for v in names),
        )

    annual, *flows = pl.collect_all(
        [part(long, year, ANNUAL, "")]
        + [part(long, f"{year}T{j}", _ALL_FLOWS, f"_T{j}") for j in range(1, k_max + 1)],
        engine=engine,
    )
    del long  # the parsed CSV is no longer needed
    if annual.height == 0:
        raise ValueError(f"{data_path}: no row with period {year}")
    if annual["unit"].is_duplicated().any():
        raise ValueError(f"{data_path}: a unit has two rows for period {year}")
    wide = annual
    for flow in flows:
        if flow.height == annual.height and flow["unit"].equals(annual["unit"]):
            # the usual layout (periods in the same unit order): align by position
            wide = wide.hstack(flow.drop("unit").get_columns())
        else:
            wide = wide.join(flow, on="unit", how="left", validate="1:1", maintain_order="left")
    nulls = wide.null_count().row(0, named=True)
    missing = [name for name, n in nulls.items() if n]
    if missing:
        raise ValueError(f"{data_path}: missing values for {', '.join(missing[:5])}")
    return wide


def _read_groups(units_path: Path | None) -> pl.DataFrame | None:
    if units_path is None:
        return None
    schema = {"code": pl.String(), "name": pl.String(), "parent": pl.String()}
    if units_path.suffix.lower() == ".parquet":
        units = pl.read_parquet(units_path)
    else:
        units = pl.read_csv(units_path, schema_overrides=schema)
    return units.select(unit=pl.col("code"), group=pl.col("parent"))


# --- rules ------------------------------------------------------------------------------


def _item_expressions(k: int) -> dict[str, pl.Expr]:
    """Every item score as of period k (YTD flows over T1..Tk), spec §3."""
    share = SHARES[k - 1]

    def y(name: str) -> pl.Expr:  # YTD value of a flow
        return pl.sum_horizontal(pl.col(f"{name}_T{j}") for j in range(1, k + 1))

    def a(name: str) -> pl.Expr:  # annual value
        return pl.col(name)

    def split(name: str) -> pl.Expr:  # YTD target
        return a(name) * share

    def completion(points: float, done: str, target: str, per_excess: float) -> pl.Expr:
        t = split(target)
        return points * _min1(_ratio(y(done), t)) + per_excess * _over(y(done), t)

    # B1: unplanned-birth rate per mille, linear band between 3 and 5 [I4]
    pop = a("population")
    rate_b1 = (
        pl.when(pop == 0)
        .then(0.0)
        .otherwise(1000.0 * (y("unplanned_one_boy") + y("unplanned_multi")) / pop)
    )
    band_b1 = (
        pl.when(rate_b1 <= 3)
        .then(60.0)
        .when(rate_b1 >= 5)
        .then(0.0)
        .otherwise(30.0 * (5 - rate_b1))
    )
    b1 = (
        pl.when(y("births_6plus") > 0)
        .then(0.0)
        .otherwise(_floor0(band_b1 - 30.0 * y("births_5th")))
    )

    # C1: scored per period on that period's own values, summed [I5]
    def c1_period(j: int) -> pl.Expr:
        rate = _pct(pl.col(f"checkups_done_T{j}"), pl.col(f"checkups_due_T{j}"), 70.0)
        return (
            pl.when(rate < 70)
            .then(_floor0(25.0 - (70.0 - rate)))
            .otherwise(25.0 + 5.0 * (rate - 70.0))
        )

    rate_e1 = _pct(y("phones_correct"), y("phones_checked"), 80.0)
    slogan_target = 10.0 * share  # [I7]
    rate_g1 = _pct(y("fee_cases_collected"), y("fee_cases_due"), 50.0)
    rate_g2 = _pct(y("fee_first_collected"), y("fee_first_due"), 60.0)

    return {
        "A1": a("org_score").clip(0.0, 8.0),
        "A2": _floor0(12.0 - 3.0 * y("meeting_absences")),
        "B1": b1,
        "B2": _floor0(
            120.0 * _min1(_ratio(y("births_reported"), y("births_total")))
            - 1.0 * y("births_late")
            - 2.0 * y("births_missed")
            - 5.0 * y("births_false")
            - 2.0 * y("report_errors")
            - 2.0 * y("clients_unmanaged")
        ),
        "C1": pl.sum_horizontal(c1_period(j) for j in range(1, k + 1)),
        "C2": completion(75.0, "certs_done", "certs_target", 2.0),
        "D1": _floor0(
            completion(120.0, "prepreg_done", "prepreg_target", 5.0)
            - 2.0 * y("prepreg_followup_missed")
        ),
        "E1": pl.when(rate_e1 >= 80).then(20.0).otherwise(_floor0(20.0 - 2.0 * (80.0 - rate_e1))),
        "E2": _floor0(10.0 - 1.0 * y("dept_info_failures")),
        "E3": _floor0(10.0 - 2.0 * y("migrant_info_failures")),
        "E4": _floor0(
            20.0 * _min1(_ratio(y("deaths_timely"), y("deaths_total")))
            - 3.0 * y("deaths_concealed")
        ),
        # E5, E7: the floor applies to the deduction part only [I6] [I7]
        "E5": _floor0(10.0 - 2.0 * y("households_no_materials")) + 10.0 * y("publicity_events"),
        "E6": _floor0(10.0 - 3.0 * y("board_updates_missed")),
        "E7": _floor0(10.0 - _over(pl.lit(slogan_target), y("slogans")))
        + 2.0 * _over(y("slogans"), pl.lit(slogan_target)),
        "F1": completion(180.0, "ligation_done", "ligation_target", 5.0)
        + 20.0 * y("ligation_two_daughter")
        + 5.0 * y("induced_terminations"),
        "F2": completion(40.0, "iud_done", "iud_target", 2.0),
        "G1": pl.when(rate_g1 >= 50)
        .then(40.0 + 5.0 * (rate_g1 - 50.0))
        .otherwise(40.0 * rate_g1 / 50.0),
        "G2": _floor0(
            pl.when(rate_g2 >= 60).then(140.0).otherwise(140.0 * rate_g2 / 60.0)  # [I8]
            - 20.0 * y("fee_collusion_cases")
        ),
        "G3": 20.0 * _min1(_ratio(y("fee_enforce_done"), y("fee_enforce_required"))),
        "H1": a("association_score").clip(0.0, 20.0),
    } | {code: points * y(code) for code, points in ADJUSTMENTS.items()}


def _total(k: int) -> pl.Expr:
    """Spec §5: sum of the 20 items and the signed bonuses/deductions, as of period k."""
    return pl.sum_horizontal(_item_expressions(k).values())


def _rank(total: str) -> pl.Expr:
    """Competition ranking (1, 1, 3) within the group, highest first."""
    return (
        pl.col(total)
        .round(TIE_DECIMALS)
        .rank(method="min", descending=True)
        .over("group")
        .cast(pl.Int64)
    )


def _rank_bonus(rank: pl.Expr) -> pl.Expr:
    bonus = pl.lit(0.0)
    for place, points in sorted(RANK_BONUS.items(), reverse=True):
        bonus = pl.when(rank == place).then(points).otherwise(bonus)
    return bonus


def score_baseline(
    data_path: str | Path, units_path: str | Path | None, period: str
) -> pl.DataFrame:
    """Score every unit for ``period`` (``YYYY`` or ``YYYYT1..3``).

    Returns columns unit, group, total, rank, rank_bonus, A1..H1 and one column per
    bonus/deduction (signed points), unrounded, in the order of the data's annual rows.
    """
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"period {period!r}: expected YYYY or YYYYT1..YYYYT3")
    year, step = match.group(1), match.group(2)
    k = int(step) if step else 3
    data_path = Path(data_path)
    wide = _read_wide(data_path, year, k)
    groups = _read_groups(Path(units_path) if units_path is not None else None)
    if groups is None:
        wide = wide.with_columns(group=pl.lit(None, dtype=pl.String))
    else:
        unknown = wide.join(groups, on="unit", how="anti")
        if unknown.height:
            raise ValueError(f"unit {unknown['unit'][0]!r} is not in the org units")
        wide = wide.join(groups, on="unit", how="left", maintain_order="left")

    items = _item_expressions(k)
    scored = (
        wide.lazy()
        .with_columns(**items)
        .with_columns(_ytd_total=pl.sum_horizontal(pl.col(name) for name in items))
    )
    if step:  # YTD as of Tk: ranked, no rank bonus
        scored = scored.with_columns(total=pl.col("_ytd_total"), rank_bonus=pl.lit(0.0))
    else:  # annual: + rank bonuses after T1, T2 and T3, then re-ranked
        scored = scored.with_columns(_t1=_total(1), _t2=_total(2), _t3=pl.col("_ytd_total"))
        scored = scored.with_columns(
            rank_bonus=pl.sum_horizontal(_rank_bonus(_rank(f"_t{j}")) for j in (1, 2, 3))
        ).with_columns(total=pl.col("_ytd_total") + pl.col("rank_bonus"))
    result = scored.with_columns(rank=_rank("total")).select(
        "unit", "group", "total", "rank", "rank_bonus", *items
    )
    return result.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="wide data (CSV or Parquet)")
    parser.add_argument("--units", type=Path, default=None, help="org units (code,name,parent)")
    parser.add_argument("--period", required=True, help="2022 or 2022T1..2022T3")
    parser.add_argument("--output", required=True, type=Path, help="CSV or .parquet")
    args = parser.parse_args(argv)
    result = score_baseline(args.data, args.units, args.period)
    if args.output.suffix.lower() == ".parquet":
        result.write_parquet(args.output)
    else:
        result.write_csv(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
