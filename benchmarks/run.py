"""Benchmark the kaohe engine against the hand-written Polars baseline, end to end.

    uv run python benchmarks/run.py                      # 200,000 and 1,000,000 villages
    uv run python benchmarks/run.py --sizes 50000 --repeat 5
    uv run python benchmarks/run.py --quick              # 20,000 villages, one repeat

For each size, synthetic village-1000 data (kaohe.demo.synth, 20 villages per township)
is written once to benchmarks/data/ as CSV and Parquet (reused when present).  For each
format, fresh subprocesses run

* the engine:   kaohe score village-1000 --data F --units U --period P --format csv --output O
* the baseline: python benchmarks/baseline_village1000.py --data F --units U --period P --output O
* one explanation: kaohe explain village-1000 … --unit CODE --format json, and the engine's
  load-only cost (rulebook, org units and data read and validated, nothing scored)
* once: kaohe --help, the CLI's start-up cost (imports) included in every engine run

and records the median wall time and each process's own peak RSS (``os.wait4``).  The
engine's and the baseline's outputs must agree on every unit (total and items within
0.005, equal ranks).  Exit status: 0 when all ran and agreed, 1 when outputs disagree,
2 when a run failed (e.g. the engine's CLI is missing or broken).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA_DIR = HERE / "data"
OUT_DIR = DATA_DIR / "out"
BASELINE = HERE / "baseline_village1000.py"
RULEBOOK = "village-1000"
VILLAGES_PER_TOWNSHIP = 20
SEED = 2022
YEAR = 2022
QUICK_SIZE = 20_000
#: results are rounded to 2 decimals by the engine; the baseline's are exact
TOLERANCE = 0.005 + 1e-6
TIMEOUT_S = 3600.0

console = Console(stderr=True)

# Load-only cost of the engine: what `kaohe score` does before scoring (see kaohe.cli).
_LOAD_ONLY = """
import sys
from pathlib import Path
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import load_rulebook
rulebook, data, units = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
rb = load_rulebook(rulebook)
read_data(data, rb, read_units(units))
"""


@dataclass
class Measure:
    """Median wall time and largest peak RSS over the repeats of one command."""

    ok: bool = False
    seconds: float | None = None
    peak_mb: float | None = None
    runs: list[float] = field(default_factory=list)
    error: str = ""


@dataclass
class Row:
    size: int
    fmt: str
    engine: Measure
    baseline: Measure
    explain: Measure
    load: Measure
    agree: bool | None = None
    disagreement: str = ""


# --- data ----------------------------------------------------------------------------


def data_files(n: int) -> dict[str, Path]:
    stem = f"village-{n}-s{SEED}"
    return {
        "csv": DATA_DIR / f"{stem}.csv",
        "parquet": DATA_DIR / f"{stem}.parquet",
        "units": DATA_DIR / f"{stem}-units.csv",
    }


def ensure_data(n: int) -> dict[str, Path]:
    """Generate the size's files unless all are present (written atomically)."""
    files = data_files(n)
    if all(p.exists() for p in files.values()):
        return files
    from kaohe.demo.synth import synth_village

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    townships = max(1, n // VILLAGES_PER_TOWNSHIP)
    console.print(f"generating {n:,} villages × {townships:,} townships …")
    start = time.perf_counter()
    data, units = synth_village(n, townships, year=YEAR, seed=SEED)
    made = time.perf_counter() - start
    for key, write in (
        ("csv", data.write_csv),
        ("parquet", data.write_parquet),
        ("units", units.write_csv),
    ):
        tmp = files[key].with_suffix(files[key].suffix + ".tmp")
        write(tmp)
        tmp.replace(files[key])
    console.print(
        f"  generated in {made:.1f} s, written in {time.perf_counter() - start - made:.1f} s "
        f"({files['csv'].stat().st_size / 1e6:,.0f} MB CSV, "
        f"{files['parquet'].stat().st_size / 1e6:,.0f} MB Parquet)"
    )
    return files


def middle_village(units: Path) -> str:
    villages = pl.scan_csv(units).filter(pl.col("parent").is_not_null()).select("code").collect()
    return str(villages["code"][villages.height // 2])


# --- running -------------------------------------------------------------------------


def kaohe_command() -> list[str]:
    """The `kaohe` console script next to this interpreter, else `python -m kaohe`."""
    bindir = Path(sys.executable).parent
    for name in ("kaohe", "kaohe.exe"):
        if (bindir / name).exists():
            return [str(bindir / name)]
    return [sys.executable, "-m", "kaohe"]


def _peak_mb(usage: object) -> float:
    maxrss = float(getattr(usage, "ru_maxrss", 0))
    # Linux reports KiB, macOS bytes
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def run_once(cmd: list[str], log: Path) -> tuple[bool, float, float, str]:
    """Run in a fresh process; (ok, wall seconds, own peak RSS in MB, error text)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        timer = threading.Timer(TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = " | ".join(text[-3:]) if text else ""
        return False, elapsed, _peak_mb(usage), f"exit {proc.returncode}: {tail}"[:300]
    return True, elapsed, _peak_mb(usage), ""


def measure(cmd: list[str], repeat: int, log: Path) -> Measure:
    return measure_rounds({"cmd": (cmd, log)}, repeat)["cmd"]


def measure_rounds(cmds: dict[str, tuple[list[str], Path]], repeat: int) -> dict[str, Measure]:
    """Run the commands in turn, ``repeat`` rounds (engine, baseline, engine, baseline…
    rather than all runs of one then all of the other: a machine whose speed drifts
    during the benchmark then affects both alike)."""
    out = {name: Measure() for name in cmds}
    peaks: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, (cmd, log) in cmds.items():
            m = out[name]
            if m.error:
                continue
            ok, seconds, peak, error = run_once(cmd, log)
            if not ok:
                m.error = error
                continue
            m.runs.append(seconds)
            peaks[name].append(peak)
    for name, m in out.items():
        if not m.error and m.runs:
            m.ok = True
            m.seconds = statistics.median(m.runs)
            m.peak_mb = max(peaks[name])
    return out


# --- comparison ----------------------------------------------------------------------


def compare(engine_csv: Path, baseline_csv: Path) -> tuple[bool, str]:
    """Every unit present in both, equal ranks, total and shared item/adjustment
    columns within TOLERANCE."""
    engine = pl.read_csv(engine_csv, infer_schema_length=10_000)
    base = pl.read_csv(baseline_csv, infer_schema_length=10_000)
    numeric = [
        c
        for c in base.columns
        if c not in ("unit", "group", "rank") and c in engine.columns and c != "name"
    ]
    if "total" not in numeric or "rank" not in engine.columns:
        return False, f"engine output lacks total/rank (columns: {engine.columns[:8]}…)"
    keys = ["unit", "rank"] + (["group"] if "group" in engine.columns else [])
    engine = engine.select(
        pl.col("unit").cast(pl.String),
        pl.col("rank").cast(pl.Int64),
        *(pl.col("group").cast(pl.String) for _ in keys[2:]),
        *(pl.col(c).cast(pl.Float64) for c in numeric),
    )
    joined = base.select(*keys, *numeric).join(
        engine, on="unit", how="full", suffix="_engine", coalesce=True
    )
    missing = joined.filter(pl.col("rank").is_null() | pl.col("rank_engine").is_null())
    if missing.height:
        return False, f"{missing.height} units only on one side, e.g. {missing['unit'][0]}"
    problems: list[str] = []
    bad_rank = joined.filter(pl.col("rank") != pl.col("rank_engine"))
    if bad_rank.height:
        problems.append(f"rank differs for {bad_rank.height} units, e.g. {bad_rank['unit'][0]}")
    if "group" in keys:
        bad_group = joined.filter(pl.col("group").ne_missing(pl.col("group_engine")))
        if bad_group.height:
            problems.append(f"group differs for {bad_group.height} units")
    for c in numeric:
        bad = joined.filter((pl.col(c) - pl.col(f"{c}_engine")).abs() > TOLERANCE)
        if bad.height:
            row = bad.row(0, named=True)
            problems.append(
                f"{c} differs for {bad.height} units, e.g. {row['unit']}: "
                f"engine {row[c + '_engine']} vs baseline {row[c]}"
            )
    return not problems, "; ".join(problems[:4]) + (
        f" (compared {joined.height:,} units on rank + {len(numeric)} columns)" if problems else ""
    )


# --- main --------------------------------------------------------------------------------


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh process.  The peak RSS a child reports (``os.wait4``)
    includes this process's own peak at the time it was started (Linux copies it at
    exec), so the work that takes memory here (generating data, comparing outputs)
    is kept out of this process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench(size: int, fmt: str, repeat: int, period: str, baseline_only: bool) -> Row:
    files = in_child(ensure_data, size)
    data, units = files[fmt], files["units"]
    tag = f"{size}-{fmt}"
    engine_out = OUT_DIR / f"engine-{tag}.csv"
    baseline_out = OUT_DIR / f"baseline-{tag}.csv"
    kaohe = kaohe_command()
    common = ["--data", str(data), "--units", str(units), "--period", period]
    row = Row(size, fmt, Measure(), Measure(), Measure(), Measure())

    console.print(f"[bold]{size:,} villages, {fmt}[/]")
    cmds = {
        "baseline": (
            [sys.executable, str(BASELINE), *common, "--output", str(baseline_out)],
            OUT_DIR / f"baseline-{tag}.log",
        )
    }
    if not baseline_only:
        unit = middle_village(units)
        cmds |= {
            "engine": (
                [
                    *kaohe,
                    "score",
                    RULEBOOK,
                    *common,
                    "--format",
                    "csv",
                    "--output",
                    str(engine_out),
                ],
                OUT_DIR / f"engine-{tag}.log",
            ),
            "explain": (
                [*kaohe, "explain", RULEBOOK, *common, "--unit", unit, "--format", "json"],
                OUT_DIR / f"explain-{tag}.log",
            ),
            "load": (
                [sys.executable, "-c", _LOAD_ONLY, RULEBOOK, str(data), str(units)],
                OUT_DIR / f"load-{tag}.log",
            ),
        }
    console.print(f"  {', '.join(cmds)}: {repeat} rounds …")
    measured = measure_rounds(cmds, repeat)
    row.baseline = measured["baseline"]
    if baseline_only:
        return row
    row.engine, row.explain, row.load = measured["engine"], measured["explain"], measured["load"]
    if row.engine.ok and row.baseline.ok:
        row.agree, row.disagreement = in_child(compare, engine_out, baseline_out)
    return row


def _s(m: Measure) -> str:
    if m.ok and m.seconds is not None:
        return f"{m.seconds:.2f}"
    return "[red]failed[/]" if m.error else "—"  # "—": not run


def _mb(m: Measure) -> str:
    return f"{m.peak_mb:,.0f}" if m.ok and m.peak_mb is not None else "—"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "—"


def paired_ratio(a: Measure, b: Measure) -> float | None:
    """Median over the rounds of a's time / b's time in the same round."""
    if not (a.ok and b.ok) or len(a.runs) != len(b.runs):
        return None
    return statistics.median(x / y for x, y in zip(a.runs, b.runs, strict=True))


def report(rows: list[Row], period: str, repeat: int) -> Table:
    table = Table(
        title=f"village-1000, period {period}: median of {repeat} rounds, fresh processes "
        "(engine/baseline: median of each round's ratio)"
    )
    for name in (
        "villages",
        "format",
        "engine s",
        "baseline s",
        "engine/baseline",
        "engine MB",
        "baseline MB",
        "MB ratio",
        "load s",
        "explain s",
        "agree",
    ):
        table.add_column(name, justify="left" if name in ("format", "agree") else "right")
    for r in rows:
        agree = {True: "[green]yes[/]", False: "[red]NO[/]", None: "—"}[r.agree]
        table.add_row(
            f"{r.size:,}",
            r.fmt,
            _s(r.engine),
            _s(r.baseline),
            _ratio(paired_ratio(r.engine, r.baseline), 1.0),
            _mb(r.engine),
            _mb(r.baseline),
            _ratio(r.engine.peak_mb, r.baseline.peak_mb),
            _s(r.load),
            _s(r.explain),
            agree,
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kaohe engine vs hand-written Polars baseline")
    parser.add_argument("--sizes", default="200000,1000000", help="comma-separated village counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE:,} villages, 1 run")
    parser.add_argument("--formats", default="csv,parquet", help="csv,parquet")
    parser.add_argument("--period", default=str(YEAR), help="period to score (default: year)")
    parser.add_argument("--baseline-only", action="store_true", help="skip the engine runs")
    args = parser.parse_args(argv)
    sizes = [QUICK_SIZE] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    repeat = 1 if args.quick else max(1, args.repeat)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not set(formats) <= {"csv", "parquet"}:
        parser.error("--formats: csv and/or parquet")

    rows = [
        bench(n, fmt, repeat, args.period, args.baseline_only) for n in sizes for fmt in formats
    ]
    # the fixed cost of every engine run: starting the CLI (imports), nothing read
    startup = Measure()
    if not args.baseline_only:
        startup = measure([*kaohe_command(), "--help"], repeat, OUT_DIR / "startup.log")
    # a wide table even when stdout is not a terminal (make, CI logs)
    Console(width=None if sys.stdout.isatty() else 160).print(report(rows, args.period, repeat))
    if startup.ok:
        console.print(
            f"startup (kaohe --help, included in every engine and explain time): "
            f"{_s(startup)} s, {_mb(startup)} MB"
        )

    status = 0
    for r in rows:
        where = f"{r.size:,} {r.fmt}"
        for what, m in (
            ("engine", r.engine),
            ("baseline", r.baseline),
            ("explain", r.explain),
            ("load-only", r.load),
        ):
            if m.error:
                console.print(f"[red]{where}: {what} failed[/] {m.error}")
                if what in ("engine", "baseline"):
                    status = max(status, 2)
        if r.agree is False:
            console.print(f"[red]{where}: engine and baseline disagree[/]: {r.disagreement}")
            status = max(status, 1)
    summary = DATA_DIR / "last-run.json"
    summary.write_text(
        json.dumps(
            {
                "period": args.period,
                "repeat": repeat,
                "startup": asdict(startup),
                "rows": [
                    asdict(r) | {"engine_baseline_ratio": paired_ratio(r.engine, r.baseline)}
                    for r in rows
                ],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    console.print(f"details: {summary}, logs and outputs in {OUT_DIR}")
    return status


if __name__ == "__main__":
    sys.exit(main())
