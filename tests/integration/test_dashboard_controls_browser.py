"""The dashboard's kill-switch button in a real headless Chromium, under the page's
Content-Security-Policy, against a live ``hftshm web`` with no platform running: a Risk token is
pasted, the button clicked and the confirmation accepted; the switch is persisted and audited, the
halted banner shows, the audit panel lists the action, and the browser reports no CSP violation.
Driven over the DevTools protocol (websockets); a screenshot is kept in artifacts/."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from hftshm.risk.control import ControlStore
from tests.e2e.platform_harness import HFTSHM, cli_env, shipped_config_text
from tests.integration.monitoring_server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install chromium)")]


def wait_http(url: str, timeout_s: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Page:
    """The smallest DevTools client: commands with ids, events collected."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == my_id:
                assert "error" not in message, message
                return message.get("result", {})
            await self.on_event(message)

    async def on_event(self, message: dict) -> None:
        self.events.append(message)
        if message.get("method") == "Page.javascriptDialogOpening":  # the kill switch's confirm()
            self.next_id += 1
            await self.ws.send(json.dumps({"id": self.next_id, "method": "Page.handleJavaScriptDialog",
                                           "params": {"accept": True}}))

    async def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=0.2))
            except asyncio.TimeoutError:
                continue
            await self.on_event(message)

    async def eval(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, timeout_s: float = 20.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.eval(expression)
            if value:
                return value
            await self.pump(0.3)
        raise AssertionError(f"never true in the page: {expression}")


async def drive(devtools_port: int, url: str, token: str, shot: Path) -> tuple[dict, list[dict]]:
    import websockets

    targets = json.loads(wait_http(f"http://127.0.0.1:{devtools_port}/json/list"))
    target = next(t for t in targets if t["type"] == "page")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=2**26) as ws:
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        await page.send("Page.navigate", url=url)
        await page.until("document.readyState === 'complete' && document.body.dataset.updates > 0")
        await page.eval(f"sessionStorage.setItem('hftshm.token', {json.dumps(token)}); location.reload(); true")
        await page.pump(0.5)
        await page.until("document.readyState === 'complete' && document.body.dataset.updates > 0")
        assert await page.eval("document.getElementById('kill-button').disabled") is False
        await page.eval("document.getElementById('kill-button').click(); true")
        await page.until("document.getElementById('risk-msg').textContent.includes('activated')")
        await page.until("document.getElementById('kill-badge').textContent === 'KILL SWITCH ON'")
        await page.until("!document.getElementById('halt-banner').classList.contains('hidden')")
        await page.until("document.querySelectorAll('#audit-table tbody tr:not(.empty)').length > 0")
        state = await page.eval("""({banner: document.getElementById('halt-banner').textContent,
                                     audit: document.getElementById('audit-table').tBodies[0].textContent,
                                     bar: document.querySelector('.lat-bar span, .meter span') ?
                                          document.querySelector('.lat-bar span, .meter span').style.width : null})""")
        shot.write_bytes(base64.b64decode((await page.send("Page.captureScreenshot", format="png"))["data"]))
        return state, page.events


def test_kill_switch_button_works_under_the_content_security_policy(tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "config" / "platform.toml"
    config.parent.mkdir()
    config.write_text(shipped_config_text(run_dir))
    port, devtools_port = free_port(), free_port()
    web = subprocess.Popen([HFTSHM, "web", "--port", str(port), "--config", str(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env())
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/dashboard"
        wait_http(url)
        token = subprocess.run([HFTSHM, "token", "--config", str(config), "--role", "risk", "--subject", "rita"],
                               capture_output=True, text=True, env=cli_env(), timeout=60).stdout.strip().splitlines()[-1]
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1600,1700",
                                    f"--remote-debugging-port={devtools_port}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-kill-switch.png"
        state, events = asyncio.run(drive(devtools_port, url, token, shot))
    finally:
        if browser is not None:
            browser.terminate()
            browser.wait(30)
        web.terminate()
        web.communicate(timeout=30)

    # the click went through the API: persisted for the next start, audited with the token's subject
    persisted = ControlStore(run_dir).load()
    assert persisted["kill_switch"] is True and persisted["changed_by"] == "rita" and persisted["source"] == "api"
    assert "next start begins halted" in state["banner"] and "kill switch ON" in state["banner"]
    assert "kill_switch" in state["audit"] and "rita" in state["audit"]
    messages = [json.dumps(e) for e in events if e.get("method") in ("Log.entryAdded", "Runtime.consoleAPICalled",
                                                                      "Runtime.exceptionThrown")]
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages
    assert not [m for m in messages if "exceptionThrown" in m], messages
    assert shot.exists() and shot.stat().st_size > 20_000
