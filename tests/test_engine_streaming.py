"""Large frames are evaluated by Polars' streaming engine, small ones by the in-memory
engine (kaohe.engine.evaluate.STREAMING_FROM): both must give the same results for
every feature of the shipped rulebooks (flags, placement, vetoes, outcomes, rank
bonuses, year-to-date and summed periods)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kaohe.engine import evaluate, score
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import load_rulebook

FIXTURES = Path(__file__).parent / "fixtures"
CASES = [
    ("village-1000", "village-1000-example", p) for p in ("2022T1", "2022T2", "2022T3", "2022")
] + [
    ("community-monthly", "community-monthly-example", p)
    for p in ("2022-01", "2022-03", "2022-06", "2022Q1", "2022Q2", "2022")
]


@pytest.mark.parametrize(("rulebook", "example", "period"), CASES)
def test_streaming_and_in_memory_agree(
    rulebook: str, example: str, period: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rb = load_rulebook(rulebook)
    org = read_units(FIXTURES / example / "units.csv")
    ds = read_data(FIXTURES / example / "data.csv", rb, org)
    try:
        in_memory = score(rb, ds, period, org)
    except Exception as e:  # a period the example has no data for: both must refuse it
        monkeypatch.setattr(evaluate, "STREAMING_FROM", 0)
        with pytest.raises(type(e)):
            score(rb, ds, period, org)
        return
    monkeypatch.setattr(evaluate, "STREAMING_FROM", 0)  # every frame streamed
    streamed = score(rb, ds, period, org)
    assert streamed.table.equals(in_memory.table)
    assert streamed.outcomes.equals(in_memory.outcomes)
    assert streamed.placed == in_memory.placed
    if in_memory.steps is None:
        assert streamed.steps is None
    else:
        assert isinstance(streamed.steps, pl.DataFrame)
        assert streamed.steps.equals(in_memory.steps)
