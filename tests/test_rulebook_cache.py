"""The cache of parsed rulebook texts (kaohe.rulebook.cache): exact round trips, only
what JSON keeps exactly, damaged or unwritable caches skipped, no YAML parser on a hit."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaohe.rulebook import cache, loader
from kaohe.rulebook.loader import load_rulebook

SHIPPED = Path(loader.__file__).parent.parent / "rulebooks"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KAOHE_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c"


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types, all the way down (1 ≠ 1.0 ≠ True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
keys = st.text() | st.integers() | st.booleans() | st.just(cache._PAIRS)
trees = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(trees)
def test_round_trip_is_exact(tree: Any) -> None:
    back = cache._decode(json.loads(json.dumps(cache._encode(tree))))
    assert same(back, tree)


def test_put_then_get(folder: Path) -> None:
    tree = {"code": "x", "ranking": {"rank_bonus": {1: 4, 2: 2.5}}, "on": True, "n": None}
    cache.put("ab" * 32, tree)
    assert len(list(folder.glob("*.json"))) == 1
    assert same(cache.get("ab" * 32), tree)
    assert cache.get("cd" * 32) is None


@pytest.mark.parametrize("value", [dt.date(2022, 1, 1), float("nan"), float("inf"), b"x"])
def test_values_json_cannot_keep_are_not_cached(folder: Path, value: Any) -> None:
    cache.put("ab" * 32, {"a": [1, {"b": value}]})
    assert cache.get("ab" * 32) is None
    assert not folder.exists() or not list(folder.glob("*.json"))


def test_switched_off_by_an_empty_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAOHE_CACHE_DIR", "")
    assert cache.cache_dir() is None
    cache.put("ab" * 32, {"a": 1})
    assert cache.get("ab" * 32) is None


def test_default_folder_is_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KAOHE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "kaohe" / "rulebooks"


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'{"sha256": "other", "data": {}}', b'{"data": {}}', b"\xff\xfe"],
)
def test_a_damaged_file_is_ignored_and_replaced(folder: Path, content: bytes) -> None:
    rb = load_rulebook("village-1000")
    (stored,) = folder.glob("*.json")
    stored.write_bytes(content)
    assert load_rulebook("village-1000").model == rb.model  # parsed again
    assert cache.get(rb.sha256) is not None  # and kept again


def test_an_unwritable_cache_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KAOHE_CACHE_DIR", str(blocker / "c"))
    assert load_rulebook("village-1000").code == "village-1000"
    assert blocker.read_text() == "not a folder"


def test_a_changed_text_is_parsed_again(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    text = (SHIPPED / "village-1000.yaml").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    before = load_rulebook(path)
    path.write_text(text.replace("name: ", "name: 新", 1), encoding="utf-8")
    after = load_rulebook(path)
    assert after.sha256 != before.sha256
    assert after.model.name == "新" + before.model.name
    assert len(list(folder.glob("*.json"))) == 2


def test_params_are_applied_to_a_cached_text(folder: Path) -> None:
    plain = load_rulebook("village-1000")
    name = next(iter(plain.model.parameters))
    changed = load_rulebook("village-1000", {name: 123.0})  # read back from the cache
    assert changed.model.parameters[name].value == 123.0
    assert changed.sha256 != plain.sha256
    assert len(list(folder.glob("*.json"))) == 1  # the text's data, not the parameters


def test_only_the_newest_files_are_kept(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_FILES", 2)
    for i, digest in enumerate(["a" * 64, "b" * 64, "c" * 64, "d" * 64]):
        cache.put(digest, {"i": i})
        path = cache._file(folder, digest)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    assert sorted(p.name for p in folder.glob("*.json")) == [
        cache._file(folder, "c" * 64).name,
        cache._file(folder, "d" * 64).name,
    ]


def test_a_cached_load_imports_no_yaml_parser(folder: Path) -> None:
    code = (
        "import sys\n"
        "from kaohe.rulebook.loader import load_rulebook\n"
        "rb = load_rulebook('village-1000')\n"
        "print(rb.code, 'ruamel.yaml' in sys.modules)\n"
    )
    env = {**os.environ, "KAOHE_CACHE_DIR": str(folder)}

    def run() -> str:
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert run() == "village-1000 True"  # parsed (and kept)
    assert run() == "village-1000 False"  # read back
