"""Benchmark the results pages: ranking and unit explanation, 20 concurrent clients.

    uv run python benchmarks/web_pages.py                        # 500 villages, 10 townships
    uv run python benchmarks/web_pages.py --workers 2
    uv run python benchmarks/web_pages.py --villages 500 --townships 1 --requests 400
    uv run python benchmarks/web_pages.py --database-url postgresql://postgres@127.0.0.1/kbench

A county of ``--villages`` synthetic villages (kaohe.demo.synth, village-1000,
2022) is loaded into a fresh database (SQLite in a temporary directory unless
``--database-url``) with kaohe.workflow.load; an admin session is made in the
store; the app runs under uvicorn on loopback in its own process (``--workers``,
default 1).  A warm-up (each township's ranking pages and one village page per
period: the scores and the township's data are then cached, as on a running
server; repeated over concurrent connections when there are several workers, each
of which keeps its own caches) is followed by the measured run: ``--clients``
concurrent keep-alive clients (closed loop; ``--client raw``, a lean HTTP/1.1
client, or ``--client httpx``) request, in random order, the ranking page of a
random township and period (``/results/{group}/{period}``) and the explanation
page of a random village (``/results/{group}/{period}/{unit}``; most of these
2,000 pages are computed on first request).  Prints p50/p95/max latency and the
error count per page, the server's CPU time per request (all its processes) and
the load average.  A benchmark, not a test: the target (issue §10) is p95 ≤ 150 ms
for both pages with 20 clients on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PERIODS = ["2022T1", "2022T2", "2022T3", "2022"]


def build_database(url: str, villages: int, townships: int) -> tuple[str, list[tuple[str, str]]]:
    """A migrated database with the synthetic county; returns (session token, [(group, unit)])."""
    from kaohe.auth.sessions import create_session
    from kaohe.auth.users import add_user
    from kaohe.demo.synth import synth_village
    from kaohe.io.dataset import Dataset, OrgUnits
    from kaohe.store.db import make_engine, session_factory, transaction, upgrade
    from kaohe.workflow.load import add_unit, load_dataset, load_org_units
    from kaohe.workflow.rulebooks import store_rulebook

    data, units = synth_village(villages, townships, year=2022)
    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as s:
        county = add_unit(s, "X99", "基准县", "county")
        store_rulebook(s, "village-1000")
        load_org_units(s, OrgUnits(units, "synth"), under=county, rulebook="village-1000")
        variables = [c for c in data.columns if c not in ("unit", "period")]
        load_dataset(s, Dataset(data, "synth", variables))
        admin = add_user(s, "bench_admin", "bench-pass-1", "admin", check_password=False)
        token, _row = create_session(s, admin)
    pairs = [(p, c) for c, p in units.select("code", "parent").iter_rows() if p is not None]
    engine.dispose()
    return token, pairs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(base + "/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("uvicorn did not start")


class RawClient:
    """A lean HTTP/1.1 keep-alive client (asyncio streams): the clients share the two
    cores with the server, and httpx spends about a millisecond of CPU per request."""

    def __init__(self, host: str, port: int, cookie: str) -> None:
        self.host, self.port, self.cookie = host, port, cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Cookie: {self.cookie}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        if "content-length" not in headers:
            raise RuntimeError(f"{path}: no Content-Length (chunked responses not supported)")
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def make_jobs(pairs: list[tuple[str, str]], requests: int, seed: int) -> list[tuple[str, str]]:
    groups = sorted({g for g, _ in pairs})
    rng = random.Random(seed)
    jobs: list[tuple[str, str]] = []
    for i in range(requests):
        period = rng.choice(PERIODS)
        if i % 2 == 0:
            jobs.append(("ranking", f"/results/{rng.choice(groups)}/{period}"))
        else:
            g, u = rng.choice(pairs)
            jobs.append(("unit", f"/results/{g}/{period}/{u}"))
    return jobs


async def run_clients(
    base: str, token: str, jobs: list[tuple[str, str]], clients: int, lean: bool
) -> dict[str, list[tuple[float, bool]]]:
    from kaohe.auth.sessions import SESSION_COOKIE

    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for j in jobs:
        queue.put_nowait(j)
    out: dict[str, list[tuple[float, bool]]] = {}
    host, port = base.removeprefix("http://").split(":")

    async def worker() -> None:
        raw = RawClient(host, int(port), f"{SESSION_COOKIE}={token}") if lean else None
        async with httpx.AsyncClient(
            base_url=base, cookies={SESSION_COOKIE: token}, timeout=60
        ) as c:
            while True:
                try:
                    kind, path = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                t = time.perf_counter()
                try:
                    if raw is not None:
                        status, _ = await raw.get(path)
                    else:
                        status = (await c.get(path)).status_code
                    ok = status == 200
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, RuntimeError):
                    ok = False
                    if raw is not None:
                        await raw.close()
                out.setdefault(kind, []).append((time.perf_counter() - t, ok))
        if raw is not None:
            await raw.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its child processes (uvicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(q * (len(xs) - 1))))
    return xs[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--villages", type=int, default=500)
    ap.add_argument("--townships", type=int, default=10)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1000, help="total requests (both pages)")
    ap.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="raw: a lean keep-alive HTTP/1.1 client (default); httpx: httpx.AsyncClient",
    )
    args = ap.parse_args()
    lean = args.client == "raw"

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        t0 = time.perf_counter()
        token, pairs = build_database(url, args.villages, args.townships)
        print(
            f"loaded {args.villages} villages in {args.townships} townships "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        port = free_port()
        env = dict(os.environ, KAOHE_DATABASE_URL=url)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "kaohe.web.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--workers",
                str(args.workers),
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base, proc)
            first: dict[str, str] = {}
            for g, u in pairs:
                first.setdefault(g, u)
            warm = [
                ("warm", path)
                for g, u in sorted(first.items())
                for p in PERIODS
                for path in (f"/results/{g}/{p}", f"/results/{g}/{p}/{u}")
            ]
            t0 = time.perf_counter()
            # every worker process keeps its own caches: repeat the warm-up over
            # concurrent connections so that each worker is likely to see each page
            for _ in range(1 if args.workers == 1 else 2 * args.workers):
                done = asyncio.run(run_clients(base, token, warm, args.clients, lean))
                bad = sum(1 for _, ok in done["warm"] if not ok)
                if bad:
                    print(f"warm-up: {bad} requests failed")
            print(
                "warm-up (each township: its ranking pages and one unit page per period): "
                f"{time.perf_counter() - t0:.1f} s"
            )
            jobs = make_jobs(pairs, args.requests, args.seed)
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            res = asyncio.run(run_clients(base, token, jobs, args.clients, lean))
            wall = time.perf_counter() - t0
            server_cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.requests} requests, {args.clients} {args.client} clients, {args.workers} "
        f"worker(s), {wall:.1f} s wall, load average {load}; server CPU "
        f"{server_cpu * 1000 / args.requests:.1f} ms per request"
    )
    print(f"{'page':<10}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'errors':>8}")
    worst = 0.0
    for kind, rows in res.items():
        times = [t * 1000 for t, _ in rows]
        errors = sum(1 for _, ok in rows if not ok)
        p95 = pct(times, 0.95)
        worst = max(worst, p95)
        print(
            f"{kind:<10}{len(rows):>6}{statistics.median(times):>10.1f}{p95:>10.1f}"
            f"{max(times):>10.1f}{errors:>8}"
        )
    print(f"target p95 ≤ 150 ms: {'met' if worst <= 150 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
