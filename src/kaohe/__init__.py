"""kaohe (考核): target-management responsibility assessment as rules-as-code."""

__version__ = "0.1.0"
