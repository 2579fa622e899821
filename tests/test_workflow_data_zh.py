"""Upload errors in Chinese first: every reason the data reader gives for the broken
fixtures (and a few made here) has a Chinese rendering for the web preview, which
keeps the reader's English wording (asserted on by the CLI) in parentheses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kaohe.errors import InputErrors
from kaohe.io.dataset import OrgUnits
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook
from kaohe.workflow.excel import zh_reason

DATA = Path(__file__).parent / "fixtures" / "data"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def rb() -> LoadedRulebook:
    return load_rulebook("village-1000")


@pytest.fixture(scope="module")
def org() -> OrgUnits:
    return read_units(DATA / "village-1000-units.csv")


def reasons(path: Path, rb: LoadedRulebook, org: OrgUnits) -> list[str]:
    with pytest.raises(InputErrors) as info:
        read_data(path, rb, org)
    return [e.reason for e in info.value.errors]


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("bad-*")))
def test_every_fixture_reason_has_chinese(name: str, rb: LoadedRulebook, org: OrgUnits) -> None:
    for reason in reasons(DATA / name, rb, org):
        zh = zh_reason(reason)
        assert zh.endswith(f" ({reason})")
        head = zh[: -len(f" ({reason})")]
        assert CJK.search(head.replace(reason, "")), f"no Chinese for: {reason}"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("'五' is not a number", "'五' 不是数字"),
        ("-2 is negative (must be ≥ 0)", "-2 是负数（须 ≥ 0）"),
        ("12 is above the maximum 10", "12 超过上限 10"),
        ("-9 is below the minimum -5", "-9 小于下限 -5"),
        (
            "'births_total' (核实出生数) is a flow, reported on the tertial rows (YYYYT1–T3); "
            "leave it empty on the year row 2022",
            "'births_total' (核实出生数) 是流量指标，在四个月期行 (YYYYT1–T3)填报；年度行 2022 请留空",
        ),
        (
            "unknown column: not a variable of the rulebook (did you mean 'population', "
            "年初户籍人口?); columns are unit, period, an optional name and variable codes, "
            "optionally written as '中文标签 (code)'",
            "未知的列：不是本考核方案的变量（是否应为 'population'，年初户籍人口？）；",
        ),
        ("column H has values but no header (row 3: 'x')", "H 列有内容但没有表头（第 3 行：'x'）"),
        (
            "7 more errors not shown (only the first 50 are listed)",
            "另有 7 处错误未列出（只列出前 50 处）",
        ),
    ],
)
def test_reason_wording(reason: str, expected: str) -> None:
    assert zh_reason(reason).startswith(expected)


def test_unknown_wording_is_kept() -> None:
    assert zh_reason("something new") == "something new"
