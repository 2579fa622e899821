"""The ranking notice (通报) of a :class:`~kaohe.engine.result.ScoreResult`.

:func:`build_notice` turns a result into a :class:`Notice` — plain content
(title, addressee, preamble, numbered sections of paragraphs and tables,
issuer, date, footer) — which :func:`write_notice_docx` and
:func:`write_notice_md` / :func:`render_notice_md` lay out as a Word document
or Markdown.  Sections:

- 考核排名: one table per rank group — 名次, unit, 总分, every flag (是/否),
  every item score (and adjustment, rank bonus when present);
- 通报表扬 / 通报批评 / 奖励 / 一票否决 / 其他: the outcomes of kind
  commendation / criticism / reward / veto / report and note.

Empty sections are left out and the Chinese ordinals (一、二、三…) are given
consecutively to the sections that remain.  Scores are rounded half-up to two
decimals (:func:`kaohe.numbers.fmt2`); money is exact (integer fen).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kaohe.engine.result import ScoreResult
from kaohe.numbers import fmt2

DEFAULT_ISSUER = "街道办事处"
DEFAULT_ADDRESSEE = "各社区居委会"
DEFAULT_UNIT_HEADER = "社区"

#: the outcome kinds of each section, in document order (the ranking comes first)
OUTCOME_SECTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("通报表扬", ("commendation",)),
    ("通报批评", ("criticism",)),
    ("奖励", ("reward",)),
    ("一票否决", ("veto",)),
    ("其他", ("report", "note")),
]
RANKING_HEADING = "考核排名"

_DIGITS = "零一二三四五六七八九"

YES, NO, MISSING = "是", "否", "—"


def chinese_ordinal(n: int) -> str:
    """1 → 一, 10 → 十, 12 → 十二, 20 → 二十, 99 → 九十九 (1 ≤ n ≤ 99)."""
    if not 1 <= n <= 99:
        raise ValueError(f"ordinal out of range: {n}")
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _DIGITS[ones]
    head = "" if tens == 1 else _DIGITS[tens]
    return head + "十" + (_DIGITS[ones] if ones else "")


def date_zh(d: datetime.date) -> str:
    """2022-04-05 → 2022年4月5日."""
    return f"{d.year}年{d.month}月{d.day}日"


def yuan(fen: int) -> str:
    """Integer fen → ``2,000.00元`` (exact, no floating point)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}元"


# ---------------------------------------------------------------- content


@dataclass
class NoticeTable:
    """A table of text cells; ``numeric[j]`` marks columns to align right."""

    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None
    numeric: list[bool] = field(default_factory=list)


#: a block of a section: a paragraph of text or a table
Block = str | NoticeTable


@dataclass
class NoticeSection:
    """A numbered section: ``heading`` is the full heading, e.g. ``二、通报表扬``."""

    ordinal: str
    name: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return f"{self.ordinal}、{self.name}"


@dataclass
class Notice:
    title: str
    addressee: str
    preamble: str
    sections: list[NoticeSection]
    issuer: str
    date: datetime.date
    footer: str

    @property
    def date_text(self) -> str:
        return date_zh(self.date)


def notice_title(result: ScoreResult) -> str:
    """关于{period}{assessment}情况的通报; a 月度/季度/年度 in the rulebook's name is
    dropped since the period already says which (…月度考核 → …考核)."""
    name = re.sub(r"(月度|季度|年度)考核", "考核", result.rulebook.model.name)
    return f"关于{result.period.label_zh}{name}情况的通报"


def build_notice(
    result: ScoreResult,
    units_names: dict[str, str] | None = None,
    issuer: str | None = None,
    date: datetime.date | None = None,
    *,
    addressee: str | None = None,
    unit_header: str | None = None,
) -> Notice:
    """The notice of ``result``.

    ``units_names`` maps unit (and group) codes to names; without it the result's
    ``name`` column is used, then the code.  ``issuer`` defaults to 街道办事处,
    ``date`` to today, ``addressee`` to 各社区居委会 and ``unit_header`` (what
    the units are called in tables and sentences) to 社区.
    """
    rb = result.rulebook
    m = rb.model
    t = result.table
    word = unit_header or DEFAULT_UNIT_HEADER
    names = _names(t, units_names or {})

    def name_of(unit: str) -> str:
        return names.get(unit, unit)

    source = f"（{m.source}）" if m.source else ""
    preamble = (
        f"根据《{m.name}》{source}，对{t.height}个{word}{result.period.label_zh}"
        f"的工作进行了考核。现将考核情况通报如下："
    )
    if t.height == 0:
        preamble = f"根据《{m.name}》{source}，现将{result.period.label_zh}考核情况通报如下："

    contents: list[tuple[str, list[Block]]] = [
        (RANKING_HEADING, _ranking_blocks(result, names, word))
    ]
    outcomes = result.outcomes
    ranks = _ranks(t)
    for heading, kinds in OUTCOME_SECTIONS:
        rows = outcomes.filter(pl.col("kind").is_in(list(kinds))).to_dicts()
        if kinds == ("reward",):
            contents.append((heading, _reward_blocks(result, rows, name_of, ranks, word)))
        else:
            contents.append((heading, _list_blocks(kinds, rows, name_of, ranks, word)))

    # empty sections are left out; the others are numbered 一、二、三… in order
    filled = [(h, b) for h, b in contents if b]
    sections = [
        NoticeSection(chinese_ordinal(i), heading, blocks)
        for i, (heading, blocks) in enumerate(filled, start=1)
    ]
    footer = (
        f"考核方案：{m.name}（{m.code}），版本 {m.version}，"
        f"SHA-256 {rb.sha256[:12]}；分数按四舍五入保留两位小数。"
    )
    return Notice(
        title=notice_title(result),
        addressee=(addressee or DEFAULT_ADDRESSEE).rstrip("：:") + "：",
        preamble=preamble,
        sections=sections,
        issuer=issuer or DEFAULT_ISSUER,
        date=date or datetime.date.today(),
        footer=footer,
    )


def _names(t: pl.DataFrame, given: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if "name" in t.columns:
        for u, n in zip(t["unit"].to_list(), t["name"].to_list(), strict=True):
            if n:
                out[str(u)] = str(n)
    out.update({k: v for k, v in given.items() if v})
    return out


def _ranks(t: pl.DataFrame) -> dict[str, int | None]:
    if "rank" not in t.columns:
        return {}
    return dict(zip(t["unit"].to_list(), t["rank"].to_list(), strict=True))


def _bool_text(v: object) -> str:
    if v is None:
        return MISSING
    return YES if v else NO


def _num_text(v: Any) -> str:
    return MISSING if v is None else fmt2(float(v))


def _ranking_blocks(result: ScoreResult, names: dict[str, str], word: str) -> list[Block]:
    t = result.table
    if t.height == 0:
        return []
    m = result.rulebook.model
    item_names = {i.code: i.name for i in m.items}
    adj_names = {a.code: a.label for a in m.adjustments}
    flag_codes = [c for c in result.flag_codes if c in t.columns]
    item_codes = [c for c in result.item_codes if c in t.columns]
    adj_codes = [c for c in result.adjustment_codes if c in t.columns]
    show_bonus = "rank_bonus" in t.columns and bool(t["rank_bonus"].fill_null(0.0).abs().sum() > 0)
    notes = _rank_notes(result)

    headers = ["名次", word, "总分"]
    numeric = [True, False, True]
    headers += [m.flags[c].label if c in m.flags else c for c in flag_codes]
    numeric += [False] * len(flag_codes)
    if show_bonus:
        headers.append("排名加分")
        numeric.append(True)
    headers += [item_names.get(c, c) for c in item_codes]
    headers += [adj_names.get(c, c) for c in adj_codes]
    numeric += [True] * (len(item_codes) + len(adj_codes))
    if notes:
        headers.append("备注")
        numeric.append(False)

    groups: list[Any] = (
        t["group"].unique(maintain_order=True).to_list() if "group" in t.columns else [None]
    )
    several = len(groups) > 1
    blocks: list[Block] = []
    for gi, g in enumerate(groups, start=1):
        part = t if not several else t.filter(pl.col("group").eq_missing(g))
        rows: list[list[str]] = []
        for r in part.iter_rows(named=True):
            rank = r.get("rank")
            row = [
                MISSING if rank is None else str(rank),
                names.get(r["unit"], r["unit"]),
                _num_text(r.get("total")),
            ]
            row += [_bool_text(r.get(c)) for c in flag_codes]
            if show_bonus:
                row.append(_num_text(r.get("rank_bonus")))
            row += [_num_text(r.get(c)) for c in [*item_codes, *adj_codes]]
            if notes:
                row.append(notes.get(r["unit"], ""))
            rows.append(row)
        caption = None
        if several:
            gname = "其他" if g is None else names.get(str(g), str(g))
            caption = f"（{chinese_ordinal(gi)}）{gname}"
        blocks.append(NoticeTable(headers, rows, caption, numeric))
    return blocks


def _rank_notes(result: ScoreResult) -> dict[str, str]:
    """Why a unit's rank is not its total's: vetoed (一票否决) or forced into the last places."""
    t = result.table
    notes: dict[str, str] = {}
    placement = result.rulebook.model.ranking.placement
    for u in result.placed:
        notes[u] = placement.label if placement is not None else "直接列入倒数名次"
    if "vetoed" in t.columns:
        vetoes = result.outcomes.filter(pl.col("kind") == "veto")
        labels = dict(zip(vetoes["unit"].to_list(), vetoes["label"].to_list(), strict=True))
        for u, v in zip(t["unit"].to_list(), t["vetoed"].to_list(), strict=True):
            if v:
                notes[u] = labels.get(u) or "一票否决"
    return notes


def _by_label(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Outcome rows grouped by code (in order of first appearance), with the code's label."""
    groups: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for r in rows:
        key = str(r["code"])
        if key not in groups:
            groups[key] = (str(r["label"] or r["code"]), [])
        groups[key][1].append(r)
    return list(groups.values())


def _unique_units(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["unit"]) for r in rows))


def _list_blocks(
    kinds: tuple[str, ...],
    rows: list[dict[str, Any]],
    name_of: Callable[[str], str],
    ranks: dict[str, int | None],
    word: str,
) -> list[Block]:
    out: list[Block] = []
    for label, group in _by_label(rows):
        units = _unique_units(group)
        if kinds == ("commendation",):
            listed = "、".join(name_of(u) for u in units)
            out.append(f"对以下{word}予以{label}：{listed}。")
        elif kinds == ("criticism",):
            listed = "、".join(_with_rank(name_of(u), ranks.get(u)) for u in units)
            out.append(f"对以下{word}予以{label}：{listed}。")
        elif kinds == ("veto",):
            listed = "、".join(name_of(u) for u in units)
            out.append(f"以下{word}实行{label}：{listed}。")
        else:
            listed = "、".join(name_of(u) for u in units)
            out.append(f"{label}：{listed}。")
    return out


def _with_rank(name: str, rank: int | None) -> str:
    return name if rank is None else f"{name}（第{rank}名）"


def _reward_blocks(
    result: ScoreResult,
    rows: list[dict[str, Any]],
    name_of: Callable[[str], str],
    ranks: dict[str, int | None],
    word: str,
) -> list[Block]:
    m = result.rulebook.model
    if not rows:
        return []
    table_rows: list[list[str]] = []
    total = 0
    funders: list[str] = []
    for r in rows:
        fen = r.get("amount_fen")
        if fen is not None:
            total += int(fen)
        rank = ranks.get(str(r["unit"]))
        table_rows.append(
            [
                MISSING if rank is None else str(rank),
                name_of(str(r["unit"])),
                str(r["label"] or r["code"]),
                MISSING if fen is None else yuan(int(fen)),
            ]
        )
        f = r.get("funder")
        if f and f not in funders:
            funders.append(str(f))
    table_rows.append(["合计", "", "", yuan(total)])
    blocks: list[Block] = [
        NoticeTable(
            ["名次", word, "奖励项目", "奖励金额"], table_rows, None, [True, False, False, True]
        )
    ]
    sentence = f"以上奖励共计{yuan(total)}"
    if funders:
        sentence += "，由" + "、".join(m.funders.get(f, f) for f in funders) + "列支"
    blocks.append(sentence + "。")
    return blocks


# ---------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(table: NoticeTable) -> list[str]:
    lines: list[str] = []
    if table.caption:
        lines += [table.caption, ""]
    numeric = table.numeric or [False] * len(table.headers)
    lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return lines


def render_notice_md(notice: Notice) -> str:
    """The notice as Markdown: headings, paragraphs and pipe tables."""
    lines = [f"# {notice.title}", "", notice.addressee, "", notice.preamble, ""]
    for s in notice.sections:
        lines += [f"## {s.heading}", ""]
        for b in s.blocks:
            lines += _md_table(b) if isinstance(b, NoticeTable) else [b]
            lines.append("")
    lines += [notice.issuer, "", notice.date_text, "", "---", "", f"<small>{notice.footer}</small>"]
    return "\n".join(lines) + "\n"


def write_notice_md(notice: Notice, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_notice_md(notice), encoding="utf-8")


# ---------------------------------------------------------------- DOCX

BODY_FONT = "仿宋"
TITLE_FONT = "宋体"
HEADING_FONT = "黑体"
LATIN_FONT = "Times New Roman"


def _set_font(run_or_style: Any, east_asia: str, size: float | None, bold: bool | None) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt

    font = run_or_style.font
    font.name = LATIN_FONT
    if size is not None:
        font.size = Pt(size)
    if bold is not None:
        font.bold = bold
    # python-docx sets only the Latin fonts; Chinese text uses the East-Asian one
    rpr = run_or_style.element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), east_asia)


def write_notice_docx(notice: Notice, path: str | Path) -> None:
    """The notice as a Word document (A4, 仿宋 body, centred bold title, grid tables)."""
    from docx import Document
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt, RGBColor

    doc = Document()
    doc.core_properties.title = notice.title
    doc.core_properties.author = notice.issuer
    sec = doc.sections[0]
    sec.page_width, sec.page_height = Cm(21.0), Cm(29.7)
    sec.top_margin, sec.bottom_margin = Cm(3.7), Cm(3.5)
    sec.left_margin, sec.right_margin = Cm(2.8), Cm(2.6)

    text_width = int(sec.page_width - sec.left_margin - sec.right_margin)
    normal = doc.styles["Normal"]
    _set_font(normal, BODY_FONT, 16, None)
    normal.paragraph_format.line_spacing = Pt(28)
    normal.paragraph_format.space_after = Pt(0)

    def para(
        text: str,
        *,
        font: str = BODY_FONT,
        size: float = 16,
        bold: bool = False,
        align: Any = None,
        indent: bool = False,
    ) -> Any:
        p = doc.add_paragraph()
        if align is not None:
            p.alignment = align
        if indent:
            p.paragraph_format.first_line_indent = Pt(size * 2)
        _set_font(p.add_run(text), font, size, bold)
        return p

    title = para(notice.title, font=TITLE_FONT, size=22, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    title.paragraph_format.space_after = Pt(16)
    title.paragraph_format.line_spacing = Pt(36)
    para(notice.addressee)
    para(notice.preamble, indent=True)

    for s in notice.sections:
        para(s.heading, font=HEADING_FONT, indent=True)
        for b in s.blocks:
            if isinstance(b, NoticeTable):
                if b.caption:
                    para(b.caption, indent=True)
                _docx_table(doc, b, text_width, WD_TABLE_ALIGNMENT.CENTER, WD_ALIGN_PARAGRAPH, qn)
            else:
                para(b, indent=True)

    para("")
    para(notice.issuer, align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(notice.date_text, align=WD_ALIGN_PARAGRAPH.RIGHT)
    para("")
    foot = para(notice.footer, size=9)
    for run in foot.runs:
        run.font.color.rgb = RGBColor(0x59, 0x59, 0x59)

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(p))


def _display_len(text: str) -> int:
    """Width in half-em: a CJK (wide) character counts 2, others 1."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def column_weights(table: NoticeTable) -> list[float]:
    """Relative column widths from the longest cell (headers may wrap, so count half)."""
    out = []
    for j, h in enumerate(table.headers):
        longest = max([_display_len(r[j]) for r in table.rows] + [_display_len(h) / 2])
        out.append(min(max(longest, 4.0), 24.0))
    return out


def _docx_table(
    doc: Any, table: NoticeTable, text_width: int, center: Any, para_align: Any, qn: Any
) -> None:
    from docx.shared import Emu, Pt

    numeric = table.numeric or [False] * len(table.headers)
    tbl = doc.add_table(rows=1 + len(table.rows), cols=len(table.headers))
    tbl.style = "Table Grid"
    tbl.alignment = center
    tbl.autofit = False
    weights = column_weights(table)
    widths = [Emu(int(text_width * w / sum(weights))) for w in weights]
    for j, col in enumerate(tbl.columns):
        col.width = widths[j]
        for cell in col.cells:
            cell.width = widths[j]

    def fill(cell: Any, text: str, *, bold: bool, align: Any) -> None:
        p = cell.paragraphs[0]
        p.alignment = align
        p.paragraph_format.first_line_indent = Pt(0)
        p.paragraph_format.line_spacing = 1.0
        _set_font(p.add_run(text), BODY_FONT, 10.5, bold)

    header = tbl.rows[0]
    # repeat the header row on every page
    trpr = header._tr.get_or_add_trPr()
    mark = trpr.makeelement(qn("w:tblHeader"), {qn("w:val"): "true"})
    trpr.append(mark)
    for j, h in enumerate(table.headers):
        fill(header.cells[j], h, bold=True, align=para_align.CENTER)
    for i, row in enumerate(table.rows, start=1):
        cells = tbl.rows[i].cells
        for j, text in enumerate(row):
            align = para_align.RIGHT if numeric[j] else para_align.LEFT
            if text in (YES, NO, MISSING) or j == 0:
                align = para_align.CENTER
            fill(cells[j], text, bold=False, align=align)
