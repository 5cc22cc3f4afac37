"""The published API contract against a live ``hftshm web`` (no platform running, its own run dir):
schemathesis generates requests from GET /api/openapi.json for every operation, with a valid token
of each role and with none, and checks: no 5xx, every status code, content type, header and body as
documented (errors: the Error object, a non-empty message). Bounded examples keep it to seconds."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hftshm.security.roles import Role
from tests.e2e.platform_harness import HFTSHM, cli_env, shipped_config_text
from tests.integration.monitoring_server import free_port

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("contract")
    config = base / "config" / "platform.toml"
    config.parent.mkdir()
    # a high rate limit: the generated requests come faster than an operator's (429 is still documented)
    config.write_text(shipped_config_text(base / "run").replace("[web]\n", "[web]\nrate_limit_per_s = 100000\n", 1))
    port = free_port()
    process = subprocess.Popen([HFTSHM, "web", "--port", str(port), "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/openapi.json", timeout=2).read()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.2)
    yield url, config
    process.terminate()
    out, _ = process.communicate(timeout=30)
    assert "Traceback" not in out, out[-3000:]


def token(config: Path, role: str) -> str:
    result = subprocess.run([HFTSHM, "token", "--config", str(config), "--role", role], capture_output=True,
                            text=True, env=cli_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("role", [r.value for r in Role] + ["none"])
def test_every_operation_matches_the_published_contract(server, role):
    url, config = server
    headers = [] if role == "none" else ["-H", f"Authorization: Bearer {token(config, role)}"]
    result = subprocess.run([SCHEMATHESIS, "run", f"{url}/api/openapi.json", *headers, "--checks", CHECKS,
                             "--max-examples", "3", "--workers", "1", "--phases", "fuzzing",
                             "--request-timeout", "60", "--seed", "7", "--no-color"],
                            capture_output=True, text=True, timeout=600, env=cli_env())
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "22/22" in result.stdout  # every operation was exercised
