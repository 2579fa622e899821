"""Load and validate rulebook files.

Every problem is reported with the file, the line and the key path, e.g.::

    village-1000.yaml, line 212, key 'items[5] (C2).rule.ratio.done': unknown name 'certs_don'

All problems found are reported together (:class:`RulebookErrors`), not one at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kaohe.errors import RulebookError, RulebookErrors
from kaohe.periods import PER_YEAR
from kaohe.rulebook import cache, expr
from kaohe.rulebook.schema import (
    CODE_PATTERN,
    BandRule,
    ClampRule,
    FormulaRule,
    FullRule,
    Item,
    Num,
    PerCase,
    RatioRule,
    Rulebook,
    ThresholdRule,
    Variable,
)

SHIPPED_PACKAGE = "kaohe.rulebooks"


@dataclass
class LoadedRulebook:
    """A validated rulebook with its parsed formulas and where it came from."""

    model: Rulebook
    file: str
    sha256: str
    formulas: dict[str, expr.Node] = field(default_factory=dict)
    #: compiled Polars expressions of items, by (item code, step context): they depend
    #: only on the rulebook, and building them is most of the Python time of scoring a
    #: township (the web app and explanations score one at a time)
    compiled: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def code(self) -> str:
        return self.model.code

    @cached_property
    def variables(self) -> dict[str, Variable]:
        """Declared variables plus one flow per adjustment (加分/扣分 counts)."""
        out = dict(self.model.variables)
        for a in self.model.adjustments:
            out[a.code] = Variable(
                label=a.label, label_en=a.label_en, kind="flow", unit=a.unit, default=None
            )
        return out

    def num(self, v: Num | None) -> float:
        """Resolve a number-or-parameter-name."""
        if v is None:
            raise ValueError("missing number")
        if isinstance(v, str):
            return float(self.model.parameters[v].value)
        return float(v)

    def formula(self, text: str) -> expr.Node:
        """The parsed AST of a formula written in this rulebook."""
        node = self.formulas.get(text)
        if node is None:
            node = expr.parse(text)
            self.formulas[text] = node
        return node

    def points(self, item: Item) -> float | None:
        """The item's points (resolving a parameter name), or None for an open-ended item."""
        return None if item.points is None else self.num(item.points)

    def steps_per_year(self) -> int:
        return PER_YEAR[self.model.periods.step]

    def share(self, step: int) -> float:
        """Cumulative target share at the end of ``step`` (1-based)."""
        if step <= 0:
            return 0.0
        shares = self.model.periods.target_shares
        if shares is None:
            return step / self.steps_per_year()
        return float(shares[step - 1])

    def step_share(self, step: int) -> float:
        """The share of annual targets issued for ``step`` alone: share(j) − share(j−1)."""
        return self.share(step) - self.share(step - 1)


# ---------------------------------------------------------------- YAML positions


# ruamel.yaml is imported where it is used: a rulebook read back from the cache
# (kaohe.rulebook.cache) needs no YAML parser at all (≈ 25 ms of every command's start).


def _line_of(tree: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of ``loc`` found in the ruamel tree."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = tree
    line: int | None = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            with contextlib.suppress(KeyError, TypeError):
                line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            with contextlib.suppress(KeyError, TypeError, IndexError):
                line = node.lc.item(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedMap) and isinstance(part, str):
            continue  # a union tag in a Pydantic location, not a key of the file
        else:
            break
    if line is None and hasattr(tree, "lc"):
        line = tree.lc.line + 1
    return line


def _key_text(tree: Any, loc: tuple[Any, ...]) -> str:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    out = ""
    node = tree
    for pos, part in enumerate(loc):
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, CommentedSeq) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, dict) and "code" in node:
                    label += f" ({node['code']})"
            out += label
        else:
            if isinstance(node, CommentedMap):
                if part not in node:
                    if pos == len(loc) - 1:  # a missing key: name it
                        out += ("." if out else "") + str(part)
                    continue
                node = node[part]
            out += ("." if out else "") + str(part)
    return out


# ---------------------------------------------------------------- loading


def _read_yaml(text: str, file: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except DuplicateKeyError as e:
        mark = e.problem_mark
        raise RulebookErrors(
            [
                RulebookError(
                    f"duplicate key: {e.problem}", file=file, line=mark.line + 1 if mark else None
                )
            ]
        ) from None
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = f"YAML syntax error: {e.problem or e.context}"
        raise RulebookErrors(
            [RulebookError(reason, file=file, line=mark.line + 1 if mark else None)]
        ) from None


def _plain(node: Any) -> Any:
    """ruamel containers → plain dicts/lists (keys as strings unless ints)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def resolve_path(name_or_path: str | Path) -> Path:
    """A shipped rulebook name (``village-1000``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    shipped = resources.files(SHIPPED_PACKAGE) / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    known = ", ".join(shipped_rulebooks())
    raise RulebookErrors(
        [
            RulebookError(
                f"no such rulebook file or shipped rulebook (shipped: {known})", file=str(p)
            )
        ]
    )


def shipped_rulebooks() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")]
        for p in resources.files(SHIPPED_PACKAGE).iterdir()
        if p.name.endswith(".yaml")
    )


def load_rulebook(
    name_or_path: str | Path, params: dict[str, float] | None = None
) -> LoadedRulebook:
    path = resolve_path(name_or_path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RulebookErrors(
            [RulebookError(f"cannot read: {e.strerror}", file=str(path))]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RulebookErrors(
            [RulebookError(f"not UTF-8 text ({e.reason})", file=str(path))]
        ) from None
    return load_rulebook_text(text, file=str(path), params=params)


def load_rulebook_text(
    text: str, *, file: str = "<rulebook>", params: dict[str, float] | None = None
) -> LoadedRulebook:
    """Parse and validate a rulebook's text.

    A valid rulebook is parsed by libyaml (the C parser, ≈ 4× faster), or read back
    from the cache of parsed texts (:mod:`kaohe.rulebook.cache`) when this text loaded
    before; any problem sends the text through the round-trip parser, whose positions
    name the line and key of each error (the same checks run on the same data, so the
    same errors)."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    fast = cache.get(digest)
    cached = fast is not None
    if fast is None:
        fast = _read_yaml_fast(text)
    if fast is not None:
        with contextlib.suppress(RulebookErrors):
            rb = _load_tree(text, fast, file, params, digest)
            if not cached:
                cache.put(digest, fast)
            return rb
    return _load_tree(text, _read_yaml(text, file), file, params, digest)


def _read_yaml_fast(text: str) -> Any | None:
    """The data of the YAML text by libyaml, or None (not installed, or any error)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser  # None without ruamel.yaml.clib

    if CParser is None:
        return None
    yaml = YAML(typ="safe", pure=False)
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except Exception:  # any problem is reported by the round-trip parser instead
        return None


def _load_tree(
    text: str, tree: Any, file: str, params: dict[str, float] | None, digest: str
) -> LoadedRulebook:
    if not isinstance(tree, dict):
        raise RulebookErrors(
            [
                RulebookError(
                    "a rulebook is a YAML mapping (code:, name:, items: …)", file=file, line=1
                )
            ]
        )
    try:
        model = Rulebook.model_validate(_plain(tree))
    except ValidationError as e:
        errors = []
        for err in e.errors():
            loc = tuple(err["loc"])
            errors.append(
                RulebookError(
                    _pydantic_message(err),
                    file=file,
                    line=_line_of(tree, loc),
                    key=_key_text(tree, loc) or None,
                )
            )
        raise RulebookErrors(_dedupe(errors)) from None

    if params:
        unknown = sorted(set(params) - set(model.parameters))
        if unknown:
            known = ", ".join(model.parameters) or "none"
            raise RulebookErrors(
                [
                    RulebookError(
                        f"unknown parameter '{u}' (declared: {known})", file=file, key="parameters"
                    )
                    for u in unknown
                ]
            )
        new_params = {
            k: p.model_copy(update={"value": float(params[k])}) if k in params else p
            for k, p in model.parameters.items()
        }
        model = model.model_copy(update={"parameters": new_params})

    if params:
        digest = hashlib.sha256((digest + json.dumps(params, sort_keys=True)).encode()).hexdigest()
    rb = LoadedRulebook(model=model, file=file, sha256=digest)
    errors = _check(rb, tree)
    if errors:
        raise RulebookErrors(errors)
    return rb


def _pydantic_message(err: Any) -> str:
    typ = err.get("type", "")
    if typ == "missing":
        return "required key is missing"
    if typ == "extra_forbidden":
        return "unknown key (not part of the rulebook language; see docs/rulebook-language.md)"
    msg = str(err.get("msg", "invalid value"))
    inp = err.get("input")
    if typ not in ("missing",) and not isinstance(inp, dict | list):
        msg += f" (got {inp!r})"
    return msg


def _dedupe(errors: list[RulebookError]) -> list[RulebookError]:
    seen: set[str] = set()
    out = []
    for e in errors:
        if str(e) not in seen:
            seen.add(str(e))
            out.append(e)
    return out


# ---------------------------------------------------------------- cross-references


def _check(rb: LoadedRulebook, tree: Any) -> list[RulebookError]:
    m = rb.model
    errors: list[RulebookError] = []

    def err(reason: str, loc: tuple[Any, ...]) -> None:
        errors.append(
            RulebookError(reason, file=rb.file, line=_line_of(tree, loc), key=_key_text(tree, loc))
        )

    # codes
    item_codes: set[str] = set()
    for i, item in enumerate(m.items):
        if item.code in item_codes:
            err(f"duplicate item code '{item.code}'", ("items", i, "code"))
        item_codes.add(item.code)
    adj_codes: set[str] = set()
    for i, a in enumerate(m.adjustments):
        if a.code in adj_codes or a.code in item_codes:
            err(f"duplicate code '{a.code}'", ("adjustments", i, "code"))
        if a.code in m.variables:
            err(
                f"adjustment '{a.code}' is also declared as a variable (an adjustment declares its own count)",
                ("adjustments", i, "code"),
            )
        adj_codes.add(a.code)
    for i, item in enumerate(m.items):
        if item.code in m.variables or item.code in m.parameters:
            err(
                f"item code '{item.code}' is also a variable or parameter name",
                ("items", i, "code"),
            )
    for name in m.parameters:
        if name in rb.variables:
            err(f"parameter '{name}' has the name of a variable", ("parameters", name))
        if name in expr.BUILTINS or name in expr.FUNCTIONS:
            err(f"parameter '{name}' has a reserved name", ("parameters", name))
    for name in m.variables:
        if name in expr.BUILTINS or name in expr.FUNCTIONS or name in ("and", "or", "not"):
            err(f"variable '{name}' has a reserved name", ("variables", name))
        if not re.match(CODE_PATTERN, name):
            err(
                f"variable code '{name}' must be letters, digits and _ (start with a letter)",
                ("variables", name),
            )
    for name, v in m.variables.items():
        if v.split and v.kind != "annual":
            err("only an annual target can be split across periods", ("variables", name, "split"))
        if v.min is not None and v.max is not None and v.min > v.max:
            err("min is greater than max", ("variables", name, "min"))
        if v.integer:
            why = (
                "integer: true"
                if "integer" in v.model_fields_set
                else f"a count by its unit {v.unit}; write integer: false if it is not"
            )
            for key in ("default", "min", "max"):
                x = getattr(v, key)
                if x is not None and not float(x).is_integer():
                    err(
                        f"{key} {x!r} is not a whole number, but '{name}' takes whole numbers "
                        f"only ({why})",
                        ("variables", name, key),
                    )
    group_codes = {g.code for g in m.groups}
    if m.groups:
        for i, item in enumerate(m.items):
            if item.group is not None and item.group not in group_codes:
                err(
                    f"unknown group '{item.group}' (declared: {', '.join(sorted(group_codes))})",
                    ("items", i, "group"),
                )

    # periods
    p = m.periods
    n = rb.steps_per_year()
    if p.target_shares is not None:
        if len(p.target_shares) != n:
            err(
                f"needs one cumulative share per {p.step.value} ({n}), got {len(p.target_shares)}",
                ("periods", "target_shares"),
            )
        elif any(b < a for a, b in zip(p.target_shares, p.target_shares[1:], strict=False)) or any(
            s < 0 for s in p.target_shares
        ):
            err(
                "cumulative shares must be non-negative and never decrease",
                ("periods", "target_shares"),
            )
    for r in m.ranking.rank_bonus:
        if r < 1:
            err("ranks start at 1", ("ranking", "rank_bonus", r))

    # numbers that name parameters
    def num(v: Any, loc: tuple[Any, ...]) -> None:
        if isinstance(v, str) and v not in m.parameters:
            err(f"'{v}' is neither a number nor a declared parameter", loc)

    unit_vars = [v for v, d in rb.variables.items() if d.level == "unit"]
    parent_vars = [v for v, d in rb.variables.items() if d.level == "parent"]
    item_codes_list = [i.code for i in m.items]
    flag_names = list(m.flags)
    scopes: dict[str, list[str]] = {
        # item rules, bonuses, deductions, vetoes, adjustments, placement
        "data": [*unit_vars, *m.parameters, *expr.BUILTINS],
        # flags: item scores and the total of the same step
        "flag": [*unit_vars, *m.parameters, *expr.BUILTINS, *item_codes_list, "total"],
        # payments: a step's item scores and flags
        "step": [*unit_vars, *m.parameters, *expr.BUILTINS, *item_codes_list, "total", *flag_names],
        # outcomes: the period's result, ranks
        "result": [
            *unit_vars,
            *m.parameters,
            *expr.BUILTINS,
            *item_codes_list,
            *flag_names,
            *RESULT_NAMES,
        ],
        # payments on the parent's own row
        "parent": [*parent_vars, *m.parameters, *expr.BUILTINS],
    }

    def formula(text: str, loc: tuple[Any, ...], want: str = "num", scope: str = "data") -> None:
        try:
            node = rb.formula(text)
            expr.check_types(
                node, want, frozenset(flag_names) if scope in ("step", "result") else frozenset()
            )
        except expr.ExprError as e:
            err(f"formula '{text}': {e}", loc)
            return
        allowed = scopes[scope]
        for name in sorted(expr.names(node)):
            if name not in allowed:
                if name in parent_vars:
                    err(
                        f"formula '{text}': '{name}' is reported on the parent's row (level: parent) "
                        "and can only be read by a payment with on: parent",
                        loc,
                    )
                    continue
                hint = _suggest(name, allowed)
                err(f"formula '{text}': unknown name '{name}'{hint}", loc)

    for i, item in enumerate(m.items):
        base = ("items", i)
        rule = item.rule
        num(item.points, (*base, "points"))
        if isinstance(rule, RatioRule):
            formula(rule.ratio.done, (*base, "rule", "ratio", "done"))
            formula(rule.ratio.target, (*base, "rule", "ratio", "target"))
            num(rule.ratio.per_excess, (*base, "rule", "ratio", "per_excess"))
            if item.points is None:
                err("a ratio rule needs the item's points", (*base, "points"))
        elif isinstance(rule, ThresholdRule):
            t = rule.threshold
            if isinstance(t.rate, list):
                if len(t.rate) != 2:
                    err(
                        "rate is [numerator, denominator] or one expression",
                        (*base, "rule", "threshold", "rate"),
                    )
                for j, part in enumerate(t.rate):
                    formula(part, (*base, "rule", "threshold", "rate", j))
            else:
                formula(t.rate, (*base, "rule", "threshold", "rate"))
            num(t.at, (*base, "rule", "threshold", "at"))
            num(t.points, (*base, "rule", "threshold", "points"))
            if t.below != "proportional":
                num(t.below, (*base, "rule", "threshold", "below"))
            num(t.above, (*base, "rule", "threshold", "above"))
            if t.points is None and item.points is None:
                err("a threshold rule needs points (on the rule or the item)", (*base, "points"))
            at_value = (
                m.parameters[t.at].value if isinstance(t.at, str) and t.at in m.parameters else t.at
            )
            if not isinstance(at_value, str) and at_value <= 0 and t.below == "proportional":
                err("a proportional threshold must be above 0", (*base, "rule", "threshold", "at"))
        elif isinstance(rule, BandRule):
            b = rule.band
            formula(b.value, (*base, "rule", "band", "value"))
            num(b.full_at_most, (*base, "rule", "band", "full_at_most"))
            num(b.zero_at_least, (*base, "rule", "band", "zero_at_least"))
            num(b.points, (*base, "rule", "band", "points"))
            if b.points is None and item.points is None:
                err("a band rule needs points (on the rule or the item)", (*base, "points"))
            if not errors:
                lo, hi = rb.num(b.full_at_most), rb.num(b.zero_at_least)
                if lo == hi:
                    err("full_at_most and zero_at_least must differ", (*base, "rule", "band"))
        elif isinstance(rule, ClampRule):
            formula(rule.clamp.value, (*base, "rule", "clamp", "value"))
            num(rule.clamp.min, (*base, "rule", "clamp", "min"))
            num(rule.clamp.max, (*base, "rule", "clamp", "max"))
            if rule.clamp.max is None and item.points is None:
                err("a clamp rule needs max (or the item's points)", (*base, "rule", "clamp"))
        elif isinstance(rule, FullRule):
            num(rule.full, (*base, "rule", "full"))
            if rule.full is None and item.points is None:
                err("'full' needs the item's points", (*base, "points"))
        elif isinstance(rule, FormulaRule):
            formula(rule.formula, (*base, "rule", "formula"))
        for kind in ("bonuses", "deductions"):
            cases: list[PerCase] = getattr(item, kind)
            for j, pc in enumerate(cases):
                formula(pc.per, (*base, kind, j, "per"))
                num(pc.points, (*base, kind, j, "points"))
        if item.floor not in (None, "default"):
            num(item.floor, (*base, "floor"))
        if item.cap not in (None, "default"):
            num(item.cap, (*base, "cap"))
        if item.cap == "default" and m.conventions.cap_at_points and item.points is None:
            err("cap_at_points needs the item's points", (*base, "points"))
        if item.veto is not None:
            formula(item.veto.when, (*base, "veto", "when"), want="bool")
            num(item.veto.score, (*base, "veto", "score"))
        if item.per_period and not m.periods.cumulative:
            err("per_period only makes sense in a cumulative scheme", (*base, "per_period"))
    for i, a in enumerate(m.adjustments):
        num(a.points, ("adjustments", i, "points"))

    # outcomes, flags, placement, money
    taken = set(rb.variables) | set(m.parameters) | set(item_codes_list) | set(RESULT_NAMES)
    for name, flag in m.flags.items():
        if name in taken or name in RESERVED_RESULT_KEYS:
            err(
                f"flag '{name}' clashes with a variable, parameter, item or result name",
                ("flags", name),
            )
        for j, code in enumerate(flag.all_full):
            if code not in item_codes_list:
                err(f"unknown item '{code}'", ("flags", name, "all_full", j))
            elif next(i for i in m.items if i.code == code).points is None:
                err(f"item '{code}' has no points to reach", ("flags", name, "all_full", j))
        if flag.when is not None:
            formula(flag.when, ("flags", name, "when"), want="bool", scope="flag")
        if flag.when is None and not flag.all_full:
            err("a flag needs all_full or when", ("flags", name))
    pl_ = m.ranking.placement
    if pl_ is not None:
        formula(pl_.when, ("ranking", "placement", "when"), want="bool")
        num(pl_.last, ("ranking", "placement", "last"))
    outcome_codes: set[str] = set()
    for i, o in enumerate(m.outcomes):
        loc = ("outcomes", i)
        if o.code in outcome_codes:
            err(f"duplicate outcome code '{o.code}'", (*loc, "code"))
        outcome_codes.add(o.code)
        if o.when is not None:
            formula(o.when, (*loc, "when"), want="bool", scope="result")
        for r, amount in o.amount_by_rank.items():
            num(amount, (*loc, "amount_by_rank", r))
            if r < 1:
                err("ranks start at 1", (*loc, "amount_by_rank", r))
        if o.amount_by_rank:
            if o.payee is None or o.payee not in m.payees:
                err(f"money needs a payee declared in payees (got {o.payee!r})", (*loc, "payee"))
            if o.funder is None or o.funder not in m.funders:
                err(
                    f"money needs a funder declared in funders (got {o.funder!r})", (*loc, "funder")
                )
        if o.kind == "veto" and o.amount_by_rank:
            err("a veto carries no money", (*loc, "amount_by_rank"))
    pay_codes: set[str] = set()
    for i, pay in enumerate(m.payments):
        loc = ("payments", i)
        if pay.code in pay_codes:
            err(f"duplicate payment code '{pay.code}'", (*loc, "code"))
        pay_codes.add(pay.code)
        formula(pay.per, (*loc, "per"), scope="parent" if pay.on == "parent" else "data")
        if pay.when is not None:
            if pay.on == "parent":
                err(
                    "a payment on the parent's row cannot have a condition on results",
                    (*loc, "when"),
                )
            else:
                formula(pay.when, (*loc, "when"), want="bool", scope="step")
        if pay.payee not in m.payees:
            err(
                f"unknown payee '{pay.payee}' (declared: {', '.join(m.payees) or 'none'})",
                (*loc, "payee"),
            )
        if not pay.rates:
            err("a payment needs at least one funder's rate", (*loc, "rates"))
        for f, rate in pay.rates.items():
            if f not in m.funders:
                err(
                    f"unknown funder '{f}' (declared: {', '.join(m.funders) or 'none'})",
                    (*loc, "rates", f),
                )
            num(rate, (*loc, "rates", f))
    if not errors:
        for i, pay in enumerate(m.payments):
            for f, rate in pay.rates.items():
                if not _whole_fen(rb.num(rate)):
                    err("money is paid in whole fen (0.01 yuan)", ("payments", i, "rates", f))
        for i, o in enumerate(m.outcomes):
            for r, amount in o.amount_by_rank.items():
                if not _whole_fen(rb.num(amount)):
                    err(
                        "money is paid in whole fen (0.01 yuan)",
                        ("outcomes", i, "amount_by_rank", r),
                    )
    return errors


#: names a result formula (outcome `when`) may use besides variables, items and flags
RESULT_NAMES = ("total", "rank", "n", "last_rank")
#: keys of a result record that a flag may not shadow
RESERVED_RESULT_KEYS = (
    "unit",
    "name",
    "group",
    "period",
    "items",
    "adjustments",
    "rank_bonus",
    "outcomes",
    "vetoed",
    "explanation",
)


def _whole_fen(v: float) -> bool:
    return abs(v * 100 - round(v * 100)) < 1e-6


def _suggest(name: str, candidates: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def item_by_code(rb: LoadedRulebook, code: str) -> Item:
    for item in rb.model.items:
        if item.code == code:
            return item
    raise KeyError(code)
