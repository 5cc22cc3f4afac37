"""Attacks on the API's authentication: every one is refused (401/403), counted, and the logs
never contain the token that was presented."""

from __future__ import annotations

import base64
import json
import logging
import time

import jwt
import pytest

from hftshm.metrics.rig import MonitoringRig
from hftshm.security import tokens
from hftshm.security.client_secrets import hash_secret
from hftshm.security.roles import Role
from hftshm.web.app import create_app
from hftshm.web.config import WebClient, WebConfig
from hftshm.web.provider import MemoryTradingProvider

SECRET = "web-auth-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEF"
OTHER_SECRET = "another-deployments-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
ISS, AUD = "hftshm", "hftshm-api"


@pytest.fixture
def rig():
    with MonitoringRig() as rig:
        rig.step()
        yield rig


def make_app(rig, **config):
    config.setdefault("clients", {"ci-bot": WebClient("ci-bot", hash_secret("bot-secret-value", n=2**10), Role.DEV)})
    trading = MemoryTradingProvider(control=rig.control, strategies=["mm-btc"])
    app = create_app(WebConfig(**config), rig.view(), trading=trading, backtest_runner=lambda p: {"ok": True},
                     jwt_secret=SECRET)
    return app, trading


@pytest.fixture
def client(rig):
    app, _ = make_app(rig)
    return app.test_client()


def token(role="ops", secret=SECRET, **claims):
    now = int(time.time())
    body = {"sub": "tester", "role": role, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def alg_none_token() -> str:
    now = int(time.time())
    claims = {"sub": "mallory", "role": "ops", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def tampered_token() -> str:
    """A valid Dev token whose payload was edited to claim Ops, signature kept."""
    header, payload, signature = token(role="dev").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "ops"
    return f"{header}.{b64(claims)}.{signature}"


ATTACKS = {
    "alg_none": (alg_none_token, 401, "bad_algorithm"),
    "wrong_key": (lambda: token(secret=OTHER_SECRET), 401, "bad_signature"),
    "expired": (lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), 401, "expired"),
    "tampered_payload": (tampered_token, 401, "bad_signature"),
    "wrong_audience": (lambda: token(aud="grafana"), 401, "bad_audience"),
    "wrong_issuer": (lambda: token(iss="evil-corp"), 401, "bad_issuer"),
    "no_exp": (lambda: token(exp=None), 401, "missing_claim"),
    "no_iat": (lambda: token(iat=None), 401, "missing_claim"),
    "garbage": (lambda: "not.a.jwt", 401, "malformed"),
    # role escalation: a role the permission table does not know, signed with the right key or not
    "role_admin": (lambda: token(role="admin"), 401, "bad_role"),
    "role_list": (lambda: token(role=["dev", "ops"]), 401, "bad_role"),
    "role_escalated_unsigned": (lambda: token(role="ops", secret=OTHER_SECRET), 401, "bad_signature"),
    "hs512": (lambda: jwt.encode({"sub": "x", "role": "ops", "iss": ISS, "aud": AUD, "iat": int(time.time()),
                                  "exp": int(time.time()) + 60}, SECRET + SECRET, algorithm="HS512"), 401, "bad_algorithm"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_forged_tokens_are_refused_and_never_logged(rig, caplog, name):
    make_token, status, reason = ATTACKS[name]
    app, trading = make_app(rig)
    client = app.test_client()
    bad = make_token()
    caplog.set_level(logging.DEBUG)
    response = client.post("/api/risk/kill-switch", json={"active": True}, headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == status
    assert response.json["reason"] == reason
    assert "WWW-Authenticate" in response.headers
    assert rig.control.kill_switch is False and trading.actions == []
    assert reason in caplog.text
    for part in [bad] + [p for p in bad.split(".") if len(p) > 8]:
        assert part not in caplog.text
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'hftshm_auth_failures_total{{reason="{reason}"}} 1.0' in metrics


def test_no_token_is_401_on_every_api_route(client):
    routes = [("get", "/api"), ("get", "/api/positions"), ("get", "/api/risk/status"), ("get", "/api/orders"),
              ("get", "/api/trades"), ("get", "/api/metrics/data"), ("get", "/api/backtest"),
              ("get", "/api/backtest/abc"), ("get", "/api/strategies"), ("post", "/api/risk/kill-switch"),
              ("post", "/api/risk/trading-state"), ("post", "/api/backtest"),
              ("post", "/api/strategies/mm-btc/pause"), ("post", "/api/strategies/mm-btc/resume")]
    for method, path in routes:
        response = getattr(client, method)(path, json={"active": True})
        assert response.status_code == 401, path
        assert response.json["reason"] == "missing_token"
    # a Basic header, or a Bearer with nothing after it, is no token either
    assert client.get("/api/positions", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    assert client.get("/api/positions", headers={"Authorization": "Bearer "}).status_code == 401


@pytest.mark.parametrize("role, method, path, body", [
    ("dev", "post", "/api/risk/kill-switch", {"active": True}),
    ("system", "post", "/api/risk/kill-switch", {"active": True}),
    ("dev", "post", "/api/risk/trading-state", {"state": "halted"}),
    ("risk", "post", "/api/backtest", {}),
    ("system", "post", "/api/backtest", {}),
    ("risk", "post", "/api/strategies/mm-btc/pause", None),
    ("dev", "post", "/api/strategies/mm-btc/resume", None),
])
def test_roles_without_the_permission_get_403(rig, caplog, role, method, path, body):
    app, trading = make_app(rig)
    good = token(role=role)
    caplog.set_level(logging.DEBUG)
    response = getattr(app.test_client(), method)(path, json=body, headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 403
    assert response.json["reason"] == "forbidden"
    assert rig.control.kill_switch is False and trading.actions == []
    assert good not in caplog.text and good.split(".")[2] not in caplog.text


@pytest.mark.parametrize("role, method, path, body, status", [
    ("risk", "post", "/api/risk/kill-switch", {"active": True}, 200),
    ("ops", "post", "/api/risk/kill-switch", {"active": False}, 200),
    ("dev", "post", "/api/backtest", {}, 202),
    ("ops", "post", "/api/strategies/mm-btc/pause", None, 200),
    ("system", "post", "/api/strategies/mm-btc/resume", None, 200),
    ("dev", "get", "/api/positions", None, 200),
    ("system", "get", "/api/orders", None, 200),
])
def test_roles_with_the_permission_pass(rig, role, method, path, body, status):
    app, _ = make_app(rig)
    response = getattr(app.test_client(), method)(path, json=body, headers={"Authorization": f"Bearer {token(role=role)}"})
    assert response.status_code == status, response.json


def test_client_credentials_token_endpoint(rig, caplog):
    app, _ = make_app(rig)
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    response = client.post("/api/token", json={"client_id": "ci-bot", "client_secret": "bot-secret-value"})
    assert response.status_code == 200
    issued = response.json["access_token"]
    assert response.json["role"] == "dev" and response.json["token_type"] == "Bearer"
    assert tokens.verify(issued, SECRET, issuer=ISS, audience=AUD).subject == "ci-bot"
    assert client.post("/api/backtest", json={}, headers={"Authorization": f"Bearer {issued}"}).status_code == 202
    assert issued not in caplog.text
    form = client.post("/api/token", data={"grant_type": "client_credentials", "client_id": "ci-bot",
                                           "client_secret": "bot-secret-value"})
    assert form.status_code == 200
    for body in ({"client_id": "ci-bot", "client_secret": "wrong"}, {"client_id": "nobody", "client_secret": "x"}):
        refused = client.post("/api/token", json=body)
        assert refused.status_code == 401 and refused.json["message"] == "unknown client or wrong secret"
    assert "bot-secret-value" not in caplog.text and "wrong" not in caplog.text.replace("wrong secret", "")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'hftshm_auth_failures_total{reason="bad_client_credentials"} 2.0' in metrics
    assert 'hftshm_auth_tokens_issued_total{role="dev"} 2.0' in metrics


def test_open_routes_can_be_closed_by_config(rig):
    app, _ = make_app(rig, metrics_open=False, healthz_open=False, require_token_for_dashboard=True)
    client = app.test_client()
    for path in ("/metrics", "/healthz", "/dashboard/data"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": f"Bearer {token(role='dev')}"}).status_code == 200, path
    assert client.get("/dashboard").status_code == 200  # the page shell carries no data; it asks for a token
    open_app, _ = make_app(rig)
    for path in ("/metrics", "/healthz", "/dashboard", "/dashboard/data"):
        assert open_app.test_client().get(path).status_code == 200, path


def test_weak_secret_refused_at_start(rig):
    with pytest.raises(tokens.WeakSecretError, match="HFTSHM_JWT_SECRET"):
        create_app(WebConfig(), rig.view(), jwt_secret="changeme")


def test_missing_token_and_dev_escalation_on_the_kill_switch_are_refused(rig):
    app, trading = make_app(rig)
    client = app.test_client()
    missing = client.post("/api/risk/kill-switch", json={"active": True})
    assert missing.status_code == 401 and missing.json["reason"] == "missing_token"
    dev = client.post("/api/risk/kill-switch", json={"active": True}, headers={"Authorization": f"Bearer {token('dev')}"})
    assert dev.status_code == 403 and dev.json["reason"] == "forbidden"
    assert rig.control.kill_switch is False and trading.actions == []
