"""The safe formula language of rulebooks.

Formulas look like Excel formulas a township clerk already writes::

    1000 * (unplanned_one_boy + unplanned_multi) / population
    if(population = 0, 0, 1000 * unplanned / population)
    over(slogan_target * share, slogans)

Grammar (precedence from low to high)::

    expr    := or
    or      := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | cmp
    cmp     := sum (('<' | '<=' | '>' | '>=' | '=' | '==' | '!=' | '<>') sum)?
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := '-' unary | '+' unary | atom
    atom    := NUMBER | NAME | NAME '(' args ')' | '(' expr ')'

The text is tokenised and parsed into a small AST (the dataclasses below); it
is never executed.  Both evaluators (the vectorised Polars compiler and the
per-unit reference interpreter) walk the same AST.  Full-width punctuation
（），×÷ is accepted as typed on a Chinese keyboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Unary:
    op: str  # '-' or 'not'
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / < <= > >= = != and or
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


Node = Num | Name | Unary | Binary | Call

#: functions: name -> (min args, max args or None, result type, description)
FUNCTIONS: dict[str, tuple[int, int | None, str, str]] = {
    "min": (2, None, "num", "smallest of the arguments"),
    "max": (2, None, "num", "largest of the arguments"),
    "abs": (1, 1, "num", "absolute value"),
    "if": (3, 3, "num", "if(condition, value if true, value if false)"),
    "ratio": (
        2,
        2,
        "num",
        "a / b; when b = 0 the zero-denominator convention applies (met: 1) [I1]",
    ),
    "pct": (
        2,
        2,
        "num",
        "100 · a / b; when b = 0 the zero-denominator convention applies (met: 100) [I1]",
    ),
    "min1": (1, 1, "num", "min(x, 1)"),
    "over": (2, 2, "num", "max(a − b, 0): how far a exceeds b"),
    "floor0": (1, 1, "num", "max(x, 0)"),
    "clamp": (3, 3, "num", "clamp(x, low, high)"),
}

#: built-in names available in every formula
BUILTINS: dict[str, str] = {
    "share": "cumulative target share at the assessed period (4:3:3 → 0.4, 0.7, 1.0)",
}

COMPARISONS = ("<", "<=", ">", ">=", "=", "!=")
ARITHMETIC = ("+", "-", "*", "/")


class ExprError(ValueError):
    """A formula is malformed; ``pos`` is the 1-based character position."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        self.message = message
        self.pos = pos
        super().__init__(f"{message} (at character {pos})" if pos is not None else message)


# ---------------------------------------------------------------- tokens

_FULLWIDTH = str.maketrans(
    {"（": "(", "）": ")", "，": ",", "×": "*", "÷": "/", "－": "-", "＋": "+", "＝": "="}
)

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|<>|[-+*/(),<>=]))"
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, name, op, end
    text: str
    pos: int


def tokenize(text: str) -> Iterator[_Tok]:
    s = text.translate(_FULLWIDTH)
    i = 0
    n = len(s)
    while True:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            yield _Tok("end", "", i + 1)
            return
        m = _TOKEN.match(s, i)
        if not m or m.end() == i:
            raise ExprError(f"unexpected character '{s[i]}'", i + 1)
        kind = m.lastgroup or "op"
        tok = m.group(kind)
        start = m.start(kind)
        if kind == "op":
            tok = {"==": "=", "<>": "!="}.get(tok, tok)
        yield _Tok(kind, tok, start + 1)
        i = m.end()


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = list(tokenize(text))
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        if self.tok.text != text or self.tok.kind != "op":
            raise ExprError(f"expected '{text}'", self.tok.pos)
        self.take()

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text == word

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("empty formula", 1)
        node = self.or_()
        if self.tok.kind != "end":
            raise ExprError(f"unexpected '{self.tok.text}'", self.tok.pos)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.is_word("or"):
            self.take()
            node = Binary("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.is_word("and"):
            self.take()
            node = Binary("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.is_word("not"):
            self.take()
            return Unary("not", self.not_())
        return self.cmp()

    def cmp(self) -> Node:
        node = self.sum()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            op = self.take().text
            node = Binary(op, node, self.sum())
            if self.tok.kind == "op" and self.tok.text in COMPARISONS:
                raise ExprError("chained comparisons are not allowed; use 'and'", self.tok.pos)
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take().text
            node = Binary(op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.take().text
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in ("-", "+"):
            op = self.take().text
            operand = self.unary()
            if op == "+":
                return operand
            if isinstance(operand, Num):
                return Num(-operand.value)
            return Unary("-", operand)
        return self.atom()

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.take()
            return Num(float(t.text))
        if t.kind == "name":
            if t.text in ("and", "or", "not"):
                raise ExprError(f"unexpected '{t.text}'", t.pos)
            self.take()
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(t)
            return Name(t.text)
        if t.kind == "op" and t.text == "(":
            self.take()
            node = self.or_()
            self.expect(")")
            return node
        if t.kind == "end":
            raise ExprError("formula ends too early", t.pos)
        raise ExprError(f"unexpected '{t.text}'", t.pos)

    def call(self, name: _Tok) -> Node:
        if name.text not in FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise ExprError(f"unknown function '{name.text}' (known: {known})", name.pos)
        self.expect("(")
        args: list[Node] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            args.append(self.or_())
            while self.tok.kind == "op" and self.tok.text == ",":
                self.take()
                args.append(self.or_())
        self.expect(")")
        lo, hi, _, _ = FUNCTIONS[name.text]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo}–{hi}"
            raise ExprError(f"{name.text}() takes {want} arguments, got {len(args)}", name.pos)
        return Call(name.text, tuple(args))


def parse(text: str | float | int) -> Node:
    """Parse a formula into an AST (numbers are accepted as constant formulas)."""
    if isinstance(text, bool):
        raise ExprError("a formula must be text or a number")
    if isinstance(text, int | float):
        return Num(float(text))
    return _Parser(str(text)).parse()


# ---------------------------------------------------------------- checks


def names(node: Node) -> set[str]:
    """Every name a formula refers to."""
    out: set[str] = set()

    def walk(n: Node) -> None:
        if isinstance(n, Name):
            out.add(n.name)
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)

    walk(node)
    return out


def check_types(node: Node, want: str = "num", bools: frozenset[str] = frozenset()) -> None:
    """Check numbers and conditions are not mixed up (e.g. ``if(a + 1, …)``).

    ``bools`` are names that hold conditions (flags such as ``meets_standard``)."""
    got = _type(node, bools)
    if got != want:
        what = "a condition (true/false)" if want == "bool" else "a number"
        raise ExprError(f"expected {what}, got {'a condition' if got == 'bool' else 'a number'}")


def _type(n: Node, bools: frozenset[str]) -> str:
    if isinstance(n, Num):
        return "num"
    if isinstance(n, Name):
        return "bool" if n.name in bools else "num"
    if isinstance(n, Unary):
        check_types(n.operand, "bool" if n.op == "not" else "num", bools)
        return "bool" if n.op == "not" else "num"
    if isinstance(n, Binary):
        if n.op in ("and", "or"):
            check_types(n.left, "bool", bools)
            check_types(n.right, "bool", bools)
            return "bool"
        check_types(n.left, "num", bools)
        check_types(n.right, "num", bools)
        return "bool" if n.op in COMPARISONS else "num"
    if n.func == "if":
        check_types(n.args[0], "bool", bools)
        check_types(n.args[1], "num", bools)
        check_types(n.args[2], "num", bools)
        return "num"
    for a in n.args:
        check_types(a, "num", bools)
    return "num"


def substitute(node: Node, mapping: Callable[[str], Node | None]) -> Node:
    """Replace names by other nodes (used to inline parameters)."""
    if isinstance(node, Name):
        rep = mapping(node.name)
        return node if rep is None else rep
    if isinstance(node, Unary):
        return Unary(node.op, substitute(node.operand, mapping))
    if isinstance(node, Binary):
        return Binary(node.op, substitute(node.left, mapping), substitute(node.right, mapping))
    if isinstance(node, Call):
        return Call(node.func, tuple(substitute(a, mapping) for a in node.args))
    return node


def to_text(node: Node) -> str:
    """Render an AST back to formula text (fully parenthesised where needed)."""
    if isinstance(node, Num):
        v = node.value
        return str(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Unary):
        return f"not {to_text(node.operand)}" if node.op == "not" else f"-({to_text(node.operand)})"
    if isinstance(node, Binary):
        op = "=" if node.op == "=" else node.op
        return f"({to_text(node.left)} {op} {to_text(node.right)})"
    return f"{node.func}({', '.join(to_text(a) for a in node.args)})"
