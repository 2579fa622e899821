"""The three ways the loader gets a rulebook's data: libyaml (fast, for valid
rulebooks), the round-trip parser (positions for errors) and the cache of parsed texts
(kaohe.rulebook.cache) give every rulebook file the same rulebook or the same errors."""

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
    from ruamel.yaml.main import CParser

    assert CParser is not None


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


def _load(path: Path) -> object:
    """The rulebook model of the file, or the text of its errors."""
    try:
        return load_rulebook_text(path.read_text(encoding="utf-8"), file=str(path)).model
    except RulebookErrors as e:
        return [str(x) for x in e.errors]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_rulebook_or_same_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAOHE_CACHE_DIR", "")  # parsed, not read back
    fast = _load(path)
    monkeypatch.setattr(loader, "_read_yaml_fast", lambda text: None)
    assert fast == _load(path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_rulebook_or_same_errors_from_the_cache(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAOHE_CACHE_DIR", str(tmp_path))
    parsed = _load(path)
    stored = list(tmp_path.glob("*.json"))
    assert len(stored) == (0 if isinstance(parsed, list) else 1)  # only valid ones are kept

    def no_parsing(text: str) -> None:
        raise AssertionError("parsed although cached")

    if stored:
        monkeypatch.setattr(loader, "_read_yaml_fast", no_parsing)
    assert _load(path) == parsed


def test_errors_name_the_line_after_a_fast_attempt() -> None:
    text = (SHIPPED / "village-1000.yaml").read_text(encoding="utf-8")
    broken = text.replace("{done: certs_done,", "{done: certs_don,", 1)
    assert broken != text
    with pytest.raises(RulebookErrors) as info:
        load_rulebook_text(broken, file="v.yaml")
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if "done: certs_don," in t)
    assert any(e.line == line and "certs_don" in str(e) for e in info.value.errors)
