"""The relational model (SQLAlchemy 2 declarative, typed).

Times are stored as naive UTC (:func:`utcnow`); pages show them in China
Standard Time.  Every table that another package adds (e.g. supplies) uses the
same :class:`Base`, so one Alembic history covers the whole database.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


#: org-unit levels, root to leaf
LEVELS = ("county", "township", "street", "village", "community")

#: user roles
ROLES = ("admin", "assessor", "reporter", "viewer")

#: states of a (unit, period) data submission
SUBMISSION_STATES = ("draft", "submitted", "returned", "approved")


class OrgUnit(Base):
    """County → township or street → village or community."""

    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    #: on a township or street: the rulebook (code) that assesses its children
    rulebook: Mapped[str | None] = mapped_column(String(64))
    sort: Mapped[int] = mapped_column(Integer, default=0)

    parent: Mapped[OrgUnit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[OrgUnit]] = relationship(
        back_populates="parent", order_by="OrgUnit.sort, OrgUnit.code"
    )


class RulebookVersion(Base):
    """A rulebook's source text, stored once per content hash (sha256 of the bytes)."""

    __tablename__ = "rulebook_version"
    __table_args__ = (UniqueConstraint("code", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DataValue(Base):
    """One reported number: unit × period (data row period, e.g. 2022, 2022T1, 2022-03) × variable."""

    __tablename__ = "data_value"
    __table_args__ = (UniqueConstraint("unit_id", "period", "variable"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    period: Mapped[str] = mapped_column(String(16), index=True)
    variable: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class Submission(Base):
    """Workflow state of one unit's data for one data period.

    draft → submitted → returned (comment) | approved (locked); reopening an
    approved submission needs a reason and puts it back to draft."""

    __tablename__ = "submission"
    __table_args__ = (UniqueConstraint("unit_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    period: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    comment: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # one of ROLES
    #: the unit the user belongs to: a reporter's own unit, an assessor's township/street
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    unit: Mapped[OrgUnit | None] = relationship()


class UserSession(Base):
    """A browser session: the cookie carries a random token, the table its sha256."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class ApiToken(Base):
    """A personal API token (``Authorization: Bearer kh_…``); only its sha256 is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """Login attempts, for throttling (by username and by client address)."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    """Who changed what, when, from what to what, and why.  Append-only."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_unit_period", "unit_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    #: e.g. data.set, submission.submit, submission.return, submission.approve,
    #: submission.reopen, publication.publish, appeal.file, appeal.answer,
    #: payment.review, payment.approve, user.add, user.passwd, user.disable
    action: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    period: Mapped[str | None] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(200))  # e.g. the variable code
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User | None] = relationship()
    unit: Mapped[OrgUnit | None] = relationship()


class Publication(Base):
    """Frozen results of one group (township/street) for one assessment period.

    ``results`` is the JSON of ``kaohe score`` (:mod:`kaohe.output`) for the group,
    computed with ``rulebook_version``.  A republish adds a new row with
    ``version`` + 1 and marks the old one superseded; nothing is overwritten."""

    __tablename__ = "publication"
    __table_args__ = (UniqueConstraint("group_id", "period", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    period: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    rulebook_version_id: Mapped[int] = mapped_column(ForeignKey("rulebook_version.id"))
    results: Mapped[str] = mapped_column(Text)
    published_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    appeal_days: Mapped[int] = mapped_column(Integer, default=7)
    note: Mapped[str | None] = mapped_column(Text)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)

    group: Mapped[OrgUnit] = relationship()
    rulebook_version: Mapped[RulebookVersion] = relationship()


class Appeal(Base):
    """A unit's appeal (申诉) against a published result, and the assessor's answer."""

    __tablename__ = "appeal"

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    text: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    filed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | answered
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    publication: Mapped[Publication] = relationship()
    unit: Mapped[OrgUnit] = relationship()


class PaymentApproval(Base):
    """Sign-off of one unit's payment lines for one period: reviewed (community
    director), then approved (street deputy director)."""

    __tablename__ = "payment_approval"
    __table_args__ = (UniqueConstraint("unit_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    period: Mapped[str] = mapped_column(String(16))
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
