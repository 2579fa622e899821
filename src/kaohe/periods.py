"""Periods (考核期): years, tertials (T1–T3, the plan's 4-month "季度"), quarters, months.

Text forms: ``2022`` (year), ``2022T1``..``2022T3`` (Jan–Apr, May–Aug, Sep–Dec),
``2022Q1``..``2022Q4``, ``2022-01``..``2022-12``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from kaohe.errors import KaoheError


class PeriodKind(StrEnum):
    YEAR = "year"
    TERTIAL = "tertial"
    QUARTER = "quarter"
    MONTH = "month"


#: number of sub-periods of each kind in a year
PER_YEAR = {PeriodKind.YEAR: 1, PeriodKind.TERTIAL: 3, PeriodKind.QUARTER: 4, PeriodKind.MONTH: 12}
#: months covered by one sub-period of each kind
MONTHS = {PeriodKind.YEAR: 12, PeriodKind.TERTIAL: 4, PeriodKind.QUARTER: 3, PeriodKind.MONTH: 1}

_RE = re.compile(r"^(?P<y>\d{4})(?:(?P<t>T[1-3])|(?P<q>Q[1-4])|-(?P<m>0[1-9]|1[0-2]))?$")

LABELS_ZH = {
    PeriodKind.YEAR: "{y}年",
    PeriodKind.TERTIAL: "{y}年第{i}考核期",
    PeriodKind.QUARTER: "{y}年第{i}季度",
    PeriodKind.MONTH: "{y}年{i}月",
}


class PeriodError(KaoheError, ValueError):
    """Not a period, or not one the rulebook knows."""


@dataclass(frozen=True, order=True)
class Period:
    year: int
    kind: PeriodKind
    index: int = 1  # 1-based position within the year (1 for a year)

    @classmethod
    def parse(cls, text: object) -> Period:
        s = str(text).strip() if text is not None else ""
        # spreadsheets turn 2022 into 2022.0
        if re.fullmatch(r"\d{4}\.0+", s):
            s = s.split(".")[0]
        m = _RE.match(s)
        if not m:
            raise PeriodError(
                f"'{s}' is not a period (expected YYYY, YYYYT1–T3, YYYYQ1–Q4 or YYYY-MM)"
            )
        y = int(m.group("y"))
        if m.group("t"):
            return cls(y, PeriodKind.TERTIAL, int(m.group("t")[1]))
        if m.group("q"):
            return cls(y, PeriodKind.QUARTER, int(m.group("q")[1]))
        if m.group("m"):
            return cls(y, PeriodKind.MONTH, int(m.group("m")))
        return cls(y, PeriodKind.YEAR, 1)

    def __str__(self) -> str:
        if self.kind is PeriodKind.YEAR:
            return f"{self.year}"
        if self.kind is PeriodKind.TERTIAL:
            return f"{self.year}T{self.index}"
        if self.kind is PeriodKind.QUARTER:
            return f"{self.year}Q{self.index}"
        return f"{self.year}-{self.index:02d}"

    @property
    def label_zh(self) -> str:
        return LABELS_ZH[self.kind].format(y=self.year, i=self.index)

    @property
    def first_month(self) -> int:
        return (self.index - 1) * MONTHS[self.kind] + 1

    @property
    def last_month(self) -> int:
        return self.index * MONTHS[self.kind]

    def contains(self, other: Period) -> bool:
        return (
            self.year == other.year
            and self.first_month <= other.first_month
            and other.last_month <= self.last_month
        )

    def subperiods(self, kind: PeriodKind) -> list[Period]:
        """The periods of ``kind`` that make up this one, in order."""
        if MONTHS[kind] > MONTHS[self.kind] or MONTHS[self.kind] % MONTHS[kind]:
            raise PeriodError(f"a {self.kind} is not made of {kind}s")
        n = MONTHS[self.kind] // MONTHS[kind]
        start = (self.first_month - 1) // MONTHS[kind] + 1
        return [Period(self.year, kind, start + i) for i in range(n)]

    def year_period(self) -> Period:
        return Period(self.year, PeriodKind.YEAR, 1)


def parse_period(text: object) -> Period:
    return Period.parse(text)
