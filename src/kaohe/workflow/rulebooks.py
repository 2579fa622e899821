"""Rulebook versions: a rulebook is stored with the sha256 of its text; results
record the version that produced them."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.rulebook.loader import LoadedRulebook, load_rulebook_text, resolve_path
from kaohe.store.models import RulebookVersion


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=32)
def _load(text: str, file: str) -> LoadedRulebook:
    return load_rulebook_text(text, file=file)


def store_rulebook(session: Session, code_or_path: str, text: str | None = None) -> RulebookVersion:
    """Store a rulebook's text (a shipped name or a path; or ``text`` given) unless a
    version with the same hash exists; return that version."""
    if text is None:
        path = resolve_path(code_or_path)
        text = path.read_text(encoding="utf-8")
        file = str(path)
    else:
        file = code_or_path
    rb = _load(text, file)
    digest = sha256_text(text)
    found = session.scalar(
        select(RulebookVersion).where(
            RulebookVersion.code == rb.code, RulebookVersion.sha256 == digest
        )
    )
    if found is not None:
        return found
    version = RulebookVersion(code=rb.code, sha256=digest, title=rb.model.name, source=text)
    session.add(version)
    session.flush()
    return version


def current_version(session: Session, code: str) -> RulebookVersion:
    """The latest stored version of rulebook ``code`` (stored from the shipped file on first use)."""
    found = session.scalar(
        select(RulebookVersion)
        .where(RulebookVersion.code == code)
        .order_by(RulebookVersion.id.desc())
        .limit(1)
    )
    return found if found is not None else store_rulebook(session, code)


def loaded(version: RulebookVersion) -> LoadedRulebook:
    """The parsed rulebook of a stored version (cached by text)."""
    return _load(version.source, f"{version.code}@{version.sha256[:12]}")
