"""The REST API: what each route returns over a real shared-memory view, and a JSON error with a
message for every bad request."""

from __future__ import annotations

import time

import jwt
import pytest

from hftshm.metrics.rig import MonitoringRig
from hftshm.web.app import create_app
from hftshm.web.config import WebConfig
from hftshm.web.provider import MemoryTradingProvider

SECRET = "web-api-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG"


def bearer(role="ops"):
    now = int(time.time())
    claims = {"sub": "tester", "role": role, "iss": "hftshm", "aud": "hftshm-api", "iat": now, "exp": now + 300}
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}


class Backtests:
    """A backtest runner with the validate hook: params must name a strategy."""

    def __init__(self):
        self.calls = []

    def validate(self, params):
        if "strategy" not in params:
            raise ValueError("strategy is required")
        return params

    def __call__(self, params):
        self.calls.append(params)
        if params["strategy"] == "boom":
            raise ValueError("strategy 'boom' blew up")
        return {"pnl": 12.5, "trades": 3}


@pytest.fixture
def env():
    with MonitoringRig() as rig:
        trading = MemoryTradingProvider(control=rig.control, strategies=["mm-btc", "momo-btc"])
        rig.attach_trading(trading)
        for _ in range(6):
            rig.step()
        runner = Backtests()
        app = create_app(WebConfig(), rig.view(), trading=trading, backtest_runner=runner, jwt_secret=SECRET)
        yield app.test_client(), rig, trading, runner
        app.extensions["hftshm"]["jobs"].shutdown()


def test_positions_risk_and_strategies_come_from_shared_memory(env):
    client, rig, trading, _ = env
    positions = client.get("/api/positions", headers=bearer("dev")).json
    assert [p["strategy"] for p in positions["positions"]] == ["mm-btc", "momo-btc"]
    assert positions["positions"][0]["quantity"] == pytest.approx(float(rig.strategy_rows[0]["position"]))
    # per symbol: both strategies trade BTCUSDT, their positions add up there
    btc = positions["symbols"]["BTCUSDT"]
    assert btc["strategies"] == ["mm-btc", "momo-btc"]
    assert btc["quantity"] == pytest.approx(sum(p["quantity"] for p in positions["positions"] if p["symbol"] == "BTCUSDT"))
    risk = client.get("/api/risk/status", headers=bearer("dev")).json
    assert risk["kill_switch"] is False and risk["orders_checked"] == int(rig.control.array[0]["checks"])
    strategies = client.get("/api/strategies", headers=bearer()).json["strategies"]
    assert {s["name"] for s in strategies} == {"mm-btc", "momo-btc"}


def test_kill_switch_reaches_the_control_block(env):
    client, rig, trading, _ = env
    on = client.post("/api/risk/kill-switch", json={"active": True, "reason": "drill"}, headers=bearer("risk"))
    assert on.status_code == 200 and on.json["kill_switch"] is True
    assert rig.control.kill_switch is True
    assert trading.actions[-1]["actor"] == "tester (risk)"
    off = client.post("/api/risk/kill-switch", json={"active": False}, headers=bearer("ops"))
    assert off.json["kill_switch"] is False and rig.control.kill_switch is False
    halted = client.post("/api/risk/trading-state", json={"state": "HALTED"}, headers=bearer("risk"))
    assert halted.status_code == 200 and halted.json["trading_state"] == "halted"


def test_orders_are_paged_and_filtered(env):
    client, _, trading, _ = env
    for i in range(30):
        trading.upsert_order({"client_order_id": f"x{i}", "strategy": "mm-btc" if i % 2 else "momo-btc",
                              "symbol": "BTCUSDT", "state": "filled" if i % 3 == 0 else "acknowledged"})
    total = client.get("/api/orders?limit=1000", headers=bearer()).json["total"]
    page = client.get("/api/orders?limit=5&offset=5", headers=bearer()).json
    assert page["total"] == total and len(page["orders"]) == 5 and page["offset"] == 5
    filled = client.get("/api/orders?state=filled&strategy=momo-btc&symbol=BTCUSDT&limit=1000", headers=bearer()).json
    assert filled["orders"] and all(o["state"] == "filled" and o["strategy"] == "momo-btc" for o in filled["orders"])
    trades = client.get("/api/trades?limit=2", headers=bearer()).json
    assert len(trades["trades"]) <= 2 and trades["total"] >= len(trades["trades"])


def test_metrics_data_has_percentiles(env):
    client, *_ = env
    data = client.get("/api/metrics/data", headers=bearer("dev")).json
    check = data["latency"]["risk.hop"]
    assert check["count"] == 3000 and 0 < check["p50_ns"] <= check["p99_ns"] <= check["p999_ns"]
    assert {w["name"] for w in data["workers"]} == {"feed", "strategies", "risk", "oms", "exchange"}


def test_backtest_jobs(env):
    client, _, _, runner = env
    started = client.post("/api/backtest", json={"strategy": "mm-btc", "days": 1}, headers=bearer("dev"))
    assert started.status_code == 202
    job_id = started.json["id"]
    assert started.headers["Location"] == f"/api/backtest/{job_id}"
    failing = client.post("/api/backtest", json={"strategy": "boom"}, headers=bearer("dev")).json["id"]
    deadline = time.time() + 20
    while time.time() < deadline:
        states = {j["id"]: j["state"] for j in client.get("/api/backtest", headers=bearer()).json["backtests"]}
        if states.get(job_id) == "succeeded" and states.get(failing) == "failed":
            break
        time.sleep(0.02)
    done = client.get(f"/api/backtest/{job_id}", headers=bearer()).json
    assert done["state"] == "succeeded" and done["result"] == {"pnl": 12.5, "trades": 3}
    assert done["submitted_by"] == "tester"
    failed = client.get(f"/api/backtest/{failing}", headers=bearer()).json
    assert failed["state"] == "failed" and "blew up" in failed["error"]
    assert runner.calls[0] == {"strategy": "mm-btc", "days": 1}


def test_strategy_control(env):
    client, _, trading, _ = env
    assert client.post("/api/strategies/mm-btc/pause", headers=bearer("system")).json["state"] == "paused"
    assert trading.paused["mm-btc"] is True
    assert client.post("/api/strategies/mm-btc/resume", headers=bearer()).json["state"] == "running"
    assert trading.paused["mm-btc"] is False


@pytest.mark.parametrize("method, path, kwargs, status, needle", [
    ("post", "/api/risk/kill-switch", {"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
    ("post", "/api/risk/kill-switch", {"json": [True]}, 400, "JSON object"),
    ("post", "/api/risk/kill-switch", {"json": {"active": "yes"}}, 400, "active must be true or false"),
    ("post", "/api/risk/kill-switch", {"json": {"active": 1}}, 400, "active must be true or false"),
    ("post", "/api/risk/kill-switch", {"json": {"actve": False}}, 400, "unknown field(s) 'actve'"),
    ("post", "/api/risk/kill-switch", {"json": {}}, 400, "missing required field(s): active"),
    ("post", "/api/risk/kill-switch", {}, 400, "JSON object body is required"),
    ("post", "/api/risk/kill-switch", {"data": '{"active": true}', "content_type": "text/plain"}, 415, "application/json"),
    ("post", "/api/risk/kill-switch", {"json": {"active": True, "reason": "x" * 500}}, 400, "at most 200"),
    ("post", "/api/risk/trading-state", {"json": {"state": "paused"}}, 400, "allowed: active, reducing, halted"),
    ("get", "/api/orders?state=open", {}, 400, "allowed: new, acknowledged"),
    ("get", "/api/orders?limit=0", {}, 400, "between 1 and 1000"),
    ("get", "/api/orders?limit=ten", {}, 400, "must be an integer"),
    ("get", "/api/orders?offset=-1", {}, 400, "between 0 and"),
    ("get", "/api/orders?colour=red", {}, 400, "unknown query parameter(s) 'colour'"),
    ("get", "/api/orders?state=filled&state=new", {}, 400, "given 2 times"),
    ("get", "/api/orders?symbol=BTC%20USDT", {}, 400, "letters, digits"),
    ("get", "/api/trades?limit=5000", {}, 400, "between 1 and 1000"),
    ("get", "/api/positions?x=1", {}, 400, "unknown query parameter"),
    ("post", "/api/backtest", {"json": {"days": 1}}, 400, "strategy is required"),
    ("post", "/api/backtest", {"json": "mm-btc"}, 400, "JSON object"),
    ("get", "/api/backtest/nope", {}, 404, "no backtest 'nope'"),
    ("post", "/api/strategies/ghost/pause", {}, 404, "no strategy 'ghost'"),
    ("post", "/api/strategies/mm-btc/pause", {"json": {"force": True}}, 400, "unknown field(s) 'force'"),
    ("get", "/api/no/such/route", {}, 404, "no such path"),
    ("get", "/definitely-not-here", {}, 404, "no such path"),
    ("delete", "/api/positions", {}, 405, "method not allowed"),
    ("post", "/api/token", {"json": {"client_id": "a"}}, 400, "missing required field(s): client_secret"),
    ("post", "/api/token", {"json": {"client_id": "a", "client_secret": "b", "scope": "all"}}, 400, "unknown field(s) 'scope'"),
])
def test_bad_requests_get_json_errors(env, method, path, kwargs, status, needle):
    client, rig, *_ = env
    response = getattr(client, method)(path, headers=bearer(), **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert needle in response.json["message"]
    assert response.json["status"] == status
    assert rig.control.kill_switch is False


def test_without_a_backtest_runner_backtests_are_503():
    with MonitoringRig() as rig:
        app = create_app(WebConfig(), rig.view(), jwt_secret=SECRET)
        response = app.test_client().post("/api/backtest", json={}, headers=bearer("dev"))
        assert response.status_code == 503 and "no backtest runner" in response.json["message"]


def test_healthz_and_dashboard_data(env):
    client, rig, *_ = env
    health = client.get("/healthz").json
    assert health == {**health, "status": "ok", "platform_running": True, "workers_up": 5, "workers": 5}
    data = client.get("/dashboard/data").json
    assert data["running"] is True and data["totals"]["ticks"] > 0
    assert {row["name"] for row in data["latency"]} >= {"risk.hop", "oms.tick_to_order"}
    assert data["orders"] and data["trades"] and data["positions"] and data["risk"]["kill_switch"] is False
    rig.step()
    time.sleep(0.6)
    rig.step()
    again = client.get("/dashboard/data").json
    assert again["totals"]["ticks"] > data["totals"]["ticks"]
    assert again["rates"]["ticks_per_s"] > 0 and len(again["history"]) >= 1
