"""Writers for score results: JSON and CSV (the XLSX report is in kaohe.io.xlsx_report).

Numbers are rounded half-up to 2 decimals here, on output only, with the
vectorised :func:`kaohe.numbers.round2_expr` (a million rows in well under a second).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from kaohe.engine.result import ScoreResult
from kaohe.numbers import round2_expr


def rounded_table(result: ScoreResult) -> pl.DataFrame:
    """The result table with every score rounded half-up to 2 decimals."""
    cols = ["total", "rank_bonus", *result.item_codes, *result.adjustment_codes]
    return result.table.with_columns(round2_expr(pl.col(c)).alias(c) for c in cols)


def result_records(result: ScoreResult) -> list[dict[str, Any]]:
    """The JSON contract's ``results`` list (adjustments: non-zero only)."""
    period = str(result.period)
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for o in result.outcomes.iter_rows(named=True):
        rec: dict[str, Any] = {"code": o["code"], "label": o["label"], "kind": o["kind"]}
        if o["amount_fen"] is not None:
            rec["amount"] = o["amount_fen"] / 100
            rec["payee"] = o["payee"]
            rec["funder"] = o["funder"]
        outcomes.setdefault(o["unit"], []).append(rec)
    out = []
    for row in rounded_table(result).iter_rows(named=True):
        record: dict[str, Any] = {
            "unit": row["unit"],
            "name": row["name"],
            "group": row["group"],
            "period": period,
            "total": row["total"],
            "rank": row["rank"],
            "items": {c: row[c] for c in result.item_codes},
            "adjustments": {c: row[c] for c in result.adjustment_codes if row[c]},
            "rank_bonus": row["rank_bonus"],
        }
        for flag in result.flag_codes:
            record[flag] = row[flag]
        record["vetoed"] = row["vetoed"]
        record["outcomes"] = outcomes.get(row["unit"], [])
        out.append(record)
    return out


def to_json_dict(result: ScoreResult) -> dict[str, Any]:
    return {
        "rulebook": result.rulebook.code,
        "period": str(result.period),
        "rulebook_sha256": result.rulebook.sha256,
        "results": result_records(result),
    }


def to_json(result: ScoreResult, explanations: dict[str, Any] | None = None) -> str:
    doc = to_json_dict(result)
    if explanations is not None:
        for rec in doc["results"]:
            rec["explanation"] = explanations.get(rec["unit"])
    return json.dumps(doc, ensure_ascii=False, indent=1)


def _csv_query(result: ScoreResult) -> pl.LazyFrame:
    # one select that rounds only the columns written (not the adjustments or the
    # rank bonus) and copies nothing else
    return result.table.lazy().select(
        "unit",
        "name",
        "group",
        round2_expr(pl.col("total")).alias("total"),
        "rank",
        *(round2_expr(pl.col(c)).alias(c) for c in result.item_codes),
        *result.flag_codes,
    )


def csv_frame(result: ScoreResult) -> pl.DataFrame:
    """The CSV contract: ``unit,name,group,total,rank,<item codes…>`` (then any flags)."""
    return _csv_query(result).collect()


def write_csv(result: ScoreResult, path: str | Path | None = None) -> str | None:
    """Write the CSV (to ``path``, or return it as text).

    A file is written by Polars' streaming sink: rounding and formatting in one pass,
    without the rounded frame in between (≈ 15 % faster at 1M units)."""
    # values are already the doubles nearest to 2-decimal numbers, so the shortest
    # representation prints them exactly (64.57, 8.0); float_precision=2 would print
    # 8.00 (different bytes) and is slower
    if path is None:
        return csv_frame(result).write_csv()
    _csv_query(result).sink_csv(path)
    return None
