"""``hftshm token``: tokens signed with the run directory's secret (or the environment's), any-case
roles, durations; ``hftshm token hash-secret``; clear errors for bad input."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.security import tokens
from hftshm.security.client_secrets import verify_secret


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv(tokens.ENV_SECRET, raising=False)
    path = tmp_path / "config" / "platform.toml"
    path.parent.mkdir()
    path.write_text(f'[platform]\nrun_dir = "{tmp_path / "run"}"\n\n[web]\nissuer = "desk-a"\naudience = "api-a"\n'
                    'max_token_ttl = "2h"\n')
    return path


def run(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize("role, ttl, seconds", [("Risk", "90s", 90), ("OPS", "15m", 900), ("dev", "1h", 3600),
                                                 ("system", "120", 120)])
def test_token_is_signed_with_the_run_dir_secret(config, tmp_path, role, ttl, seconds):
    result = run("token", "--role", role, "--ttl", ttl, "--subject", "ci", "--config", str(config))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    secret = (tmp_path / "run" / tokens.SECRET_FILE).read_text().strip()
    principal = tokens.verify(token, secret, issuer="desk-a", audience="api-a")
    assert principal.role.value == role.lower() and principal.subject == "ci"
    assert principal.expires_unix_s - time.time() == pytest.approx(seconds, abs=5)


def test_environment_secret_wins_and_weak_ones_are_refused(config):
    strong = "env-secret-for-the-cli-test-0123456789-abcdefghijklmnopqrstuvwx"
    result = run("token", "--role", "ops", "--config", str(config), env={tokens.ENV_SECRET: strong})
    assert tokens.verify(result.stdout.strip(), strong, issuer="desk-a", audience="api-a").role.value == "ops"
    weak = run("token", "--role", "ops", "--config", str(config), env={tokens.ENV_SECRET: "changeme"})
    assert weak.exit_code == 2 and "placeholder" in weak.output and "HFTSHM_JWT_SECRET" in weak.output


@pytest.mark.parametrize("args, message", [
    (["--role", "admin"], "not one of: ops, risk, dev, system"),
    (["--role", "ops", "--ttl", "soon"], "not a duration"),
    (["--role", "ops", "--ttl", "-5m"], "positive"),
    (["--role", "ops", "--ttl", "3h"], "longer than web.max_token_ttl"),
    ([], "--role is required"),
])
def test_bad_token_arguments(config, args, message):
    result = run("token", *args, "--config", str(config))
    assert result.exit_code == 2
    assert message in result.output


def test_hash_secret(config):
    result = CliRunner().invoke(app, ["token", "hash-secret", "--stdin"], input="a-long-client-secret-value\n")
    assert result.exit_code == 0, result.output
    stored = result.stdout.strip()
    assert stored.startswith("scrypt$") and verify_secret("a-long-client-secret-value", stored)
    short = CliRunner().invoke(app, ["token", "hash-secret", "--stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 16" in short.output
