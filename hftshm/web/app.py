"""The web app: ``/metrics``, ``/healthz``, the live ``/dashboard`` and the JWT-protected ``/api``.

    app = create_app(web_config, view_provider, trading=provider, backtest_runner=run_backtest,
                     jwt_secret=secret)

``view_provider`` is a ``hftshm.metrics.snapshot.PlatformView`` (workers, rings, histograms,
positions, strategies, risk state); ``trading`` a ``hftshm.web.provider.TradingProvider`` (orders,
trades, kill switch, strategy control). Each app has its own Prometheus registry, so several apps
(tests) never share counters.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from typing import Callable

from flask import Flask, Response, g, jsonify, redirect, render_template, request
from flask.json.provider import DefaultJSONProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hftshm.audit.controls import Actor, OperatorControls
from hftshm.audit.log import OUTCOMES, SOURCES, AuditEntry, AuditLog
from hftshm.codes import OrderState, TradingState
from hftshm.metrics.collector import PlatformCollector, split_histogram_name
from hftshm.metrics.histogram import summarize
from hftshm.metrics.snapshot import PlatformSnapshot, PlatformView, RiskSnapshot
from hftshm.security import tokens
from hftshm.security.roles import Permission
from hftshm.units import ACCOUNT_UNIT
from hftshm.web import errors, validation as v
from hftshm.web.abuse import Limiter
from hftshm.web.auth import Authenticator
from hftshm.web.config import WebConfig
from hftshm.web.dashboard import DashboardModel
from hftshm.web.errors import ApiError, bad_request
from hftshm.web.jobs import BacktestJobs, QueueFull
from hftshm.web.openapi import openapi_document
from hftshm.web.provider import MemoryTradingProvider, TradingProvider, Unavailable, UnknownStrategy

log = logging.getLogger("hftshm.web")

ORDER_STATES = [s.name.lower() for s in OrderState]
TRADING_STATES = [s.name.lower() for s in TradingState]
RECENT_ROWS = 15
# scripts and styles only from this server (the dashboard has no inline script or style), nobody may
# frame the page (clickjacking the kill-switch button), forms and base URLs stay here
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")


def create_app(config: WebConfig, view_provider: PlatformView, *, trading: TradingProvider | None = None,
               backtest_runner: Callable[[dict], dict] | None = None, jwt_secret: str,
               fallback: Callable[[], PlatformSnapshot | None] | None = None,
               controls: OperatorControls | None = None, audit: AuditLog | None = None,
               limits: dict | None = None) -> Flask:
    """Build the app. ``fallback`` supplies what to show when no platform is attached (zeros, or
    the last run's values); ``jwt_secret`` must already be resolved (``security.tokens.resolve_secret``).
    ``controls`` (``hftshm.audit.controls.OperatorControls``) makes the kill switch and trading state
    durable and usable with no platform running; ``audit`` records every control action (defaults to
    ``controls.audit``); ``limits`` is what GET /api/risk/status reports as the limits in force."""
    from hftshm.security.tokens import check_secret_strength

    check_secret_strength(jwt_secret, "create_app(jwt_secret=...)")
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json = _FiniteJSONProvider(app)
    app.json.sort_keys = False
    registry = CollectorRegistry(auto_describe=False)
    collector = PlatformCollector(view_provider, fallback)
    registry.register(collector)
    auth = Authenticator(config, jwt_secret, registry)
    trading = trading if trading is not None else MemoryTradingProvider()
    jobs = BacktestJobs(backtest_runner) if backtest_runner is not None else None
    model = DashboardModel()
    audit = audit if audit is not None else (controls.audit if controls is not None else None)
    if controls is not None:
        from hftshm.web.controls_metrics import ControlsCollector

        registry.register(ControlsCollector(controls, audit))
    rate = Limiter(config.rate_limit_per_s, 1, "api")
    logins = Limiter(config.login_failures, config.login_window_s, "login")
    collector.listeners.append(model.sample)  # Prometheus scrapes keep the charts' history going too
    app.extensions["hftshm"] = {"registry": registry, "auth": auth, "trading": trading, "jobs": jobs,
                                "collector": collector, "model": model, "controls": controls, "audit": audit}
    errors.install(app)

    def snapshot() -> PlatformSnapshot:
        return collector.current_snapshot()

    def actor() -> str:
        principal = getattr(g, "principal", None)
        return f"{principal.subject} ({principal.role.value})" if principal else "anonymous"

    def api_actor() -> Actor:
        principal = getattr(g, "principal", None)
        if principal is None:
            return Actor("anonymous", "", "api")
        return Actor(principal.subject, principal.role.value, "api")

    def record(action: str, *, target: str = "", previous: str = "", new: str = "", outcome: str = "applied",
               detail: str = "", actor: Actor | None = None) -> None:
        if audit is None:
            return
        who = actor or api_actor()
        audit.record(AuditEntry(action=action, actor=who.name, role=who.role, source="api", target=target,
                                previous=previous, new=new, outcome=outcome, detail=detail[:1000]))

    def require_control(permission: Permission, action: str, new: str, target: str = ""):
        """``auth.require`` for a control action: a refusal by role is audited with who tried."""
        try:
            return auth.require(permission)
        except ApiError as exc:
            refused = getattr(g, "refused_principal", None)
            if exc.status == 403 and refused is not None:
                record(action, target=target, new=new, outcome="refused", detail=exc.message,
                       actor=Actor(refused.subject, refused.role.value, "api"))
            raise

    def provider_call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Unavailable as exc:
            raise ApiError(503, str(exc)) from None
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    # -- open routes -----------------------------------------------------------------------------

    @app.get("/")
    def index():
        return redirect("/dashboard")

    @app.get("/healthz")
    def healthz():
        if not config.healthz_open:
            auth.require(Permission.READ)
        snap = snapshot()
        failed = [w.name for w in snap.workers if w.state == "failed"]
        return jsonify({"status": "degraded" if failed else "ok", "platform_running": snap.running,
                        "run_id": snap.run_id, "workers_up": sum(1 for w in snap.workers if w.up),
                        "workers": len(snap.workers), "failed_workers": failed})

    @app.get("/metrics")
    def metrics():
        if not config.metrics_open:
            auth.require(Permission.READ)
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.get("/dashboard")
    def dashboard():
        return render_template("dashboard.html", refresh_ms=int(config.refresh_s * 1000),
                               token_required=config.require_token_for_dashboard)

    @app.get("/dashboard/data")
    def dashboard_data():
        if config.require_token_for_dashboard:
            auth.require(Permission.READ)
        snap = snapshot()
        orders = provider_call(trading.orders, limit=RECENT_ROWS, offset=0)[0]
        trades = provider_call(trading.trades, limit=RECENT_ROWS, offset=0)[0]
        data = model.render(snap, orders, trades)
        if controls is not None:
            # the controls the next start applies (or the running block's): the kill-switch button and
            # the "started halted" banner work with or without a platform
            persisted = controls.store.load()
            risk = data["risk"] or {"orders_checked": 0, "orders_approved": 0, "open_orders": 0,
                                    "rejects_by_reason": {}, "daily_pnl": 0.0, "changed_unix_ns": 0}
            if not snap.running:
                risk.update(kill_switch=persisted["kill_switch"], trading_state=persisted["trading_state"],
                            changed_unix_ns=persisted["changed_unix_ns"])
            risk["persisted"] = {k: persisted[k] for k in ("kill_switch", "trading_state", "changed_by", "source")}
            data["risk"] = risk
        return jsonify(data)

    # -- /api --------------------------------------------------------------------------------------

    @app.post("/api/token")
    def token():
        if request.mimetype == "application/x-www-form-urlencoded":
            form = request.form
            unknown = sorted(set(form) - {"grant_type", "client_id", "client_secret"})
            if unknown:
                raise bad_request(f"unknown field(s) {', '.join(unknown)}; "
                                  "allowed: grant_type, client_id, client_secret")
            if form.get("grant_type", "client_credentials") != "client_credentials":
                raise bad_request("grant_type must be client_credentials")
            body = {"client_id": form.get("client_id", ""), "client_secret": form.get("client_secret", "")}
        else:
            body = v.json_body({"grant_type": v.choice(["client_credentials"]), "client_id": v.text(64),
                                "client_secret": v.text(512)}, required=("client_id", "client_secret"))
        if not body["client_id"] or not body["client_secret"]:
            raise bad_request("client_id and client_secret must not be empty")
        client_id = body["client_id"][:64]
        keys = (f"id:{client_id}", f"ip:{request.remote_addr}")
        wait = max(logins.test(k) for k in keys)
        anonymous = Actor(client_id, "", "api")
        if wait:
            record("login", target=client_id, outcome="refused", actor=anonymous,
                   detail=f"backing off after repeated failed logins; retry in {wait:.0f} s")
            raise ApiError(429, f"too many failed logins for this client or address; retry in {wait:.0f} s",
                           reason="login_backoff", headers={"Retry-After": str(int(wait))})
        try:
            return jsonify(auth.issue_for_client(client_id, body["client_secret"]))
        except ApiError as exc:
            for key in keys:
                logins.hit(key)
            record("login", target=client_id, outcome="refused", actor=anonymous, detail=exc.message)
            raise

    @app.get("/api")
    def api_index():
        auth.require(Permission.READ)
        routes = sorted(f"{','.join(sorted(r.methods - {'HEAD', 'OPTIONS'}))} {r.rule}"
                        for r in app.url_map.iter_rules() if r.rule.startswith("/api"))
        return jsonify({"routes": routes})

    @app.get("/api/positions")
    def positions():
        auth.require(Permission.READ)
        v.query({})
        snap = snapshot()
        # each position in its own units (market, qty_unit, pnl_unit); the total in the account's
        return jsonify({"running": snap.running, "positions": [_plain(asdict(p)) for p in snap.positions],
                        "symbols": _plain(snap.by_symbol()),
                        **_pnl_totals(snap)})

    def risk_status() -> dict:
        snap = snapshot()
        if snap.risk is None and controls is None:
            raise ApiError(503, "no risk state: the platform is not running (or runs without a risk stage)")
        # not running: the last run's figures (the fallback snapshot), with the persisted controls
        body = {"running": snap.running, **_plain(asdict(snap.risk if snap.risk is not None else RiskSnapshot()))}
        if controls is not None:
            persisted = controls.store.load()
            body["persisted"] = {k: persisted[k] for k in ("kill_switch", "trading_state", "changed_unix_ns",
                                                           "changed_by", "source")}
            if not snap.running:
                body["kill_switch"] = persisted["kill_switch"]
                body["trading_state"] = persisted["trading_state"]
        body["limits"] = limits or {}
        return body

    @app.get("/api/risk/status")
    def get_risk_status():
        auth.require(Permission.READ)
        v.query({})
        return jsonify(risk_status())

    @app.post("/api/risk/kill-switch")
    def kill_switch():
        wanted = _peek_json().get("active")
        principal = require_control(Permission.RISK_CONTROL, "kill_switch",
                                    {True: "on", False: "off"}.get(wanted, "?") if isinstance(wanted, bool) else "?")
        body = v.json_body({"active": v.boolean, "reason": v.text(200)}, required=("active",))
        if controls is not None:
            controls.set_kill_switch(body["active"], api_actor(), detail=body.get("reason") or "")
            return jsonify(risk_status())
        provider_call(trading.set_kill_switch, body["active"], actor=actor())
        record("kill_switch", new="on" if body["active"] else "off", detail=body.get("reason") or "")
        log.warning("kill switch %s by %s (%s)%s", "ON" if body["active"] else "off", principal.subject,
                    principal.role.value, f": {body['reason']}" if body.get("reason") else "")
        return jsonify(risk_status())

    @app.post("/api/risk/trading-state")
    def trading_state():
        principal = require_control(Permission.RISK_CONTROL, "trading_state", str(_peek_json().get("state", "?"))[:40])
        body = v.json_body({"state": v.choice(TRADING_STATES), "reason": v.text(200)}, required=("state",))
        if controls is not None:
            controls.set_trading_state(body["state"], api_actor(), detail=body.get("reason") or "")
            return jsonify(risk_status())
        setter = getattr(trading, "set_trading_state", None)
        if setter is None:
            raise ApiError(501, "this platform does not support setting the trading state from the API")
        provider_call(setter, body["state"], actor=actor())
        record("trading_state", new=body["state"], detail=body.get("reason") or "")
        log.warning("trading state %s by %s (%s)", body["state"], principal.subject, principal.role.value)
        return jsonify(risk_status())

    page = {"limit": v.int_param(1, 1000), "offset": v.int_param(0, 10**9)}

    @app.get("/api/orders")
    def orders():
        auth.require(Permission.READ)
        q = v.query({"state": v.choice(ORDER_STATES), "strategy": v.name_param(), "symbol": v.name_param(), **page},
                    {"limit": 100, "offset": 0})
        rows, total = provider_call(trading.orders, **{k: q.get(k) for k in ("state", "strategy", "symbol")},
                                    limit=q["limit"], offset=q["offset"])
        return jsonify({"orders": rows, "total": total, "limit": q["limit"], "offset": q["offset"]})

    @app.get("/api/trades")
    def trades():
        auth.require(Permission.READ)
        q = v.query({"strategy": v.name_param(), "symbol": v.name_param(), **page}, {"limit": 100, "offset": 0})
        rows, total = provider_call(trading.trades, strategy=q.get("strategy"), symbol=q.get("symbol"),
                                    limit=q["limit"], offset=q["offset"])
        return jsonify({"trades": rows, "total": total, "limit": q["limit"], "offset": q["offset"]})

    @app.get("/api/metrics/data")
    def metrics_data():
        auth.require(Permission.READ)
        v.query({})
        snap = snapshot()
        data = snap.to_dict()
        data.pop("histograms")
        data["latency"] = {}
        for name, counts in sorted(snap.histograms.items()):
            worker, stage = split_histogram_name(name)
            data["latency"][name] = {"worker": worker, "stage": stage, **_plain(summarize(counts).as_dict())}
        data.update(_pnl_totals(snap))
        return jsonify(data)

    # -- backtests ---------------------------------------------------------------------------------

    def need_jobs() -> BacktestJobs:
        if jobs is None:
            raise ApiError(503, "backtests are not available in this server (no backtest runner configured)")
        return jobs

    @app.post("/api/backtest")
    def start_backtest():
        principal = require_control(Permission.BACKTEST, "backtest_submit", "?")
        runner_jobs = need_jobs()
        raw = _json_object() if request.get_data().strip() else {}
        try:
            params = runner_jobs.validate(raw)
        except (ValueError, KeyError) as exc:
            record("backtest_submit", new=json.dumps(raw)[:400], outcome="refused", detail=f"bad parameters: {exc}")
            raise bad_request(f"bad backtest parameters: {exc}") from None
        try:
            job = runner_jobs.submit(params, principal.subject)
        except QueueFull as exc:
            record("backtest_submit", new=json.dumps(params, default=str)[:400], outcome="refused", detail=str(exc))
            raise ApiError(429, str(exc)) from None
        record("backtest_submit", target=str(job["id"]), new=json.dumps(params, default=str)[:400])
        response = jsonify(job)
        response.status_code = 202
        response.headers["Location"] = f"/api/backtest/{job['id']}"
        return response

    @app.get("/api/backtest")
    def list_backtests():
        auth.require(Permission.READ)
        v.query({})
        return jsonify({"backtests": need_jobs().list()})

    @app.get("/api/backtest/<job_id>")
    def get_backtest(job_id: str):
        auth.require(Permission.READ)
        job = need_jobs().get(job_id)
        if job is None:
            raise ApiError(404, f"no backtest {job_id!r}; GET /api/backtest lists them")
        return jsonify(job)

    # -- strategies --------------------------------------------------------------------------------

    @app.get("/api/strategies")
    def strategies():
        auth.require(Permission.READ)
        v.query({})
        snap = snapshot()
        paused = getattr(trading, "paused", {})
        rows = [_plain(asdict(s)) for s in snap.strategies]
        known = {r["name"] for r in rows}
        rows += [{"name": n, "state": "paused" if p else "running"} for n, p in paused.items() if n not in known]
        return jsonify({"strategies": rows})

    def control_strategy(name: str, paused: bool):
        action = "strategy_pause" if paused else "strategy_resume"
        principal = require_control(Permission.STRATEGY_CONTROL, action, "paused" if paused else "running", name)
        v.name_param()("strategy name", name)
        body = v.json_body({"reason": v.text(200)}, allow_empty=True)
        try:
            provider_call(trading.set_strategy_paused, name, paused, actor=actor())
        except UnknownStrategy:
            record(action, target=name, outcome="refused", detail="no such strategy")
            raise ApiError(404, f"no strategy {name!r}; GET /api/strategies lists them") from None
        except ApiError as exc:
            record(action, target=name, outcome="refused", detail=exc.message)
            raise
        record(action, target=name, new="paused" if paused else "running", detail=body.get("reason") or "")
        log.warning("strategy %s %s by %s (%s)", name, "paused" if paused else "resumed", principal.subject,
                    principal.role.value)
        return jsonify({"strategy": name, "state": "paused" if paused else "running"})

    @app.post("/api/strategies/<name>/pause")
    def pause_strategy(name: str):
        return control_strategy(name, True)

    @app.post("/api/strategies/<name>/resume")
    def resume_strategy(name: str):
        return control_strategy(name, False)

    # -- audit and contract ---------------------------------------------------------------------

    @app.get("/api/audit")
    def audit_rows():
        auth.require(Permission.AUDIT_READ)
        q = v.query({"action": v.name_param(), "source": v.choice(list(SOURCES)), "outcome": v.choice(list(OUTCOMES)),
                     **page}, {"limit": 100, "offset": 0})
        if audit is None:
            raise ApiError(503, "this server keeps no audit (no OMS database configured)")
        try:
            rows, total = audit.rows(**{k: q.get(k) for k in ("action", "source", "outcome")}, limit=q["limit"],
                                     offset=q["offset"])
        except Exception as exc:  # noqa: BLE001 - a broken database: 503 with what failed
            raise ApiError(503, f"audit database unreachable: {exc.__class__.__name__}") from None
        return jsonify({"audit": rows, "total": total, "limit": q["limit"], "offset": q["offset"],
                        "pending_delivery": bool(audit.last_error)})

    @app.get("/api/openapi.json")
    def openapi():
        return jsonify(openapi_document(app))

    # -- abuse limits and security headers --------------------------------------------------------

    @app.before_request
    def rate_limit():
        if not request.path.startswith("/api"):
            return None
        key = request.remote_addr or "?"
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            try:  # by subject when the token verifies; a bad token counts against the address
                key = "sub:" + tokens.verify(header[7:].strip(), jwt_secret, issuer=config.issuer,
                                             audience=config.audience).subject
            except tokens.TokenError:
                pass
        wait = rate.hit(key)
        if wait:
            raise ApiError(429, f"rate limit: at most {config.rate_limit_per_s} requests per second; retry in "
                                f"{wait:.0f} s", reason="rate_limited", headers={"Retry-After": str(int(wait))})
        return None

    @app.after_request
    def no_cache(response):
        if request.path.startswith(("/api", "/dashboard/data", "/metrics", "/healthz")):
            response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    app.config["HFTSHM_STARTED"] = time.time()
    return app


class _FiniteJSONProvider(DefaultJSONProvider):
    """JSON has no NaN or Infinity (browsers refuse them): they go out as null."""

    def dumps(self, obj, **kwargs):
        return super().dumps(_finite(obj), **kwargs)


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(val) for k, val in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(val) for val in obj]
    return obj


def _json_object() -> dict:
    """A backtest body: any JSON object (the runner's ``validate`` checks its fields)."""
    if request.mimetype != "application/json":
        raise ApiError(415, "send the body as JSON with Content-Type: application/json "
                            f"(got {request.mimetype or 'none'!r})")
    try:
        data = json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request(f"the body must be a JSON object, found {type(data).__name__}")
    return data


def _peek_json() -> dict:
    """The body as a dict if it is one (for auditing what a refused request asked for), else {}."""
    data = request.get_json(silent=True, cache=True)
    return data if isinstance(data, dict) else {}


def _plain(data: dict) -> dict:
    return _finite(data)


def _pnl_totals(snap) -> dict:
    """``pnl_by_currency`` (each settlement currency's own totals) and, when the positions settle in one
    currency, ``pnl_total`` in ``pnl_total_unit`` as before; null with several: never one sum of two
    currencies."""
    several = snap.several_currencies
    return {"pnl_by_currency": _plain(snap.pnl_by_currency()),
            "pnl_total": None if several else snap.total_pnl, "pnl_total_unit": None if several else ACCOUNT_UNIT}
