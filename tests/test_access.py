"""The access-control matrix, enforced on the server for every page and API route.

Generic on purpose: the tests walk ``app.routes``, so a route added later is
covered as soon as it exists.

- Every route whose path names a ``{unit}`` or ``{group}`` is called by the
  reporter of V0000 (township T000), with a browser session and with an API
  token, for other units: V0001 (same township), V0010 (another township), C01
  (the street's community) and the groups T001 and ST01.  The answer must be 403
  or 404, and nothing in the database may change.  Public routes are walked too:
  the seeded database has no published results, so they must answer 404.
- Every route that is not public refuses the public: 401, 403, or a redirect to
  the login page.
- The permission functions themselves, role by role and unit by unit.
- A reporter reads and writes its own unit, by page and by API.
"""

from __future__ import annotations

import hashlib
import itertools
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, UploadFile
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import select, text

from kaohe.auth.permissions import can_read, can_review, can_write, scope_ids
from kaohe.auth.sessions import create_api_token
from kaohe.auth.users import user_by_name
from kaohe.store import all_models  # noqa: F401  (every table in Base.metadata)
from kaohe.store.db import transaction
from kaohe.store.models import AuditEntry, Base, DataValue, OrgUnit
from kaohe.web.app import create_app
from kaohe.web.deps import Db
from tests.conftest import TEST_USERS
from tests.web import Client

REPORTER = "reporter_v0000"  # unit V0000 in township T000

#: paths anyone may use without signing in (exact, or prefix when ending in "/")
PUBLIC_EXACT = {"/", "/login", "/logout", "/public", "/points", "/openapi.json", "/docs", "/redoc"}
PUBLIC_PREFIXES = ("/public/", "/api/public/", "/lang/", "/static", "/docs/")

#: (group, unit, periods) that the reporter of V0000 must not reach
OTHER_UNITS = [("T000", "V0001"), ("T001", "V0010"), ("ST01", "C01")]
OTHER_GROUPS = ["T001", "ST01"]
PERIODS = {"T000": ["2022", "2022T1"], "T001": ["2022", "2022T1"], "ST01": ["2022-03", "2022Q1"]}

#: values tried for other string path parameters, by name
OTHER_PARAMS: dict[str, list[str]] = {
    "action": ["submit", "return", "approve", "reopen", "review"],
}

#: tables whose rows a refused request may touch (sign-in bookkeeping)
VOLATILE = {"login_attempt", "user_session", "api_token"}


# --- walking the routes ----------------------------------------------------------------


@dataclass
class Route:
    path: str
    methods: set[str]
    route: APIRoute

    @property
    def params(self) -> dict[str, Any]:
        return {p.name: p.field_info.annotation for p in self.route.dependant.path_params}


def api_routes(app: FastAPI) -> Iterator[Route]:
    """Every API route of ``app`` with its full path (including routers' prefixes)."""
    from fastapi import routing

    iterate = getattr(routing, "iter_route_contexts", None)
    contexts = iterate(app.routes) if iterate else app.routes
    for rc in contexts:
        original = getattr(rc, "original_route", rc)
        if isinstance(original, APIRoute) and rc.path:
            yield Route(rc.path, set(rc.methods or ()) - {"HEAD", "OPTIONS"}, original)


def unit_routes(app: FastAPI) -> list[Route]:
    return [r for r in api_routes(app) if {"unit", "group"} & set(r.params)]


def is_public(path: str) -> bool:
    return path in PUBLIC_EXACT or path.startswith(PUBLIC_PREFIXES)


def _literal_values(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return None


def path_values(route: Route, group: str, unit: str, period: str) -> Iterator[dict[str, str]]:
    """Every combination of values to fill ``route``'s path with."""
    choices: dict[str, list[str]] = {}
    for name, annotation in route.params.items():
        if name == "unit":
            choices[name] = [unit]
        elif name == "group":
            choices[name] = [group]
        elif name == "period":
            choices[name] = [period]
        elif (values := _literal_values(annotation)) is not None:
            choices[name] = [str(v) for v in values]
        elif annotation is int:
            choices[name] = ["1"]
        else:
            choices[name] = OTHER_PARAMS.get(name, ["x"])
    names = list(choices)
    for combo in itertools.product(*(choices[n] for n in names)):
        yield dict(zip(names, combo, strict=True))


def sample(annotation: Any, name: str, ctx: dict[str, str]) -> Any:
    """A plausible value of type ``annotation`` for a field called ``name``, aimed at
    the unit/group/period in ``ctx`` (so the request reaches the permission check)."""
    if name in ctx and annotation in (str, str | None, None):
        return ctx[name]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if (values := _literal_values(annotation)) is not None:
        return values[0]
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return sample(non_none[0], name, ctx) if non_none else None
    if origin is typing.Annotated:
        return sample(args[0], name, ctx)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {
            field: sample(info.annotation, field, ctx)
            for field, info in annotation.model_fields.items()
        }
    if origin is dict:
        return {ctx["variable"]: sample(args[1] if args else float, "value", ctx)}
    if origin in (list, set, tuple):
        return [sample(args[0] if args else str, name, ctx)]
    if annotation is bool:
        return False
    if annotation is int:
        return 1
    if annotation is float:
        return 1.0
    return "测试 test"


def request_kwargs(route: Route, ctx: dict[str, str]) -> dict[str, Any]:
    """A body for an unsafe request: form fields, a file, or JSON, as the route declares."""
    form: dict[str, Any] = {}
    files: dict[str, Any] = {}
    body: Any = None
    for p in route.route.dependant.body_params:
        kind = type(p.field_info).__name__
        annotation = p.field_info.annotation
        if annotation is UploadFile or kind == "File":
            files[p.name] = ("data.csv", b"unit,period\n", "text/csv")
        elif kind == "Form":
            form[p.name] = str(sample(annotation, p.name, ctx))
        else:
            body = sample(annotation, p.name, ctx)
    if files:
        return {"data": form, "files": files}
    if form:
        return {"data": form}
    if body is not None:
        return {"json": body}
    return {}


# --- the database before and after -------------------------------------------------------


def snapshot(app: FastAPI) -> dict[str, str]:
    """A digest of every table's rows (sign-in bookkeeping excepted)."""
    out: dict[str, str] = {}
    with app.state.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in VOLATILE:
                continue
            rows = conn.execute(select(table)).all()
            digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
            out[table.name] = f"{len(rows)}:{digest[:16]}"
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [t for t in before if before[t] != after.get(t)]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def app(db_url: str) -> FastAPI:
    return create_app(db_url)


def session_client(app: FastAPI, username: str) -> Client:
    c = Client(app)
    c.sign_in_as(username)
    return c


def token_client(app: FastAPI, username: str) -> Client:
    with transaction(app.state.sessions) as s:
        secret, _ = create_api_token(s, user_by_name(s, username), "access test")
    c = Client(app)
    c.token = secret
    return c


def variable_of(app: FastAPI, unit: str, period: str | None = None) -> str:
    """A variable with a stored value for ``unit`` (in ``period`` if given)."""
    with transaction(app.state.sessions) as s:
        stmt = (
            select(DataValue.variable)
            .join(OrgUnit, OrgUnit.id == DataValue.unit_id)
            .where(OrgUnit.code == unit)
            .order_by(DataValue.variable)
        )
        if period is not None:
            stmt = stmt.where(DataValue.period == period)
        var = s.scalar(stmt)
    assert var, f"no data stored for {unit} {period or ''}"
    return var


def value_of(app: FastAPI, unit: str, period: str, variable: str) -> float | None:
    with transaction(app.state.sessions) as s:
        return s.scalar(
            select(DataValue.value)
            .join(OrgUnit, OrgUnit.id == DataValue.unit_id)
            .where(OrgUnit.code == unit, DataValue.period == period, DataValue.variable == variable)
        )


def targets() -> Iterator[tuple[str, str | None, str]]:
    """(group, unit or None, period) the reporter of V0000 must not reach."""
    for group, unit in OTHER_UNITS:
        for period in PERIODS[group]:
            yield group, unit, period
    for group in OTHER_GROUPS:
        for period in PERIODS[group]:
            yield group, None, period


def probe(app: FastAPI, client: Client) -> tuple[list[str], list[str]]:
    """Call every unit/group route for every target: (wrong answers, db changes)."""
    wrong: list[str] = []
    writes: list[str] = []
    for route in unit_routes(app):
        before = snapshot(app)
        for group, unit, period in targets():
            if ("unit" in route.params) != (unit is not None):
                continue  # unit routes get the other units, group-only routes the other groups
            unit_code = unit or "V0010"
            ctx = {
                "unit": unit_code,
                "group": group,
                "period": period,
                "variable": variable_of(app, unit_code),
            }
            for values in path_values(route, group, unit_code, period):
                url = route.path.format(**values)
                for method in sorted(route.methods):
                    kwargs = request_kwargs(route, ctx) if method != "GET" else {}
                    r = client.request(method, url, **kwargs)
                    if r.status_code not in (403, 404):
                        wrong.append(f"{method} {url} → {r.status_code}: {r.text[:160]!r}")
        after = snapshot(app)
        if diff := changed(before, after):
            writes.append(f"{route.path}: {', '.join(diff)}")
    return wrong, writes


# --- the matrix -------------------------------------------------------------------------------


def test_the_walk_finds_the_routes(app: FastAPI) -> None:
    """The walk sees the routes of every router (a walk that sees nothing tests nothing)."""
    paths = {r.path for r in api_routes(app)}
    assert {"/login", "/account", "/api/me", "/admin/users/{username}/disable"} <= paths
    found = {r.path for r in unit_routes(app)}
    # every path with {unit} or {group} is walked
    assert found == {p for p in paths if "{unit}" in p or "{group}" in p}
    assert all(route.methods for route in unit_routes(app)), (
        "every walked route has a method to call"
    )


def test_reporter_session_cannot_reach_other_units(app: FastAPI) -> None:
    wrong, writes = probe(app, session_client(app, REPORTER))
    assert not writes, "refused requests changed the database:\n" + "\n".join(writes)
    assert not wrong, "a reporter reached another unit:\n" + "\n".join(wrong)


def test_reporter_token_cannot_reach_other_units(app: FastAPI) -> None:
    wrong, writes = probe(app, token_client(app, REPORTER))
    assert not writes, "refused requests changed the database:\n" + "\n".join(writes)
    assert not wrong, "a reporter's API token reached another unit:\n" + "\n".join(wrong)


def test_public_is_refused_every_non_public_route(app: FastAPI) -> None:
    public = Client(app)
    wrong: list[str] = []
    before = snapshot(app)
    for route in api_routes(app):
        if is_public(route.path):
            continue
        ctx = {"unit": "V0000", "group": "T000", "period": "2022", "variable": "births_total"}
        values = next(path_values(route, "T000", "V0000", "2022"))
        url = route.path.format(**values)
        for method in sorted(route.methods):
            kwargs = request_kwargs(route, ctx) if method != "GET" else {}
            r = public.request(method, url, **kwargs)
            location = r.headers.get("location", "")
            if r.status_code in (401, 403) or (
                r.status_code in (302, 303, 307) and location.startswith("/login")
            ):
                continue
            wrong.append(f"{method} {url} → {r.status_code} {location}: {r.text[:120]!r}")
    assert changed(before, snapshot(app)) == [], "the public changed the database"
    assert not wrong, "the public reached a non-public route:\n" + "\n".join(wrong)


def test_public_routes_are_few_and_known(app: FastAPI) -> None:
    """Adding a public route is a decision: it must appear in this list."""
    public = sorted({r.path for r in api_routes(app) if is_public(r.path)})
    allowed_roots = (
        "/",
        "/login",
        "/logout",
        "/lang/",
        "/public",
        "/points",
        "/api/public/",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/static",
    )
    assert all(p == "/" or p.startswith(allowed_roots[1:]) for p in public), public


def test_unsafe_requests_need_csrf_with_a_session(app: FastAPI) -> None:
    """A signed-in browser's unsafe request to any route without the CSRF token is
    refused before the route runs (a forged cross-site form cannot do anything)."""
    import asyncio

    import httpx

    client = session_client(app, "admin")
    before = snapshot(app)
    wrong: list[str] = []

    async def bare(method: str, url: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            cookies=client.cookies,
        ) as c:
            return await c.request(method, url, data={"x": "1"})

    for route in api_routes(app):
        values = next(path_values(route, "T000", "V0000", "2022"))
        url = route.path.format(**values)
        for method in sorted(route.methods - {"GET"}):
            r = asyncio.run(bare(method, url))
            if r.status_code != 403:
                wrong.append(f"{method} {url} → {r.status_code}")
    assert changed(before, snapshot(app)) == []
    assert not wrong, "\n".join(wrong)


# --- the permission functions ---------------------------------------------------------------

#: who may read / write / review which unit (True = allowed)
MATRIX: dict[str, dict[str, tuple[bool, bool, bool]]] = {
    #            unit:   (read, write, review)
    "admin": {u: (True, True, True) for u in ("V0000", "V0010", "C01", "T000", "ST01")},
    "assessor_t000": {
        "V0000": (True, True, True),
        "V0001": (True, True, True),
        "T000": (True, True, True),
        "V0010": (False, False, False),
        "C01": (False, False, False),
        "T001": (False, False, False),
    },
    "assessor_st01": {
        "C01": (True, True, True),
        "ST01": (True, True, True),
        "V0000": (False, False, False),
        "T000": (False, False, False),
    },
    "reporter_v0000": {
        "V0000": (True, True, False),
        "V0001": (False, False, False),
        "V0010": (False, False, False),
        "T000": (False, False, False),
        "C01": (False, False, False),
    },
    "reporter_c01": {
        "C01": (True, True, False),
        "C02": (False, False, False),
        "ST01": (False, False, False),
        "V0000": (False, False, False),
    },
    "viewer": {u: (True, False, False) for u in ("V0000", "V0010", "C01", "T000")},
}


@pytest.mark.parametrize("username", list(MATRIX))
def test_permission_matrix(db, username: str) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, username)
    for code, (read, write, review) in MATRIX[username].items():
        unit = db.scalar(select(OrgUnit).where(OrgUnit.code == code))
        assert unit is not None, code
        assert can_read(db, user, unit) is read, (username, code, "read")
        assert can_write(db, user, unit) is write, (username, code, "write")
        assert can_review(db, user, unit) is review, (username, code, "review")


def test_nobody_signed_in_may_do_nothing(db) -> None:  # type: ignore[no-untyped-def]
    unit = db.scalar(select(OrgUnit).where(OrgUnit.code == "V0000"))
    assert not can_read(db, None, unit)
    assert not can_write(db, None, unit)
    assert not can_review(db, None, unit)


def test_scopes(db) -> None:  # type: ignore[no-untyped-def]
    codes = dict(db.execute(select(OrgUnit.id, OrgUnit.code)).all())
    assert scope_ids(db, user_by_name(db, "admin")) is None
    assert {codes[i] for i in scope_ids(db, user_by_name(db, REPORTER)) or ()} == {"V0000"}
    t000 = {codes[i] for i in scope_ids(db, user_by_name(db, "assessor_t000")) or ()}
    assert "T000" in t000 and "V0000" in t000 and "V0009" in t000
    assert not t000 & {"V0010", "T001", "ST01", "C01", "X01"}


def test_every_test_user_is_in_the_matrix_or_tested_elsewhere() -> None:
    assert set(MATRIX) <= set(TEST_USERS)


# --- a reporter's own unit ------------------------------------------------------------------


def test_reporter_reads_and_writes_its_own_unit_by_page(app: FastAPI) -> None:
    client = session_client(app, REPORTER)
    var = variable_of(app, "V0000", "2022")
    r = client.get("/data/V0000/2022")
    assert r.status_code == 200, r.text[:300]
    assert "V0000" in r.text and f'name="v_{var}"' in r.text
    r = client.post("/data/V0000/2022", data={f"v_{var}": "7", "reason": "access test"})
    assert r.status_code in (200, 303), r.text[:300]
    assert value_of(app, "V0000", "2022", var) == 7
    # the same form for the neighbour is refused, nothing written
    var1 = variable_of(app, "V0001", "2022")
    old = value_of(app, "V0001", "2022", var1)
    before = snapshot(app)
    r = client.post("/data/V0001/2022", data={f"v_{var1}": "7", "reason": "access test"})
    assert r.status_code == 403
    assert changed(before, snapshot(app)) == [] and value_of(app, "V0001", "2022", var1) == old


def test_reporter_reads_and_writes_its_own_unit_by_api(app: FastAPI) -> None:
    client = token_client(app, REPORTER)
    var = variable_of(app, "V0000", "2022")
    r = client.get("/api/data/V0000/2022")
    assert r.status_code == 200, r.text[:300]
    assert r.json()["unit"] == "V0000"
    r = client.put("/api/data/V0000/2022", json={"values": {var: 7}, "reason": "access test"})
    assert r.status_code == 200, r.text[:300]
    assert value_of(app, "V0000", "2022", var) == 7
    # and the same request for the neighbour is refused, nothing written
    before = snapshot(app)
    var1 = variable_of(app, "V0001", "2022")
    r = client.put("/api/data/V0001/2022", json={"values": {var1: 7}, "reason": "access test"})
    assert r.status_code == 403
    assert changed(before, snapshot(app)) == []


def test_reporter_cannot_write_another_unit_through_a_bulk_import(app: FastAPI) -> None:
    """Units named in a request body (not the path) are checked too."""
    client = token_client(app, REPORTER)
    var = variable_of(app, "V0001", "2022")
    before = snapshot(app)
    body = {
        "dataValues": [{"unit": "V0001", "period": "2022", "variable": var, "value": 99}],
        "reason": "access test",
    }
    r = client.post("/api/dataValueSets", json=body)
    assert r.status_code in (403, 404, 409, 422) or r.json().get("status") == "ERROR", r.text
    assert changed(before, snapshot(app)) == []


def test_reporter_cannot_appeal_for_another_unit(app: FastAPI) -> None:
    client = token_client(app, REPORTER)
    before = snapshot(app)
    r = client.post("/api/appeals", json={"unit": "V0001", "period": "2022", "text": "不服"})
    assert r.status_code in (403, 404), r.text
    assert changed(before, snapshot(app)) == []


def test_database_reads_are_not_blocked(app: FastAPI) -> None:
    """Sanity for the snapshot helper: it sees a change."""
    before = snapshot(app)
    with app.state.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE data_value SET value = value + 1 WHERE id = (SELECT min(id) FROM data_value)"
            )
        )
    assert changed(before, snapshot(app)) == ["data_value"]


def test_the_probe_catches_a_leaky_route(app: FastAPI) -> None:
    """The walk is not vacuous: a route that forgets its permission check is caught,
    both for answering and for writing."""

    def leaky_read(unit: str, period: str) -> dict[str, str]:
        return {"unit": unit, "period": period}

    def leaky_write(db: Db, group: str, period: str) -> JSONResponse:
        # says "forbidden" but has written already (and the request commits)
        db.add(AuditEntry(action="leak", key=group, period=period))
        return JSONResponse({"detail": "forbidden"}, status_code=403)

    app.add_api_route("/api/leak/{unit}/{period}", leaky_read, methods=["GET"])
    app.add_api_route("/api/leak-write/{group}/{period}", leaky_write, methods=["POST"])
    wrong, writes = probe(app, token_client(app, REPORTER))
    assert any(w.startswith("GET /api/leak/V0001/2022 → 200") for w in wrong), wrong
    assert not [w for w in wrong if "/api/leak-write/" in w]  # it answers 403 …
    assert writes == ["/api/leak-write/{group}/{period}: audit_entry"]  # … but wrote
