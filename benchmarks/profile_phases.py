"""In-process timing of the phases of `kaohe score` and `kaohe explain` (village-1000).

    uv run python benchmarks/profile_phases.py --size 200000 --format parquet
    uv run python benchmarks/profile_phases.py --size 200000 --format csv --repeat 3

Uses the files of benchmarks/run.py (generated when missing).  Prints the wall and CPU
time of each phase (best of --repeat), the peak RSS sampled during it and the RSS after
it: finer than the fresh-process figures of run.py, so use it to see where the time
goes, not for ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.run import RULEBOOK, YEAR, ensure_data, middle_village  # noqa: E402


class _Rss:
    """Samples the resident set size every millisecond: the peak of each phase."""

    def __init__(self) -> None:
        self.peak = 0
        self.page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.now())

    def reset(self) -> None:
        self.peak = self.now()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


RSS = _Rss()


def _timed(
    label: str,
    fn: Callable[[], Any],
    repeat: int,
    times: dict[str, tuple[float, float, int, int]],
) -> Any:
    best = cpu = float("inf")
    out = None
    RSS.reset()
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    times[label] = (best, cpu, RSS.peak, RSS.now())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="parquet")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--explain", type=int, default=3, help="explanations to time")
    args = parser.parse_args(argv)

    from kaohe.engine.evaluate import build_frame, evaluate_frame, plan_period
    from kaohe.engine.explain import explain_unit
    from kaohe.io.read import read_data
    from kaohe.io.units import read_units
    from kaohe.output import write_csv
    from kaohe.periods import Period
    from kaohe.rulebook.loader import load_rulebook

    files = ensure_data(args.size)
    times: dict[str, tuple[float, float, int, int]] = {}
    rb = _timed("rulebook", lambda: load_rulebook(RULEBOOK), 1, times)
    org = _timed("read_units", lambda: read_units(files["units"]), args.repeat, times)
    ds = _timed("read_data", lambda: read_data(files[args.format], rb, org), args.repeat, times)
    plan = plan_period(rb, str(YEAR))
    _, wide = _timed("build_frame", lambda: build_frame(rb, ds, plan, org), args.repeat, times)
    result = _timed("evaluate", lambda: evaluate_frame(rb, wide, plan), args.repeat, times)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        _timed("write_csv", lambda: write_csv(result, out), args.repeat, times)
    unit = middle_village(files["units"])
    period = Period.parse(str(YEAR))
    if args.explain:
        _timed("explain_unit", lambda: explain_unit(rb, ds, org, period, unit), args.explain, times)
    RSS.stop()
    print(f"{'phase':>14} {'ms':>9} {'CPU ms':>9} {'peak MB':>8} {'after MB':>8}")
    for label, (s, cpu, peak, after) in times.items():
        print(
            f"{label:>14} {s * 1000:9.1f} {cpu * 1000:9.1f} {peak / 2**20:8.0f} {after / 2**20:8.0f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak RSS':>14} {peak:9.0f} MB")
    print(f"{'dataset':>14} {ds.frame.estimated_size() / 1e6:9.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
