"""`make run` / `kaohe demo`: score the shipped demo county and show the result."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kaohe.numbers import fmt2

DEMO_PACKAGE = "kaohe.demo"


def demo_files() -> tuple[Path, Path]:
    base = resources.files(DEMO_PACKAGE)
    return Path(str(base / "village-demo.csv")), Path(str(base / "village-demo-units.csv"))


def run_demo(output_dir: Path, console: Console, period: str = "2022") -> Path:
    from kaohe.engine import score
    from kaohe.io.read import read_data
    from kaohe.io.units import read_units
    from kaohe.io.xlsx_report import write_xlsx_report
    from kaohe.rulebook.loader import load_rulebook

    data_path, units_path = demo_files()
    rb = load_rulebook("village-1000")
    org = read_units(units_path)
    ds = read_data(data_path, rb, org)
    result = score(rb, ds, period, org)
    names = org.name_of()
    console.print(f"[bold]{rb.model.name}[/] — {period}年度考核排名（演示数据 demo data）")
    for group, part in result.table.group_by("group", maintain_order=True):
        code = group[0]
        t = Table(title=f"{names.get(str(code), code)}（{code}）", title_justify="left")
        t.add_column("排名", justify="right")
        t.add_column("单位代码")
        t.add_column("村名")
        t.add_column("总分", justify="right")
        t.add_column("排名加分", justify="right")
        for row in part.iter_rows(named=True):
            t.add_row(
                str(row["rank"]),
                row["unit"],
                row["name"],
                fmt2(row["total"]),
                fmt2(row["rank_bonus"]),
            )
        console.print(t)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = output_dir / f"village-1000-{period}.xlsx"
    write_xlsx_report(result, report)
    console.print(f"报表已写出 report written: {report}")
    return report
