"""Docs are tested for coverage: every CLI command, rule kind, function and key is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from kaohe.cli import app
from kaohe.rulebook import expr
from kaohe.rulebook.schema import RULE_KINDS, Item, Rulebook, Variable

DOCS = Path(__file__).parents[1] / "docs"
README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
CLI_DOC = (DOCS / "cli.md").read_text(encoding="utf-8")
LANG_DOC = (DOCS / "rulebook-language.md").read_text(encoding="utf-8")


def command_names() -> list[str]:
    """Every command, sub-commands as 'group sub' (e.g. 'user add')."""
    import click

    names: list[str] = []
    for name, cmd in typer.main.get_group(app).commands.items():
        if isinstance(cmd, click.Group):
            names += [f"{name} {sub}" for sub in cmd.commands]
        else:
            names.append(name)
    return sorted(names)


def test_every_cli_command_has_a_section() -> None:
    names = command_names()
    assert {"score", "explain", "rulebooks", "check", "template"} <= set(names)
    for name in names:
        assert f"## `kaohe {name}`" in CLI_DOC, name


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:800]
    assert "make run" in head and "make test" in head


def test_every_rule_kind_is_documented() -> None:
    for kind in RULE_KINDS:
        assert f"| `{kind}` |" in LANG_DOC, kind


def test_every_function_and_builtin_is_documented() -> None:
    for name in expr.FUNCTIONS:
        assert f"`{name}(" in LANG_DOC, name
    for name in expr.BUILTINS:
        assert f"`{name}`" in LANG_DOC, name


def test_every_key_is_documented() -> None:
    for model in (Rulebook, Item, Variable):
        for key in model.model_fields:
            assert f"`{key}`" in LANG_DOC or f"{key}:" in LANG_DOC, f"{model.__name__}.{key}"
