"""Error types shared by every layer.

Every error a user can cause names *where* (file, line or row, key or column)
and *why*, so a township clerk can fix the input without reading code.
"""

from __future__ import annotations


class KaoheError(Exception):
    """Base class for errors reported to users (CLI exit code 2)."""

    exit_code = 2


class RulebookError(KaoheError):
    """A rulebook file is invalid: names file, line and key."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.key:
            where.append(f"key '{self.key}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class RulebookErrors(KaoheError):
    """Several rulebook errors found in one pass (all are reported at once)."""

    def __init__(self, errors: list[RulebookError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class InputError(KaoheError):
    """A data or org-unit file is invalid: names file, row, column and reason.

    ``row`` is the 1-based row number as a spreadsheet shows it (the header is
    row 1), or the line number of a CSV file.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        sheet: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        self.sheet = sheet
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.sheet:
            where.append(f"sheet '{self.sheet}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class InputErrors(KaoheError):
    """Several input errors found in one pass."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class EvaluationError(KaoheError):
    """A rule could not be evaluated for some unit (e.g. division by zero in a formula)."""
