"""The two YAML paths of the loader: libyaml (fast, for valid rulebooks) and the
round-trip parser (positions for errors) read every rulebook file the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaohe.errors import RulebookErrors
from kaohe.rulebook import loader
from kaohe.rulebook.loader import _plain, _read_yaml, _read_yaml_fast, load_rulebook_text

FIXTURES = Path(__file__).parent / "fixtures" / "rulebooks"
SHIPPED = Path(loader.__file__).parent.parent / "rulebooks"
FILES = sorted([*SHIPPED.glob("*.yaml"), *FIXTURES.rglob("*.yaml")])


def test_libyaml_is_installed() -> None:
    # ruamel.yaml.clib is a dependency: without it every load takes the slow path
    assert loader._CParser is not None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_data_from_both_parsers(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fast = _read_yaml_fast(text)
    try:
        slow = _plain(_read_yaml(text, str(path)))
    except RulebookErrors:
        assert fast is None  # a YAML error: the fast path gives way to the error report
        return
    assert fast == slow


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_rulebook_or_same_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8")

    def load() -> object:
        try:
            return load_rulebook_text(text, file=str(path)).model
        except RulebookErrors as e:
            return [str(x) for x in e.errors]

    fast = load()
    monkeypatch.setattr(loader, "_read_yaml_fast", lambda text: None)
    assert fast == load()


def test_errors_name_the_line_after_a_fast_attempt() -> None:
    text = (SHIPPED / "village-1000.yaml").read_text(encoding="utf-8")
    broken = text.replace("{done: certs_done,", "{done: certs_don,", 1)
    assert broken != text
    with pytest.raises(RulebookErrors) as info:
        load_rulebook_text(broken, file="v.yaml")
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if "done: certs_don," in t)
    assert any(e.line == line and "certs_don" in str(e) for e in info.value.errors)
