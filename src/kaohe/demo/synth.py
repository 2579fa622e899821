"""Synthetic village-1000 data: realistic-looking, deterministic and fast.

:func:`synth_village` builds a data frame in the wide layout of the spec
(``unit, period, <65 variables>``; one row per village with period ``YYYY``
holding the annual variables and rows ``YYYYT1..T3`` holding the flows) and
the matching org-unit frame (``code, name, parent``; townships are roots).

Everything is vectorised in Polars (1,000,000 villages in a few seconds).  Random
numbers are counter-based: each row gets a hash (the SplitMix64 finaliser of
``village key × golden ratio + constant``), and each named stream multiplies it by
its own odd constant (see :class:`_Rng`).  Only plain integer and float expressions
are used, so the output depends on the seed alone, not on thread scheduling or on
the Polars version's own hash functions.  Streams are keyed by variable name, so
adding a variable does not change the others, and values are keyed by village
index, so a larger run extends a smaller one.  About 2% of villages copy every value
of the previous village in the same township (same random key), which produces
exact ties in the totals; names and codes stay distinct.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import polars as pl

__all__ = [
    "ADJUSTMENT_VARIABLES",
    "ANNUAL_VARIABLES",
    "COLUMNS",
    "FLOW_VARIABLES",
    "VARIABLES",
    "synth_village",
    "write_village_csv",
    "write_village_parquet",
]

#: annual variables (row with period ``YYYY``), in the column order of the spec's example
ANNUAL_VARIABLES: tuple[str, ...] = (
    "org_score",
    "population",
    "certs_target",
    "prepreg_target",
    "ligation_target",
    "iud_target",
    "association_score",
)

#: item flow variables (rows ``YYYYTk``), in the example's column order
FLOW_VARIABLES: tuple[str, ...] = (
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

#: bonus/deduction counts (flows), with the mean number of cases per village and period
_ADJUSTMENT_RATES: dict[str, float] = {
    "commend_city": 0.010,
    "commend_above": 0.004,
    "two_non_leads": 0.008,
    "inspect_pass_province": 0.004,
    "inspect_pass_prefecture": 0.006,
    "inspect_pass_city": 0.010,
    "township_praise": 0.050,
    "township_criticism": 0.040,
    "fee_rich_cases": 0.004,
    "credit_blacklist_reports": 0.008,
    "cadre_violations": 0.004,
    "cadre_violations_past": 0.005,
    "criticism_province": 0.002,
    "criticism_prefecture": 0.004,
    "criticism_city": 0.008,
    "inspect_fail_above": 0.002,
    "inspect_fail_prefecture": 0.004,
    "fee_undercharge_cases": 0.005,
    "fine_for_birth_cases": 0.003,
}

#: bonus/deduction variables, in the example's column order
ADJUSTMENT_VARIABLES: tuple[str, ...] = tuple(_ADJUSTMENT_RATES)

#: all 65 variables in column order
VARIABLES: tuple[str, ...] = ANNUAL_VARIABLES + FLOW_VARIABLES + ADJUSTMENT_VARIABLES
#: all flow variables (items and adjustments)
_ALL_FLOWS: tuple[str, ...] = FLOW_VARIABLES + ADJUSTMENT_VARIABLES
#: columns of the data frame
COLUMNS: tuple[str, ...] = ("unit", "period", *VARIABLES)

#: variables holding assessed scores (may be fractional); every other variable is a count
_SCORE_VARIABLES = frozenset({"org_score", "association_score"})

#: target share issued in each period (4:3:3)
_PERIOD_SHARES: tuple[float, ...] = (0.4, 0.3, 0.3)

#: probability that a village copies the previous village of its township (exact ties)
_TIE_PROBABILITY = 0.02

# --- names ------------------------------------------------------------------------------

_TOWN_FIRST = list("城大新白石黄青龙凤金马长东西南北平安永兴柳桃河清双高红古太沙")
_TOWN_SECOND = list("关河集桥山庙店湖口坪岭营泉寨阳林溪塘港田坝川楼")
_SURNAMES = list(
    "张王李刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段"
)
_PLACES = list("庄家集营寨岗楼湾店屯堡河桥沟坡园洼口圩台")

# --- counter-based random numbers ----------------------------------------------------------

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK64, dtype=pl.UInt64)


def _splitmix_int(x: int) -> int:
    """SplitMix64 finaliser on a Python int (used to derive stream constants)."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * _MUL1) & _MASK64
    x = ((x ^ (x >> 27)) * _MUL2) & _MASK64
    return x ^ (x >> 31)


def _splitmix(x: pl.Expr) -> pl.Expr:
    """SplitMix64 finaliser on a UInt64 expression (multiplication wraps modulo 2**64)."""
    x = (x ^ (x // _u64(1 << 30))) * _u64(_MUL1)
    x = (x ^ (x // _u64(1 << 27))) * _u64(_MUL2)
    return x ^ (x // _u64(1 << 31))


class _Rng:
    """Random streams derived from a per-row hash column ``_h``.

    :meth:`hashed` adds ``_h`` = SplitMix64(key × golden ratio + tag constant [+ salt]);
    a stream ``s`` then reads ``_h × c_s`` modulo 2**64 (``c_s`` an odd constant derived
    from the seed and the stream name): its top bits give a uniform, and comparing it
    with ``p × 2**64`` gives an event of probability ``p`` in two integer operations.
    One full mix per row and a multiplication per stream keep 1,000,000 villages ×
    ~200 streams within a few seconds."""

    def __init__(self, seed: int) -> None:
        self._seed = _splitmix_int(seed & _MASK64)

    def _constant(self, name: str) -> int:
        return _splitmix_int(self._seed ^ zlib.crc32(name.encode()))

    def hashed(
        self, frame: pl.LazyFrame, tag: str, key: str = "_key", salt: pl.Expr | None = None
    ) -> pl.LazyFrame:
        """``frame`` with the row hash ``_h`` for ``tag`` (replacing any previous one);
        ``salt`` (UInt64) separates rows that share a key, e.g. a village's periods."""
        start = pl.col(key).cast(pl.UInt64) * _u64(_GOLDEN) + _u64(self._constant(tag))
        if salt is not None:
            start = start + salt * _u64(self._constant(tag + "#salt"))
        return frame.with_columns(_h=start).with_columns(_h=_splitmix(pl.col("_h")))

    def _bits(self, stream: str) -> pl.Expr:
        return pl.col("_h") * _u64(self._constant(stream) | 1)

    def uniform(self, stream: str) -> pl.Expr:
        """U[0, 1] (the top bits of the stream; 1.0 has probability 2**-54)."""
        return self._bits(stream).cast(pl.Float64) * (2.0**-64)

    def uniform_range(self, stream: str, low: float, high: float) -> pl.Expr:
        return low + (high - low) * self.uniform(stream)

    def chance(self, stream: str, p: float) -> pl.Expr:
        """True with probability ``p`` (a constant)."""
        return self._bits(stream) < _u64(min(int(p * 2.0**64), _MASK64))

    def normal(self, stream: str) -> pl.Expr:
        """Approximately standard normal: Irwin-Hall sum of three uniforms."""
        total = pl.sum_horizontal([self.uniform(f"{stream}#{j}") for j in range(3)])
        return (total - 1.5) * 2.0

    def count(self, stream: str, mean: float, cap: int) -> pl.Expr:
        """A small count with a constant mean, at most ``cap``: geometric law
        P(X >= k) = q**k with q = mean / (1 + mean), as ``cap`` integer comparisons."""
        q = mean / (1.0 + mean)
        bits = self._bits(stream)
        levels = [bits < _u64(int(q**j * 2.0**64)) for j in range(1, cap + 1)]
        return pl.sum_horizontal(levels).cast(pl.Float64)

    def count_scaled(self, stream: str, mean: pl.Expr, cap: int) -> pl.Expr:
        """Like :meth:`count` with a mean that varies by row."""
        tail = (1.0 - self.uniform(stream)).log()  # ln(1 - u) in [-inf, 0]
        # ln(q) is -inf when the mean is 0: no cases
        x = (tail / (mean / (1.0 + mean)).log()).fill_nan(0.0).floor()
        return x.clip(0.0, float(cap))

    def poisson_like(self, stream: str, mean: pl.Expr) -> pl.Expr:
        """A count near ``mean`` with Poisson-like spread (normal approximation, >= 0)."""
        return (mean + mean.sqrt() * self.normal(stream)).round(0).clip(lower_bound=0.0)


def _min(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return pl.min_horizontal(a, b)


def _fraction(x: pl.Expr) -> pl.Expr:
    return x.clip(0.0, 1.0)


# --- generation ------------------------------------------------------------------------------


def _village_frame(n_villages: int, n_townships: int, rng: _Rng) -> pl.LazyFrame:
    """One row per village: index, township index, random key, row hash and village traits."""
    i = pl.col("_i")
    town = (i * n_townships) // n_villages
    tie_flag = (i > 0) & rng.chance("tie", _TIE_PROBABILITY)
    same_town = ((i - 1) * n_townships) // n_villages == town
    frame = pl.LazyFrame({"_i": pl.int_range(n_villages, eager=True, dtype=pl.Int64)})
    frame = rng.hashed(frame, "tie", key="_i").with_columns(
        _town=town,
        # a tied village takes the random key (hence every value) of its predecessor
        _key=pl.when(tie_flag & same_town).then(i - 1).otherwise(i).cast(pl.UInt64),
    )
    return rng.hashed(frame, "village").with_columns(
        # quality of work (completion rates) and birth discipline, per village
        _quality=rng.uniform_range("quality", 0.55, 1.08),
        _laxity=rng.uniform("laxity").pow(3) * 3.0,
    )


def _annual_columns(rng: _Rng) -> list[list[pl.Expr]]:
    """Annual variables of a village, in dependency order."""
    log_low, log_high = math.log(350.0), math.log(5200.0)
    population = (
        pl.when(rng.chance("population_zero", 0.003))
        .then(0.0)
        .otherwise((log_low + (log_high - log_low) * rng.uniform("population")).exp().round(0))
    )
    pop = pl.col("population")

    def target(name: str, low: float, high: float, zero_p: float) -> pl.Expr:
        """An annual task proportional to the population, sometimes not issued (0)."""
        value = (pop * rng.uniform_range(name, low, high)).round(0)
        return pl.when(rng.chance(name + "_zero", zero_p)).then(0.0).otherwise(value).alias(name)

    u_org = rng.uniform("org_score")
    org_score = (
        pl.when(u_org < 0.55)
        .then(8.0)
        .when(u_org < 0.995)
        .then((rng.uniform("org_score_low") * 8.0).floor())
        .otherwise(9.0)  # entered above the item's points: the item clamps it
    )
    association = (
        pl.when(rng.chance("association_score", 0.5))
        .then(20.0)
        .otherwise((rng.uniform_range("association_score_low", 20.0, 40.0)).floor() / 2.0)
    )
    return [
        [population.alias("population")],
        [
            org_score.alias("org_score"),
            target("certs_target", 0.004, 0.012, 0.02),
            target("prepreg_target", 0.005, 0.015, 0.02),
            target("ligation_target", 0.0, 0.004, 0.12),
            target("iud_target", 0.001, 0.006, 0.05),
            association.alias("association_score"),
        ],
    ]


def _flow_stages(rng: _Rng) -> list[list[pl.Expr]]:
    """Flows of a period row, in dependency order.  ``_share`` is the target share issued
    in the row's period and ``_h`` differs per period, so periods vary independently."""
    share = pl.col("_share")
    pop = pl.col("population")
    quality = pl.col("_quality")

    def col(name: str) -> pl.Expr:
        return pl.col(name)

    def count(name: str, mean: float, cap: int) -> pl.Expr:
        return rng.count(name, mean, cap).alias(name)

    def done(name: str, target: str, spread: float) -> pl.Expr:
        """Completion of a split target: quality × noise, plus an occasional extra case."""
        factor = quality * rng.uniform_range(name, 1.0 - spread, 1.0 + spread)
        extra = rng.count(name + "_extra", 0.05, cap=2)
        return ((col(target) * share * factor).round(0) + extra).alias(name)

    u_phone = rng.uniform("phones_checked")
    first = [
        count("meeting_absences", 0.2, cap=4),
        rng.count_scaled("unplanned_one_boy", pop * 0.0015 * share * col("_laxity"), cap=30).alias(
            "unplanned_one_boy"
        ),
        rng.count_scaled("unplanned_multi", pop * 0.0008 * share * col("_laxity"), cap=20).alias(
            "unplanned_multi"
        ),
        count("births_5th", 0.015, cap=3),
        count("births_6plus", 0.002, cap=2),
        rng.poisson_like("births_total", pop * 0.012 * share).alias("births_total"),
        rng.count("births_missed", 0.12, cap=5).alias("_missed"),
        count("births_false", 0.03, cap=3),
        count("report_errors", 0.1, cap=5),
        count("clients_unmanaged", 0.12, cap=5),
        pl.when(rng.chance("checkups_zero", 0.05))
        .then(0.0)
        .otherwise(rng.poisson_like("checkups_due", pop * 0.05 * share))
        .alias("checkups_due"),
        done("certs_done", "certs_target", 0.3),
        done("prepreg_done", "prepreg_target", 0.3),
        count("prepreg_followup_missed", 0.1, cap=5),
        pl.when(u_phone < 0.35)
        .then(0.0)
        .when(u_phone < 0.7)
        .then(20.0)
        .otherwise(50.0)
        .alias("phones_checked"),
        count("dept_info_failures", 0.35, cap=8),
        count("migrant_info_failures", 0.3, cap=6),
        rng.poisson_like("deaths_total", pop * 0.007 * share).alias("deaths_total"),
        rng.count("deaths_late", 0.3, cap=5).alias("_deaths_late"),
        count("deaths_concealed", 0.03, cap=3),
        count("households_no_materials", 0.25, cap=8),
        count("publicity_events", 0.3, cap=3),
        count("board_updates_missed", 0.3, cap=4),
        (10.0 * share * rng.uniform_range("slogans", 0.4, 1.6)).round(0).alias("slogans"),
        done("ligation_done", "ligation_target", 0.35),
        count("induced_terminations", 0.05, cap=3),
        done("iud_done", "iud_target", 0.35),
        rng.count_scaled("fee_cases_due", pop * 0.0012 * share + 0.3, cap=20).alias(
            "fee_cases_due"
        ),
        count("fee_collusion_cases", 0.015, cap=2),
        count("fee_enforce_required", 0.3, cap=6),
        *(count(name, mean, cap=2) for name, mean in _ADJUSTMENT_RATES.items()),
    ]
    fee_rate = _fraction(quality * rng.uniform_range("fee_rate", 0.3, 1.3))
    checkup_rate = 0.55 + 0.3 * (quality - 0.55) / 0.53
    second = [
        (col("births_total") - _min(col("_missed"), col("births_total"))).alias("_reported_true"),
        # completion around 55-85% (the item pays 5 points per percent above 70)
        (col("checkups_due") * _fraction(checkup_rate + 0.06 * rng.normal("checkups_done")))
        .round(0)
        .alias("checkups_done"),
        (col("phones_checked") * rng.uniform_range("phones_correct", 0.65, 1.0))
        .round(0)
        .alias("phones_correct"),
        (col("deaths_total") - col("_deaths_late")).clip(lower_bound=0.0).alias("deaths_timely"),
        _min(rng.count("ligation_two_daughter", 0.08, cap=3), col("ligation_done")).alias(
            "ligation_two_daughter"
        ),
        (col("fee_cases_due") * fee_rate).round(0).alias("fee_cases_collected"),
        # 5,000 to 40,000 yuan per case
        (col("fee_cases_due") * 5000.0 * (1.0 + (rng.uniform("fee_first_due") * 8.0).floor()))
        .clip(upper_bound=col("fee_cases_due") * 40000.0)
        .alias("fee_first_due"),
        (col("fee_enforce_required") * rng.uniform("fee_enforce_done"))
        .round(0)
        .alias("fee_enforce_done"),
    ]
    third = [
        (col("births_total") - col("_reported_true")).alias("births_missed"),
        (col("_reported_true") + col("births_false")).alias("births_reported"),
        # collected in hundreds of yuan
        (col("fee_first_due") * fee_rate * rng.uniform_range("fee_first_collected", 0.6, 1.0))
        .truediv(100.0)
        .round(0)
        .mul(100.0)
        .alias("fee_first_collected"),
    ]
    fourth = [
        _min(rng.count("births_late", 0.25, cap=5), col("births_reported")).alias("births_late"),
    ]
    return [first, second, third, fourth]


def _names(n_villages: int, n_townships: int, rng: _Rng) -> pl.DataFrame:
    """The org-unit frame: townships (roots) first, then villages."""
    town_width = max(3, len(str(max(n_townships - 1, 0))))
    village_width = max(4, len(str(max(n_villages - 1, 0))))

    def pick(values: list[str], stream: str) -> pl.Expr:
        index = (rng.uniform(stream) * len(values)).floor().clip(0, len(values) - 1)
        return pl.lit(pl.Series(values, dtype=pl.String)).gather(index.cast(pl.UInt32))

    towns = rng.hashed(
        pl.LazyFrame({"_key": pl.int_range(n_townships, eager=True, dtype=pl.UInt64)}), "town"
    ).select(
        code=pl.format("T{}", pl.col("_key").cast(pl.String).str.zfill(town_width)),
        name=pl.when(pl.col("_key") == 0)
        .then(pl.lit("城关镇"))
        .otherwise(
            pl.concat_str(
                pick(_TOWN_FIRST, "town_first"),
                pick(_TOWN_SECOND, "town_second"),
                pl.when(rng.chance("town_kind", 0.7)).then(pl.lit("镇")).otherwise(pl.lit("乡")),
            )
        ),
        parent=pl.lit(None, dtype=pl.String),
    )
    villages = (
        rng.hashed(
            pl.LazyFrame({"_key": pl.int_range(n_villages, eager=True, dtype=pl.UInt64)}),
            "village_name",
        )
        .with_columns(_town=(pl.col("_key") * n_townships) // n_villages)
        .select(
            code=pl.format("V{}", pl.col("_key").cast(pl.String).str.zfill(village_width)),
            name=pl.concat_str(
                pick(_SURNAMES, "village_surname"), pick(_PLACES, "village_place"), pl.lit("村")
            ),
            parent=pl.format("T{}", pl.col("_town").cast(pl.String).str.zfill(town_width)),
        )
    )
    return pl.concat([towns, villages]).collect()


def synth_village(
    n_villages: int, n_townships: int, year: int = 2022, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Generate ``(data, units)`` for the village-1000 rulebook.

    ``data`` has the columns :data:`COLUMNS`: four rows per village, in village order:
    period ``str(year)`` with the annual variables (flows null), then ``{year}T1..T3``
    with the flows (annual variables null).  Scores are Float64, counts Int32.
    ``units`` has ``code, name, parent``: the townships (parent null), then the villages,
    spread over the townships in contiguous, nearly equal blocks.
    """
    if n_villages < 1 or n_townships < 1:
        raise ValueError("n_villages and n_townships must be at least 1")
    if n_townships > n_villages:
        raise ValueError("n_townships must not exceed n_villages")
    rng = _Rng(seed)
    units = _names(n_villages, n_townships, rng)
    village_width = max(4, len(str(n_villages - 1)))
    plan = _village_frame(n_villages, n_townships, rng)
    for stage in _annual_columns(rng):
        plan = plan.with_columns(stage)
    base = plan.drop("_h").collect()

    # the output directly: row r is village r // 4, part r % 4 (annual row, then T1..T3)
    row = pl.int_range(4 * n_villages, eager=True, dtype=pl.UInt32)
    frame = (
        base.select(pl.all().gather(row // 4))
        .lazy()
        .with_columns(_part=pl.lit(row % 4))
        .with_columns(
            _share=pl.col("_part").replace_strict(
                {k: share for k, share in enumerate(_PERIOD_SHARES, start=1)},
                default=0.0,
                return_dtype=pl.Float64,
            )
        )
    )
    frame = rng.hashed(frame, "period", salt=pl.col("_part").cast(pl.UInt64))
    for stage in _flow_stages(rng):
        frame = frame.with_columns(stage)
    periods = {0: str(year)} | {k: f"{year}T{k}" for k in range(1, len(_PERIOD_SHARES) + 1)}
    is_annual = pl.col("_part") == 0

    def dtype(name: str) -> pl.DataType:
        return pl.Float64() if name in _SCORE_VARIABLES else pl.Int32()

    data = frame.select(
        pl.format("V{}", pl.col("_i").cast(pl.String).str.zfill(village_width)).alias("unit"),
        pl.col("_part").replace_strict(periods, return_dtype=pl.String).alias("period"),
        *(pl.when(is_annual).then(pl.col(v)).cast(dtype(v)).alias(v) for v in ANNUAL_VARIABLES),
        *(pl.when(~is_annual).then(pl.col(v)).cast(pl.Int32).alias(v) for v in _ALL_FLOWS),
    ).collect()
    return data, units


def write_village_csv(
    path_data: str | Path,
    path_units: str | Path,
    n_villages: int,
    n_townships: int,
    seed: int = 0,
    year: int = 2022,
) -> None:
    """Generate with :func:`synth_village` and write both frames as UTF-8 CSV."""
    data, units = synth_village(n_villages, n_townships, year=year, seed=seed)
    data.write_csv(path_data)
    units.write_csv(path_units)


def write_village_parquet(
    path_data: str | Path,
    path_units: str | Path,
    n_villages: int,
    n_townships: int,
    seed: int = 0,
    year: int = 2022,
) -> None:
    """Like :func:`write_village_csv`, but the data goes to Parquet (units stay CSV
    when ``path_units`` ends in ``.csv``, Parquet otherwise)."""
    data, units = synth_village(n_villages, n_townships, year=year, seed=seed)
    data.write_parquet(path_data)
    if str(path_units).lower().endswith(".csv"):
        units.write_csv(path_units)
    else:
        units.write_parquet(path_units)
