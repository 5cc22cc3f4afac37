"""JWT issue/verify, signing-secret resolution and strength checks, hashed client secrets."""

from __future__ import annotations

import os
import stat
import time

import jwt
import pytest

from hftshm.security import tokens
from hftshm.security.client_secrets import check_hash_format, hash_secret, verify_secret
from hftshm.security.roles import PERMISSIONS, Permission, Role, allows, parse_role

SECRET = "k3Y-for-tests-only-0123456789abcdefghijklmnop-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ISS, AUD = "hftshm", "hftshm-api"


def test_issue_and_verify_round_trip():
    token = tokens.issue(SECRET, subject="alice", role="Risk", ttl_s=60, issuer=ISS, audience=AUD)
    principal = tokens.verify(token, SECRET, issuer=ISS, audience=AUD)
    assert principal.subject == "alice" and principal.role is Role.RISK
    assert principal.expires_unix_s - time.time() == pytest.approx(60, abs=3)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize("mutate, reason", [
    (lambda c: c.pop("exp"), "missing_claim"),
    (lambda c: c.pop("iat"), "missing_claim"),
    (lambda c: c.update(exp=int(time.time()) - 120), "expired"),
    (lambda c: c.update(aud="other-service"), "bad_audience"),
    (lambda c: c.update(iss="someone-else"), "bad_issuer"),
    (lambda c: c.update(role="admin"), "bad_role"),
    (lambda c: c.update(nbf=int(time.time()) + 600), "not_yet_valid"),
])
def test_verify_rejects_bad_claims(mutate, reason):
    now = int(time.time())
    claims = {"sub": "mallory", "role": "ops", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 60}
    mutate(claims)
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError) as info:
        tokens.verify(token, SECRET, issuer=ISS, audience=AUD)
    assert info.value.reason == reason


def test_verify_pins_the_algorithm():
    now = int(time.time())
    claims = {"sub": "m", "role": "ops", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 60}
    for alg in ("HS512", "HS384"):
        with pytest.raises(tokens.TokenError) as info:
            tokens.verify(jwt.encode(claims, SECRET, algorithm=alg), SECRET, issuer=ISS, audience=AUD)
        assert info.value.reason == "bad_algorithm"


@pytest.mark.parametrize("secret", ["", "   ", "changeme", "secret", "your-secret-key", "SECRET",
                                    "short-but-random-Xy7", "changemechangemechangemechangeme",
                                    "a" * 40])
def test_weak_secrets_are_refused_with_a_how_to(secret):
    with pytest.raises(tokens.WeakSecretError, match="HFTSHM_JWT_SECRET"):
        tokens.check_secret_strength(secret, "test")


def test_secret_sources_in_order(tmp_path):
    env = {tokens.ENV_SECRET: SECRET}
    assert tokens.resolve_secret("x" * 40, tmp_path, environ=env) == SECRET
    config_secret = "config-secret-0123456789-abcdefghijkl"
    assert tokens.resolve_secret(config_secret, tmp_path, environ={}) == config_secret
    with pytest.raises(tokens.WeakSecretError, match="placeholder"):
        tokens.resolve_secret("", tmp_path, environ={tokens.ENV_SECRET: "changeme"})


def test_generated_secret_file_is_private_and_reused(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(tokens.WeakSecretError, match="does not exist"):
        tokens.resolve_secret("", run_dir, create=False, environ={})
    first = tokens.resolve_secret("", run_dir, environ={})
    path = run_dir / tokens.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert tokens.resolve_secret("", run_dir, create=False, environ={}) == first
    os.chmod(path, 0o644)
    with pytest.raises(tokens.WeakSecretError, match="chmod 600"):
        tokens.resolve_secret("", run_dir, environ={})


def test_client_secret_hashes():
    stored = hash_secret("s3cret-client", n=2**10)
    check_hash_format(stored)
    assert verify_secret("s3cret-client", stored)
    assert not verify_secret("s3cret-clienT", stored)
    assert not verify_secret("anything", "plain-text-password")
    with pytest.raises(ValueError, match="hash-secret"):
        check_hash_format("md5$abc")
    assert hash_secret("same", n=2**10) != hash_secret("same", n=2**10)  # salted


def test_permission_table():
    assert parse_role("OPS") is Role.OPS and parse_role(" dev ") is Role.DEV
    with pytest.raises(ValueError, match="ops, risk, dev, system"):
        parse_role("admin")
    assert all(allows(role, Permission.READ) for role in Role)
    assert {r for r in Role if allows(r, Permission.RISK_CONTROL)} == {Role.RISK, Role.OPS}
    assert {r for r in Role if allows(r, Permission.BACKTEST)} == {Role.DEV, Role.OPS}
    assert {r for r in Role if allows(r, Permission.STRATEGY_CONTROL)} == {Role.OPS, Role.SYSTEM}
    assert set(PERMISSIONS) == set(Role)
