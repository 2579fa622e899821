"""The rulebook loader: valid files load; deliberately broken files fail with file, line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaohe.errors import RulebookErrors
from kaohe.rulebook.loader import load_rulebook, load_rulebook_text, shipped_rulebooks
from kaohe.rulebook.schema import Rulebook

FIX = Path(__file__).parent / "fixtures" / "rulebooks"

# file -> (line, key fragment or None, reason fragment)
BROKEN = {
    "unknown_name.yaml": (
        11,
        "items[0] (X1).rule.ratio.done",
        "unknown name 'dnoe' (did you mean 'done'?)",
    ),
    "bad_formula.yaml": (11, "items[0] (X1).rule.formula", "expected ')'"),
    "unknown_key.yaml": (12, "items[0] (X1).deductions[0].lable", "unknown key"),
    "missing_key.yaml": (7, "items[0] (X1).name", "required key is missing"),
    "bad_rule_kind.yaml": (10, "items[0] (X1).rule", "a rule is one of"),
    "unknown_parameter.yaml": (
        11,
        "rule.threshold.at",
        "'c1_threshold' is neither a number nor a declared parameter",
    ),
    "duplicate_item.yaml": (8, "items[1] (X1).code", "duplicate item code 'X1'"),
    "duplicate_key.yaml": (6, None, "duplicate key"),
    "yaml_syntax.yaml": (4, None, "YAML syntax error"),
    "bad_shares.yaml": (
        3,
        "periods.target_shares",
        "needs one cumulative share per tertial (3), got 2",
    ),
    "veto_not_condition.yaml": (11, "veto.when", "expected a condition"),
    "bad_kind.yaml": (5, "variables.x.kind", "'annual' or 'flow'"),
    "split_flow.yaml": (5, "variables.x.split", "only an annual target can be split"),
    "integer_default.yaml": (
        10,
        "variables.y.default",
        "default 0.5 is not a whole number, but 'y' takes whole numbers only (a count by its unit 例",
    ),
    "not_a_mapping.yaml": (1, None, "a rulebook is a YAML mapping"),
}


def test_every_broken_fixture_is_covered() -> None:
    assert sorted(p.name for p in (FIX / "broken").glob("*.yaml")) == sorted(BROKEN)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_rulebook_names_file_line_and_key(name: str) -> None:
    line, key, reason = BROKEN[name]
    with pytest.raises(RulebookErrors) as info:
        load_rulebook(FIX / "broken" / name)
    errors = info.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    e = errors[0]
    assert e.file is not None and e.file.endswith(name)
    assert e.line == line
    if key is not None:
        assert e.key is not None and key in e.key
    assert reason in e.reason
    assert f"line {line}" in str(e) and name in str(e)


def test_all_problems_are_reported_at_once() -> None:
    text = (FIX / "minimal.yaml").read_text(encoding="utf-8")
    text = text.replace("done: done", "done: dnoe").replace("points: 2}", "points: lots}")
    with pytest.raises(RulebookErrors) as info:
        load_rulebook_text(text, file="two.yaml")
    reasons = " | ".join(e.reason for e in info.value.errors)
    assert "unknown name 'dnoe'" in reasons and "'lots' is neither a number" in reasons


def test_minimal_and_shipped_rulebooks_load() -> None:
    rb = load_rulebook(FIX / "minimal.yaml")
    assert rb.code == "minimal" and "praise" in rb.variables
    assert rb.variables["praise"].kind == "flow"
    assert rb.num("bonus_points") == 5.0 and rb.share(2) == 0.7
    assert rb.step_share(2) == pytest.approx(0.3)
    assert "village-1000" in shipped_rulebooks()
    for code in shipped_rulebooks():
        assert load_rulebook(code).code == code


def test_village_1000_has_1000_points_in_its_groups() -> None:
    rb = load_rulebook("village-1000")
    m = rb.model
    assert sum(rb.points(i) or 0 for i in m.items) == 1000
    by_group: dict[str, float] = {}
    for i in m.items:
        by_group[i.group or ""] = by_group.get(i.group or "", 0) + (rb.points(i) or 0)
    assert by_group == {g.code: g.points for g in m.groups}
    assert all(i.source and i.clause for i in m.items)


def test_parameter_override_and_unknown_parameter() -> None:
    rb = load_rulebook(FIX / "minimal.yaml", {"bonus_points": 7})
    assert rb.num("bonus_points") == 7.0
    assert rb.sha256 != load_rulebook(FIX / "minimal.yaml").sha256
    with pytest.raises(RulebookErrors, match="unknown parameter 'bonus'"):
        load_rulebook(FIX / "minimal.yaml", {"bonus": 1})


def test_unknown_shipped_name() -> None:
    with pytest.raises(RulebookErrors, match="no such rulebook"):
        load_rulebook("village-2000")


def test_published_json_schema_is_current() -> None:
    """docs/rulebook.schema.json is what `kaohe schema` prints (regenerate it when the model changes)."""
    published = json.loads(
        (Path(__file__).parents[1] / "docs" / "rulebook.schema.json").read_text("utf-8")
    )
    assert published == Rulebook.model_json_schema()


# ---------------------------------------------------------------- integer variables

INTEGERS = """
code: ints
name: 整数
periods: {step: tertial}
variables:
  births: {label: 出生, kind: flow, unit: 例}
  people: {label: 人数, kind: annual, unit: 人}
  money: {label: 金额, kind: flow, unit: 元}
  score: {label: 评分, kind: annual, unit: 分}
  plain: {label: 无单位, kind: flow}
  avg_staff: {label: 平均在岗人数, kind: flow, unit: 人, integer: false}
  tasks: {label: 任务分, kind: annual, unit: 分, integer: true}
items:
  - {code: X1, name: 甲, points: 10, rule: full}
adjustments:
  - {code: praise, label: 通报表扬, points: 2}
  - {code: bonus_points, label: 加分, points: 1, unit: 分}
"""


def test_integer_defaults_from_the_unit_and_an_explicit_flag_wins() -> None:
    rb = load_rulebook_text(INTEGERS, file="ints.yaml")
    flags = {code: v.integer for code, v in rb.variables.items()}
    assert flags == {
        "births": True,  # 例: a count
        "people": True,  # 人
        "money": False,  # 元
        "score": False,  # 分
        "plain": False,  # no unit
        "avg_staff": False,  # 人, but integer: false
        "tasks": True,  # 分, but integer: true
        "praise": True,  # an adjustment's count, 次 by default
        "bonus_points": False,  # an adjustment in 分
    }
    assert all(isinstance(f, bool) for f in flags.values())


def test_shipped_rulebooks_count_whole_numbers_except_scores_and_money() -> None:
    """Spec: counts of cases, persons and events are whole numbers; money (元) and
    assessed scores (分) are not."""
    for code, fractional in [
        (
            "village-1000",
            {"org_score", "association_score", "fee_first_due", "fee_first_collected"},
        ),
        ("community-monthly", {"key_work_points"}),
    ]:
        rb = load_rulebook(code)
        assert {v for v, var in rb.variables.items() if not var.integer} == fractional, code
        assert all(var.unit in ("分", "元") for v, var in rb.variables.items() if v in fractional)


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("  births: {label: 出生, kind: flow, unit: 例, min: 0.5}", "min", "0.5"),
        ("  births: {label: 出生, kind: flow, unit: 例, max: 99.5}", "max", "99.5"),
        ("  births: {label: 出生, kind: flow, integer: true, default: 1.25}", "default", "1.25"),
    ],
)
def test_integer_variable_with_a_fractional_bound_or_default(
    line: str, key: str, value: str
) -> None:
    text = INTEGERS.replace("  births: {label: 出生, kind: flow, unit: 例}", line)
    assert line in text
    with pytest.raises(RulebookErrors) as info:
        load_rulebook_text(text, file="ints.yaml")
    (e,) = info.value.errors
    assert (e.file, e.line, e.key) == ("ints.yaml", 6, f"variables.births.{key}")
    assert e.reason.startswith(f"{key} {value} is not a whole number")
    explicit = "integer: true" in line
    assert ("(integer: true)" in e.reason) == explicit
    assert ("by its unit 例" in e.reason) == (not explicit)


def test_fractional_bounds_are_fine_without_integer() -> None:
    text = INTEGERS.replace(
        "  births: {label: 出生, kind: flow, unit: 例}",
        "  births: {label: 出生, kind: flow, unit: 例, integer: false, min: 0.5, default: 1.5}",
    )
    rb = load_rulebook_text(text, file="ints.yaml")
    assert rb.variables["births"].integer is False and rb.variables["births"].default == 1.5
