"""Chinese first: zh-CN is the source language of every UI string; English comes
from catalogs ``locales/*.json`` (``{"中文": "English"}``, one file per area).

Templates call ``_("登录")``; the language is the ``lang`` cookie, else the
user's setting, else zh."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
CST = dt.timezone(dt.timedelta(hours=8), "CST")


@lru_cache(maxsize=1)
def catalog() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((Path(__file__).parent / "locales").glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def translate(text: str, lang: str) -> str:
    if lang == "zh":
        return text
    return catalog().get(text, text)


def translator(lang: str) -> Callable[..., str]:
    def _(text: str, **kwargs: object) -> str:
        out = translate(text, lang)
        return out.format(**kwargs) if kwargs else out

    return _


def local_time(value: dt.datetime | None, lang: str = "zh") -> str:
    """A stored (naive UTC) time in China Standard Time: 2026年11月29日 13:05 / 2026-11-29 13:05."""
    if value is None:
        return ""
    t = value.replace(tzinfo=dt.UTC).astimezone(CST)
    if lang == "zh":
        return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}"
    return f"{t:%Y-%m-%d %H:%M}"


def local_date(value: dt.date | dt.datetime | None, lang: str = "zh") -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=dt.UTC).astimezone(CST).date()
    return f"{value.year}年{value.month}月{value.day}日" if lang == "zh" else value.isoformat()


def period_label(period: str, lang: str = "zh") -> str:
    """2022 → 2022年度, 2022T1 → 2022年第一期 … (English: the code itself)."""
    from kaohe.periods import parse_period

    if lang != "zh":
        return period
    try:
        return parse_period(period).label_zh
    except Exception:
        return period
