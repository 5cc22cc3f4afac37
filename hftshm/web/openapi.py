"""The API's published contract: an OpenAPI 3.1 document, served at ``GET /api/openapi.json``.

Written out here (not inferred): each operation's roles (``x-roles``, from the permission table),
parameters, body and every response with its schema; every error is the ``Error`` object the app
answers (``hftshm.web.errors``). ``tests/integration/test_api_contract.py`` runs schemathesis
against a live server with this document, and checks that every route of the app is in it.
"""

from __future__ import annotations

from hftshm.security.roles import PERMISSIONS, Permission

ERROR = {"$ref": "#/components/schemas/Error"}
OBJ = {"type": "object"}


def _roles(permission: Permission | None) -> list[str]:
    if permission is None:
        return []
    return sorted(role.value for role, perms in PERMISSIONS.items() if permission in perms)


def _error(description: str, retry: bool = False) -> dict:
    out = {"description": description, "content": {"application/json": {"schema": ERROR}}}
    if retry:
        out["headers"] = {"Retry-After": {"description": "seconds until a retry can succeed",
                                          "schema": {"type": "string"}}}
    return out


def _ok(schema: dict, description: str = "OK", status: str = "200", media: str = "application/json") -> dict:
    return {status: {"description": description, "content": {media: {"schema": schema}}}}


def _op(summary: str, permission: Permission | None, responses: dict, *, params: list | None = None,
        body: dict | None = None, body_required: bool = True, errors: tuple[int, ...] = (), api: bool = True) -> dict:
    op: dict = {"summary": summary, "x-roles": _roles(permission), "responses": dict(responses)}
    if permission is not None:
        op["security"] = [{"bearer": []}]
        op["responses"]["401"] = _error("no token, or a token that does not verify")
        op["responses"]["403"] = _error("the token's role lacks the permission " + permission.value)
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
        op["responses"]["413"] = _error("body too large")
        op["responses"]["415"] = _error("the body is not application/json")
    for status in (400,) + tuple(errors):
        op["responses"].setdefault(str(status), _error({400: "bad parameters or body (the message says which)",
                                                        404: "no such item", 429: "too many requests",
                                                        501: "not supported by this server",
                                                        503: "a data source is unavailable"}[status],
                                                       retry=status == 429))
    if api:
        op["responses"].setdefault("429", _error("rate limit (per token subject); see Retry-After", retry=True))
    op["responses"]["405"] = _error("method not allowed")
    return op


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}}


NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows per page (default 100)"),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9}, "rows to skip")]
REASON = {"type": "string", "maxLength": 200}


def openapi_document(app=None) -> dict:
    from hftshm.audit.log import OUTCOMES, SOURCES
    from hftshm.codes import OrderState, TradingState

    trading_states = [s.name.lower() for s in TradingState]
    order_states = [s.name.lower() for s in OrderState]
    risk_status = {"type": "object", "required": ["running", "kill_switch", "trading_state", "limits"],
                   "properties": {"running": {"type": "boolean"}, "kill_switch": {"type": "boolean"},
                                  "trading_state": {"type": "string", "enum": trading_states},
                                  "limits": OBJ, "persisted": OBJ}}
    page_of = lambda key: {"type": "object", "required": [key, "total"],  # noqa: E731
                           "properties": {key: {"type": "array", "items": OBJ}, "total": {"type": "integer"}}}
    R = Permission
    paths = {
        "/": {"get": _op("redirect to the dashboard", None, {"302": {"description": "to /dashboard"}}, api=False)},
        "/healthz": {"get": _op("liveness: platform running, workers up", None, _ok(OBJ), api=False)},
        "/metrics": {"get": _op("Prometheus exposition (text format 0.0.4)", None,
                                _ok({"type": "string"}, media="text/plain"), api=False)},
        "/dashboard": {"get": _op("the live dashboard page", None, _ok({"type": "string"}, media="text/html"),
                                  api=False)},
        "/dashboard/data": {"get": _op("what the dashboard polls", None, _ok(OBJ), errors=(503,), api=False)},
        "/static/{filename}": {"get": _op("the dashboard's script and style", None,
                                          {"200": {"description": "the file"}}, errors=(404,), api=False,
                                          params=[_path("filename", "file name")])},
        "/api": {"get": _op("the API's routes", R.READ, _ok({"type": "object", "required": ["routes"]}))},
        "/api/openapi.json": {"get": _op("this document", None, _ok(OBJ))},
        "/api/token": {"post": {
            **_op("a token for client credentials (OAuth2 client_credentials)", None,
                  _ok({"type": "object", "required": ["access_token", "token_type", "expires_in", "role"]}),
                  errors=(429,)),
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "object", "required": ["client_id", "client_secret"],
                                                "additionalProperties": False,
                                                "properties": {"grant_type": {"enum": ["client_credentials"]},
                                                               "client_id": {"type": "string", "maxLength": 64},
                                                               "client_secret": {"type": "string", "maxLength": 512}}}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
        }},
        "/api/positions": {"get": _op("positions and total PnL", R.READ, _ok(OBJ))},
        "/api/risk/status": {"get": _op("kill switch, trading state, limits, the risk account (also with no "
                                        "platform: persisted controls and the last run's figures)", R.READ,
                                        _ok(risk_status), errors=(503,))},
        "/api/risk/kill-switch": {"post": _op(
            "turn the kill switch on or off (persisted; audited)", R.RISK_CONTROL, _ok(risk_status),
            body={"type": "object", "required": ["active"], "additionalProperties": False,
                  "properties": {"active": {"type": "boolean"}, "reason": REASON}}, errors=(503,))},
        "/api/risk/trading-state": {"post": _op(
            "set the trading state (persisted; audited)", R.RISK_CONTROL, _ok(risk_status),
            body={"type": "object", "required": ["state"], "additionalProperties": False,
                  "properties": {"state": {"type": "string", "enum": trading_states}, "reason": REASON}},
            errors=(501, 503))},
        "/api/orders": {"get": _op("a page of orders, newest first", R.READ, _ok(page_of("orders")), params=[
            _query("state", {"type": "string", "enum": order_states}, "order state"),
            _query("strategy", NAME, "strategy name"), _query("symbol", NAME, "symbol"), *PAGE], errors=(503,))},
        "/api/trades": {"get": _op("a page of trades (fills), newest first", R.READ, _ok(page_of("trades")), params=[
            _query("strategy", NAME, "strategy name"), _query("symbol", NAME, "symbol"), *PAGE], errors=(503,))},
        "/api/metrics/data": {"get": _op("the platform snapshot as JSON, with latency summaries", R.READ, _ok(OBJ))},
        "/api/backtest": {
            "get": _op("backtest jobs", R.READ, _ok({"type": "object", "required": ["backtests"]}), errors=(503,)),
            "post": {**_op("submit a backtest (audited)", R.BACKTEST,
                           {"202": {"description": "accepted; Location names the job",
                                    "content": {"application/json": {"schema": OBJ}}}},
                           body={"type": "object", "properties": {
                               "strategy": {"type": "string"}, "params": OBJ, "data": {"type": "string"},
                               "seed": {"type": "integer"}, "symbol": {"type": "string"}}},
                           body_required=False, errors=(429, 503))},
        },
        "/api/backtest/{job_id}": {"get": _op("one backtest job", R.READ, _ok(OBJ), errors=(404, 503),
                                              params=[_path("job_id", "job id")])},
        "/api/strategies": {"get": _op("strategies and their states", R.READ,
                                       _ok({"type": "object", "required": ["strategies"]}))},
        "/api/strategies/{name}/pause": {"post": _op(
            "pause a strategy (audited)", R.STRATEGY_CONTROL, _ok(OBJ), params=[_path("name", "strategy name")],
            body={"type": "object", "additionalProperties": False, "properties": {"reason": REASON}},
            body_required=False, errors=(404, 503))},
        "/api/strategies/{name}/resume": {"post": _op(
            "resume a strategy (audited)", R.STRATEGY_CONTROL, _ok(OBJ), params=[_path("name", "strategy name")],
            body={"type": "object", "additionalProperties": False, "properties": {"reason": REASON}},
            body_required=False, errors=(404, 503))},
        "/api/audit": {"get": _op("the audit of control actions, newest first", R.AUDIT_READ, _ok(page_of("audit")),
                                  params=[_query("action", NAME, "only this action"),
                                          _query("source", {"type": "string", "enum": list(SOURCES)}, "only this source"),
                                          _query("outcome", {"type": "string", "enum": list(OUTCOMES)},
                                                 "applied or refused"), *PAGE], errors=(503,))},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "hftshm API", "version": "1",
                 "description": "Positions, orders, trades, risk controls, strategies, backtests and the audit "
                                "of control actions. Roles per operation in x-roles; every error is an Error."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "status", "message"], "properties": {
                "error": {"type": "string"}, "status": {"type": "integer"}, "message": {"type": "string", "minLength": 1},
                "reason": {"type": "string"}}}},
        },
    }


def document_paths(app) -> set[str]:
    """The app's routes in OpenAPI spelling (``/api/backtest/<job_id>`` -> ``/api/backtest/{job_id}``)."""
    import re

    return {re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules()}
