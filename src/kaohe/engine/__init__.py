"""The scoring engine: compile rulebooks to Polars, evaluate, rank, explain."""

from kaohe.engine.evaluate import plan_period, score
from kaohe.engine.result import ScoreResult

__all__ = ["ScoreResult", "plan_period", "score"]
