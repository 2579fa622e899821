"""The safe formula language: parsing, errors, type checks."""

from __future__ import annotations

import pytest

from kaohe.rulebook import expr
from kaohe.rulebook.expr import Binary, Call, ExprError, Name, Num, Unary, parse


def test_precedence_and_associativity() -> None:
    assert parse("1 + 2 * 3") == Binary("+", Num(1), Binary("*", Num(2), Num(3)))
    assert parse("8 - 2 - 1") == Binary("-", Binary("-", Num(8), Num(2)), Num(1))
    assert parse("8 / 2 / 2") == Binary("/", Binary("/", Num(8), Num(2)), Num(2))
    assert parse("-x * 2") == Binary("*", Unary("-", Name("x")), Num(2))
    assert parse("a > 1 and not b = 2 or c < 0") == Binary(
        "or",
        Binary("and", Binary(">", Name("a"), Num(1)), Unary("not", Binary("=", Name("b"), Num(2)))),
        Binary("<", Name("c"), Num(0)),
    )


def test_functions_aliases_and_fullwidth() -> None:
    assert parse("if(p == 0, 0, x)") == Call(
        "if", (Binary("=", Name("p"), Num(0)), Num(0), Name("x"))
    )
    assert parse("a <> b") == Binary("!=", Name("a"), Name("b"))
    assert parse("（a＋b）×2÷4") == parse("(a+b)*2/4")
    assert parse("1.5e2") == Num(150.0) and parse(".5") == Num(0.5)
    assert expr.names(parse("over(slogan_target * share, slogans)")) == {
        "slogan_target",
        "share",
        "slogans",
    }


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("a +", "formula ends too early", 4),
        ("foo(1)", "unknown function 'foo'", 1),
        ("1 < 2 < 3", "chained comparisons", 7),
        ("a $ b", "unexpected character '$'", 3),
        ("min(1)", "min() takes 2 or more arguments, got 1", 1),
        ("if(a, b)", "if() takes 3 arguments, got 2", 1),
        ("", "empty formula", 1),
        ("(a", "expected ')'", 3),
        ("a b", "unexpected 'b'", 3),
        ("__import__(os)", "unknown function '__import__'", 1),
        ("open('x')", "unexpected character", 6),
    ],
)
def test_parse_errors_name_the_position(text: str, message: str, pos: int) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.pos == pos


def test_type_checks() -> None:
    expr.check_types(parse("if(a > 0, 1, 2)"))
    expr.check_types(parse("a > 0 and b < 1"), "bool")
    with pytest.raises(ExprError, match="expected a condition"):
        expr.check_types(parse("if(a + 1, 1, 2)"))
    with pytest.raises(ExprError, match="expected a number"):
        expr.check_types(parse("(a > 1) + 2"))
    with pytest.raises(ExprError, match="expected a condition"):
        expr.check_types(parse("a + 1"), "bool")


def test_round_trip_through_text() -> None:
    for text in [
        "1000 * (a + b) / p",
        "if(p = 0, 0, -x)",
        "min(a, b, 3) - max(1, c)",
        "not a > 1 or b <= 2",
    ]:
        node = parse(text)
        assert parse(expr.to_text(node)) == node
