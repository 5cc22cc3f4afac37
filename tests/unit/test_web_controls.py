"""The API's operator controls: kill switch and trading state with and without a running platform,
persisted and audited (actor, role, source, refused attempts), the abuse limits (429 +
Retry-After), the security headers, and the published OpenAPI document covering every route."""

from __future__ import annotations

import shutil
import subprocess
import time

import jwt
import pytest

from hftshm.audit.controls import OperatorControls
from hftshm.audit.log import AuditLog
from hftshm.metrics.rig import MonitoringRig
from hftshm.metrics.snapshot import PlatformSnapshot
from hftshm.risk.control import ControlStore
from hftshm.security.client_secrets import hash_secret
from hftshm.security.roles import Role
from hftshm.web.app import create_app
from hftshm.web.config import WebClient, WebConfig
from hftshm.web.openapi import document_paths, openapi_document
from hftshm.web.provider import MemoryTradingProvider

SECRET = "web-controls-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABC"


def bearer(role="risk", sub="alice"):
    now = int(time.time())
    claims = {"sub": sub, "role": role, "iss": "hftshm", "aud": "hftshm-api", "iat": now, "exp": now + 300}
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}


class NoPlatform:
    control = None

    def snapshot(self):
        return PlatformSnapshot()


def make_app(tmp_path, view=None, block=None, **config):
    audit = AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}")
    controls = OperatorControls(tmp_path, None, audit, find_block=lambda: block)
    app = create_app(WebConfig(**config), view or NoPlatform(), trading=MemoryTradingProvider(), jwt_secret=SECRET,
                     controls=controls, limits={"max_daily_loss": 10_000.0})
    return app, controls, audit


def test_kill_switch_and_status_work_with_no_platform_running(tmp_path):
    app, controls, audit = make_app(tmp_path)
    client = app.test_client()
    status = client.get("/api/risk/status", headers=bearer("dev"))
    assert status.status_code == 200
    assert status.json["running"] is False and status.json["kill_switch"] is False
    assert status.json["limits"] == {"max_daily_loss": 10_000.0}

    on = client.post("/api/risk/kill-switch", json={"active": True, "reason": "drill"}, headers=bearer("risk"))
    assert on.status_code == 200 and on.json["kill_switch"] is True and on.json["persisted"]["changed_by"] == "alice"
    assert ControlStore(tmp_path).load()["kill_switch"] is True  # what the next start loads
    state = client.post("/api/risk/trading-state", json={"state": "reducing"}, headers=bearer("ops", "bob"))
    assert state.status_code == 200 and state.json["trading_state"] == "reducing"
    again = client.get("/api/risk/status", headers=bearer("dev")).json
    assert again["kill_switch"] is True and again["trading_state"] == "reducing" and again["running"] is False

    metrics = client.get("/metrics").get_data(as_text=True)
    assert "hftshm_persisted_kill_switch 1.0" in metrics and 'hftshm_persisted_trading_state{state="reducing"} 1.0' in metrics
    rows = client.get("/api/audit", headers=bearer("risk")).json["audit"]
    assert [(r["action"], r["actor"], r["role"], r["source"], r["previous"], r["new"], r["outcome"])
            for r in rows] == [("trading_state", "bob", "ops", "api", "active", "reducing", "applied"),
                               ("kill_switch", "alice", "risk", "api", "off", "on", "applied")]
    assert rows[1]["detail"] == "drill"


def test_kill_switch_reaches_the_running_block_and_is_persisted(tmp_path):
    with MonitoringRig() as rig:
        rig.step()
        app, controls, _ = make_app(tmp_path, view=rig.view(), block=rig.control)
        client = app.test_client()
        assert client.post("/api/risk/kill-switch", json={"active": True}, headers=bearer()).status_code == 200
        assert rig.control.kill_switch is True
        assert ControlStore(tmp_path).load()["kill_switch"] is True
        assert client.get("/api/risk/status", headers=bearer()).json["running"] is True


def test_refused_attempts_are_audited_with_who_tried(tmp_path):
    app, _, audit = make_app(tmp_path)
    client = app.test_client()
    refused = client.post("/api/risk/kill-switch", json={"active": True}, headers=bearer("dev", "mallory"))
    assert refused.status_code == 403
    assert ControlStore(tmp_path).load()["kill_switch"] is False
    rows, total = audit.rows()
    assert total == 1
    assert (rows[0]["action"], rows[0]["actor"], rows[0]["role"], rows[0]["new"], rows[0]["outcome"]) == \
        ("kill_switch", "mallory", "dev", "on", "refused")
    assert "may not" in rows[0]["detail"]
    assert client.get("/api/audit", headers=bearer("dev")).status_code == 403  # Risk and Ops only
    assert client.get("/api/audit", headers=bearer("ops")).json["total"] == 1


def test_rate_limit_per_subject_answers_429_with_retry_after(tmp_path):
    app, _, _ = make_app(tmp_path, rate_limit_per_s=5)
    client = app.test_client()
    codes = [client.get("/api/positions", headers=bearer("dev", "busy")).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]
    limited = client.get("/api/positions", headers=bearer("dev", "busy"))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json["message"] and limited.json["reason"] == "rate_limited"
    # another subject has its own budget
    assert client.get("/api/positions", headers=bearer("dev", "quiet")).status_code == 200


def test_failed_logins_back_off_and_are_audited(tmp_path):
    clients = {"ci-bot": WebClient("ci-bot", hash_secret("right-secret-value", n=2**10), Role.DEV)}
    app, _, audit = make_app(tmp_path, clients=clients, login_failures=3, login_window_s=60)
    client = app.test_client()
    codes = [client.post("/api/token", json={"client_id": "ci-bot", "client_secret": f"wrong-{i}"}).status_code
             for i in range(3)]
    assert codes == [401, 401, 401]
    blocked = client.post("/api/token", json={"client_id": "ci-bot", "client_secret": "right-secret-value"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    rows, total = audit.rows(action="login")
    assert total == 4 and {r["outcome"] for r in rows} == {"refused"} and {r["actor"] for r in rows} == {"ci-bot"}
    assert "backing off" in rows[0]["detail"]


def test_security_headers_on_page_and_api(tmp_path):
    app, _, _ = make_app(tmp_path)
    client = app.test_client()
    for path in ("/dashboard", "/api/openapi.json", "/metrics", "/api/positions"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
    page = client.get("/dashboard").get_data(as_text=True)
    assert "<script>" not in page and " style=" not in page  # nothing inline the policy would block
    assert 'id="kill-button"' in page


def test_dashboard_data_shows_the_persisted_controls_with_no_platform(tmp_path):
    app, controls, _ = make_app(tmp_path)
    client = app.test_client()
    client.post("/api/risk/kill-switch", json={"active": True}, headers=bearer())
    risk = client.get("/dashboard/data").json["risk"]
    assert risk["kill_switch"] is True and risk["persisted"]["changed_by"] == "alice"


def test_openapi_document_covers_every_route(tmp_path):
    app, _, _ = make_app(tmp_path)
    doc = app.test_client().get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    assert document_paths(app) <= set(doc["paths"]), document_paths(app) - set(doc["paths"])
    kill = doc["paths"]["/api/risk/kill-switch"]["post"]
    assert kill["x-roles"] == ["ops", "risk"] and kill["requestBody"]["content"]["application/json"]
    assert doc["paths"]["/api/audit"]["get"]["x-roles"] == ["ops", "risk"]
    for path, item in openapi_document()["paths"].items():
        for method, op in item.items():
            errors = [code for code in op["responses"] if code[0] in "45"]
            assert errors, f"{method} {path} documents no error"
            for code in errors:
                assert op["responses"][code]["content"]["application/json"]["schema"] == \
                    {"$ref": "#/components/schemas/Error"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_controls_metrics_pass_promtool(tmp_path):
    app, controls, audit = make_app(tmp_path)
    client = app.test_client()
    client.post("/api/risk/kill-switch", json={"active": True}, headers=bearer())
    text = client.get("/metrics").get_data()
    assert b"hftshm_audit_pending_rows" in text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == b"", result.stdout + result.stderr
