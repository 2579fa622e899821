"""The ranking notice (通报): content, section numbering, DOCX and Markdown output."""

from __future__ import annotations

import datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from docx import Document
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from kaohe.engine.result import OUTCOME_SCHEMA, ScoreResult
from kaohe.io.notice import (
    Notice,
    NoticeTable,
    build_notice,
    chinese_ordinal,
    date_zh,
    render_notice_md,
    write_notice_docx,
    write_notice_md,
    yuan,
)
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook

ITEMS = ["L1", "P1", "R1", "J1", "K1"]
FLAGS = ["meets_standard", "p1_met"]
DATE = datetime.date(2022, 4, 5)


@cache
def rulebook() -> LoadedRulebook:
    return load_rulebook("community-monthly")


def make_result(
    period: str,
    units: list[tuple[str, str, float, int, bool]],
    outcomes: list[tuple[str, str, int | None]] | None = None,
    groups: list[str | None] | None = None,
) -> ScoreResult:
    """units: (code, name, total, rank, meets_standard); outcomes: (unit, code, amount_fen).
    Item scores are made up so that they add up to the total."""
    rb = rulebook()
    outcomes = outcomes or []
    by_code = {o.code: o for o in rb.model.outcomes}
    rows: list[dict[str, Any]] = []
    for i, (code, name, total, rank, meets) in enumerate(units):
        k1 = total - 90.0
        rows.append(
            {
                "unit": code,
                "name": name,
                "group": groups[i] if groups else None,
                "total": total,
                "rank": rank,
                "rank_bonus": 0.0,
                "vetoed": any(u == code and by_code[c].kind == "veto" for u, c, _ in outcomes),
                "L1": 30.0,
                "P1": 30.0 if meets else 20.0,
                "R1": 30.0,
                "J1": 10.0 if meets else 0.0,
                "K1": k1 if meets else k1 + 20.0,
                "meets_standard": meets,
                "p1_met": meets,
            }
        )
    schema: dict[str, Any] = {
        "unit": pl.Utf8,
        "name": pl.Utf8,
        "group": pl.Utf8,
        "total": pl.Float64,
        "rank": pl.Int64,
        "rank_bonus": pl.Float64,
        "vetoed": pl.Boolean,
        **{c: pl.Float64 for c in ITEMS},
        **{f: pl.Boolean for f in FLAGS},
    }
    table = pl.DataFrame(rows, schema=schema)
    out_rows = []
    for unit, code, fen in outcomes:
        o = by_code[code]
        out_rows.append(
            {
                "unit": unit,
                "code": code,
                "label": o.label,
                "kind": o.kind,
                "amount_fen": fen,
                "payee": o.payee if fen is not None else None,
                "funder": o.funder if fen is not None else None,
            }
        )
    return ScoreResult(
        rulebook=rb,
        period=Period.parse(period),
        table=table,
        item_codes=list(ITEMS),
        adjustment_codes=[],
        flag_codes=list(FLAGS),
        outcomes=pl.DataFrame(out_rows, schema=OUTCOME_SCHEMA),
    )


MONTH_UNITS = [
    ("C01", "东风社区", 98.5, 1, True),
    ("C02", "新华社区", 97.265, 2, True),  # 97.265 → 97.27 (half-up)
    ("C03", "红旗社区", 95.0, 3, True),
    ("C04", "光明社区", 90.0, 4, True),
    ("C05", "向阳社区", 80.0, 5, False),
    ("C06", "和平社区", 70.0, 6, False),
]


def month_result() -> ScoreResult:
    return make_result(
        "2022-03",
        MONTH_UNITS,
        [
            ("C01", "commended", None),
            ("C02", "commended", None),
            ("C03", "commended", None),
            ("C05", "criticised", None),
            ("C06", "criticised", None),
        ],
    )


def quarter_result() -> ScoreResult:
    # C01 and C02 tie for first: each gets the first rank's reward
    units = [
        ("C01", "东风社区", 290.0, 1, True),
        ("C02", "新华社区", 290.0, 1, True),
        ("C03", "红旗社区", 280.0, 3, True),
        ("C04", "光明社区", 250.0, 4, False),
    ]
    return make_result(
        "2022Q1",
        units,
        [
            ("C01", "reward", 200_000),
            ("C02", "reward", 200_000),
            ("C03", "reward", 100_000),
            ("C04", "quarter_criticised", None),
            ("C04", "last_place_report", None),
        ],
    )


def section(notice: Notice, name: str) -> list[Any]:
    matches = [s for s in notice.sections if s.name == name]
    assert len(matches) == 1, [s.heading for s in notice.sections]
    return matches[0].blocks


# ---------------------------------------------------------------- helpers


def test_helpers() -> None:
    assert [chinese_ordinal(n) for n in (1, 2, 6, 10, 11, 20, 23)] == [
        "一",
        "二",
        "六",
        "十",
        "十一",
        "二十",
        "二十三",
    ]
    assert date_zh(DATE) == "2022年4月5日"
    assert yuan(200_000) == "2,000.00元"
    assert yuan(123_456_789) == "1,234,567.89元"
    assert yuan(5) == "0.05元"
    assert yuan(-150) == "-1.50元"


# ---------------------------------------------------------------- content


def test_month_notice_content() -> None:
    n = build_notice(month_result(), date=DATE)
    assert n.title == "关于2022年3月社区人口和计划生育工作考核情况的通报"
    assert n.addressee == "各社区居委会："
    assert "社区人口和计划生育工作月度考核" in n.preamble
    assert "计划生育工作方案6" in n.preamble
    assert n.issuer == "街道办事处"
    assert n.date_text == "2022年4月5日"
    assert rulebook().sha256[:12] in n.footer
    assert "2022.1" in n.footer
    assert rulebook().sha256 not in n.footer  # only the first 12 hex digits

    # a month has no reward, veto or report: three sections, numbered consecutively
    assert [s.heading for s in n.sections] == ["一、考核排名", "二、通报表扬", "三、通报批评"]

    (table,) = section(n, "考核排名")
    assert isinstance(table, NoticeTable)
    assert table.headers == [
        "名次",
        "社区",
        "总分",
        "达标",
        "孕情掌握率达标",
        "长效节育及时率",
        "六个月内孕情掌握率",
        "月月清出生平台上报率",
        "依法行政",
        "重点工作",
    ]
    assert [r[:5] for r in table.rows[:2]] == [
        ["1", "东风社区", "98.50", "是", "是"],
        ["2", "新华社区", "97.27", "是", "是"],
    ]
    assert table.rows[4][:4] == ["5", "向阳社区", "80.00", "否"]
    assert len(table.rows) == len(MONTH_UNITS)

    (praise,) = section(n, "通报表扬")
    assert praise == "对以下社区予以通报表扬：东风社区、新华社区、红旗社区。"
    (blame,) = section(n, "通报批评")
    assert "向阳社区" in blame and "和平社区" in blame
    assert "东风社区" not in blame and "光明社区" not in blame
    assert blame.startswith("对以下社区予以通报批评：")


def test_quarter_notice_rewards_and_numbering() -> None:
    n = build_notice(quarter_result(), issuer="某某街道办事处", date=DATE)
    assert n.title == "关于2022年第1季度社区人口和计划生育工作考核情况的通报"
    assert n.issuer == "某某街道办事处"
    # no commendation in a quarter: 通报批评 becomes 二, 奖励 三, 其他 四
    assert [s.heading for s in n.sections] == [
        "一、考核排名",
        "二、通报批评",
        "三、奖励",
        "四、其他",
    ]
    table, sentence = section(n, "奖励")
    assert isinstance(table, NoticeTable)
    assert table.rows == [
        ["1", "东风社区", "季度考核奖励", "2,000.00元"],
        ["1", "新华社区", "季度考核奖励", "2,000.00元"],
        ["3", "红旗社区", "季度考核奖励", "1,000.00元"],
        ["合计", "", "", "5,000.00元"],
    ]
    assert sentence == "以上奖励共计5,000.00元，由街道列支。"
    (blame,) = section(n, "通报批评")
    assert blame == "对以下社区予以通报批评并限期整改：光明社区（第4名）。"
    (other,) = section(n, "其他")
    assert other == "社区书记、主任向街道党工委作检讨：光明社区。"


def test_year_veto_section_and_names() -> None:
    units = [("C01", "东风社区", 1100.0, 1, True), ("C02", "新华社区", 1000.0, 2, True)]
    result = make_result("2022", units, [("C02", "annual_veto", None)])
    n = build_notice(result, units_names={"C02": "新华路社区"}, date=DATE)
    assert n.title.startswith("关于2022年社区人口和计划生育工作")
    assert [s.heading for s in n.sections] == ["一、考核排名", "二、一票否决"]
    (veto,) = section(n, "一票否决")
    assert veto == "以下社区实行一票否决：新华路社区。"
    (table,) = section(n, "考核排名")
    assert [r[1] for r in table.rows] == ["东风社区", "新华路社区"]


def test_notes_explain_vetoed_and_placed_units() -> None:
    units = [
        ("C01", "东风社区", 98.0, 1, True),
        ("C02", "新华社区", 99.0, 2, True),  # forced into the last places (complaint)
        ("C03", "红旗社区", 100.0, 3, True),  # vetoed
    ]
    result = make_result("2022", units, [("C03", "annual_veto", None)])
    result.placed = ["C02"]
    (table,) = section(build_notice(result, date=DATE), "考核排名")
    assert table.headers[-1] == "备注"
    assert [r[-1] for r in table.rows] == [
        "",
        "群众投诉、媒体曝光属实，直接列入倒数3名",
        "一票否决",
    ]
    # without either, no 备注 column
    (table,) = section(build_notice(month_result(), date=DATE), "考核排名")
    assert "备注" not in table.headers


def test_groups_each_get_a_table() -> None:
    units = [
        ("C01", "东风社区", 90.0, 1, True),
        ("C02", "新华社区", 80.0, 2, True),
        ("D01", "北城社区", 85.0, 1, True),
    ]
    result = make_result("2022-03", units, groups=["S1", "S1", "S2"])
    n = build_notice(result, units_names={"S1": "东城街道", "S2": "西城街道"}, date=DATE)
    assert [s.heading for s in n.sections] == ["一、考核排名"]
    tables = section(n, "考核排名")
    assert [t.caption for t in tables] == ["（一）东城街道", "（二）西城街道"]
    assert [[r[1] for r in t.rows] for t in tables] == [["东风社区", "新华社区"], ["北城社区"]]


def test_default_date_is_today() -> None:
    assert build_notice(month_result()).date == datetime.date.today()


# ---------------------------------------------------------------- DOCX


def docx_blocks(path: Path) -> list[str | list[list[str]]]:
    """Body paragraphs (text) and tables (cell texts) in document order."""
    doc = Document(str(path))
    out: list[str | list[list[str]]] = []
    for child in doc.element.body.iterchildren():
        if child.tag == qn("w:p"):
            out.append(Paragraph(child, doc).text)
        elif child.tag == qn("w:tbl"):
            t = Table(child, doc)
            out.append([[c.text for c in row.cells] for row in t.rows])
    return out


def test_docx_month(tmp_path: Path) -> None:
    path = tmp_path / "out" / "notice.docx"
    write_notice_docx(build_notice(month_result(), date=DATE), path)
    blocks = docx_blocks(path)
    texts = [b for b in blocks if isinstance(b, str)]
    assert texts[0] == "关于2022年3月社区人口和计划生育工作考核情况的通报"
    assert "各社区居委会：" in texts
    headings = [t for t in texts if t[:2] in {"一、", "二、", "三、", "四、", "五、", "六、"}]
    assert headings == ["一、考核排名", "二、通报表扬", "三、通报批评"]

    # the units under each heading
    i = texts.index("二、通报表扬")
    assert texts[i + 1] == "对以下社区予以通报表扬：东风社区、新华社区、红旗社区。"
    j = texts.index("三、通报批评")
    assert "向阳社区" in texts[j + 1] and "东风社区" not in texts[j + 1]

    tables = [b for b in blocks if isinstance(b, list)]
    assert len(tables) == 1
    assert tables[0][0][:4] == ["名次", "社区", "总分", "达标"]
    assert tables[0][2][:3] == ["2", "新华社区", "97.27"]
    assert "街道办事处" in texts and "2022年4月5日" in texts
    assert any(rulebook().sha256[:12] in t for t in texts)

    doc = Document(str(path))
    title = doc.paragraphs[0]
    assert title.alignment is not None and int(title.alignment) == 1  # centre
    assert all(r.font.bold for r in title.runs)
    assert doc.tables[0].style is not None and doc.tables[0].style.name == "Table Grid"
    rpr = doc.styles["Normal"].element.rPr
    assert rpr is not None
    rfonts = rpr.find(qn("w:rFonts"))
    assert rfonts is not None and rfonts.get(qn("w:eastAsia")) == "仿宋"
    run_rpr = title.runs[0].element.rPr
    assert run_rpr is not None
    run_fonts = run_rpr.find(qn("w:rFonts"))
    assert run_fonts is not None and run_fonts.get(qn("w:eastAsia")) == "宋体"


def test_docx_quarter_rewards(tmp_path: Path) -> None:
    path = tmp_path / "notice.docx"
    write_notice_docx(build_notice(quarter_result(), date=DATE), path)
    blocks = docx_blocks(path)
    texts = [b for b in blocks if isinstance(b, str)]
    headings = [t for t in texts if t[:2] in {"一、", "二、", "三、", "四、", "五、", "六、"}]
    assert headings == ["一、考核排名", "二、通报批评", "三、奖励", "四、其他"]
    tables = [b for b in blocks if isinstance(b, list)]
    reward = tables[1]
    assert reward[0] == ["名次", "社区", "奖励项目", "奖励金额"]
    assert [r[3] for r in reward[1:]] == ["2,000.00元", "2,000.00元", "1,000.00元", "5,000.00元"]


# ---------------------------------------------------------------- Markdown


def test_markdown(tmp_path: Path) -> None:
    n = build_notice(quarter_result(), date=DATE)
    text = render_notice_md(n)
    lines = text.splitlines()
    assert lines[0] == "# 关于2022年第1季度社区人口和计划生育工作考核情况的通报"
    headings = [ln for ln in lines if ln.startswith("## ")]
    assert headings == ["## 一、考核排名", "## 二、通报批评", "## 三、奖励", "## 四、其他"]
    assert "| 名次 | 社区 | 奖励项目 | 奖励金额 |" in lines
    assert "| 3 | 红旗社区 | 季度考核奖励 | 1,000.00元 |" in lines
    assert "| 合计 |  |  | 5,000.00元 |" in lines
    # every table row has as many cells as its header
    rank_header = next(ln for ln in lines if ln.startswith("| 名次 | 社区 | 总分"))
    i = lines.index(rank_header)
    assert lines[i + 1].count("|") == rank_header.count("|")
    assert lines[i + 2].startswith("| 1 | 东风社区 | 290.00 | 是 |")
    praise_at = lines.index("## 二、通报批评")
    assert lines[praise_at + 2] == "对以下社区予以通报批评并限期整改：光明社区（第4名）。"
    assert "2022年4月5日" in lines
    assert rulebook().sha256[:12] in text

    path = tmp_path / "notice.md"
    write_notice_md(n, path)
    assert path.read_text(encoding="utf-8") == text


def test_markdown_escapes_pipes() -> None:
    n = build_notice(month_result(), units_names={"C01": "东风|社区"}, date=DATE)
    text = render_notice_md(n)
    assert "| 1 | 东风\\|社区 | 98.50 |" in text


@pytest.mark.parametrize("period", ["2022-03", "2022Q1", "2022"])
def test_no_outcomes_only_ranking(period: str) -> None:
    result = make_result(period, MONTH_UNITS[:2])
    n = build_notice(result, date=DATE)
    assert [s.heading for s in n.sections] == ["一、考核排名"]
    assert "## 二、" not in render_notice_md(n)
