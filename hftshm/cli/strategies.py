"""CLI: ``hftshm strategies list|params|add|remove|pause|resume``.

``list`` and ``params`` work without a running platform (configured instances, known classes). The
others act on a running platform without restarting anything: they write one ``control_message``
record into the strategy worker's control ring (``control.<worker>``, found through the run manifest
``<run_dir>/current.json``) and wait for the worker to show the change.

A control ring has one producer at a time (SPSC), so every writer holds the lock file
``<run_dir>/<ring name>.lock`` (flock) while writing.
"""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG

strategies_app = typer.Typer(help="List strategies, add/remove/pause/resume them on a running platform.",
                             no_args_is_help=True)

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file")
RunDirOption = typer.Option(None, "--run-dir",
                            help="the running platform's run directory (default: [platform] run_dir)")
WorkerOption = typer.Option("strategies", "--worker", help="the strategy worker's name in [workers]")
RingOption = typer.Option(None, "--ring", help="control ring name (default: control.<worker>)")
WaitOption = typer.Option(5.0, "--wait", help="seconds to wait for the worker to confirm")


def register(app: typer.Typer) -> None:
    app.add_typer(strategies_app, name="strategies")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(code)


def _run_dir(run_dir: Path | None, config: Path) -> Path:
    if run_dir is not None:
        return run_dir
    from hftshm.config import read_toml

    raw = read_toml(config) if Path(config).is_file() else {}
    return Path(raw.get("platform", {}).get("run_dir", "run"))


def _manifest(run_dir: Path):
    from hftshm.runtime.manifest import NoRunningPlatform, read_running

    try:
        return read_running(run_dir)
    except NoRunningPlatform as exc:
        _fail(str(exc))


def _status_rows(manifest, worker: str) -> list[dict] | None:
    from hftshm.strategies.runtime import STATUS_LAYOUT, status_rows
    from hftshm.strategies.worker import status_segment_name
    from hftshm.transport.segment import Segment, SegmentNotFound

    import numpy as np

    try:
        segment = Segment.attach(status_segment_name(manifest.prefix, worker))
    except SegmentNotFound:
        return None
    try:
        table = np.ndarray((segment.size // STATUS_LAYOUT.itemsize,), dtype=STATUS_LAYOUT.dtype, buffer=segment.buf)
        rows = status_rows(table.copy())
        del table
    finally:
        segment.close()
    return rows


def _registry(run_dir: Path, worker: str) -> list[dict]:
    from hftshm.strategies.worker import registry_path

    path = registry_path(run_dir, worker)
    return json.loads(path.read_text()) if path.is_file() else []


# ------------------------------------------------------------------------------------ list / params

@strategies_app.command("list")
def list_command(config: Path = ConfigOption, run_dir: Path = RunDirOption, worker: str = WorkerOption,
                 as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Strategies of the running platform with live metrics, or (none running) the configured ones."""
    from rich.console import Console
    from rich.table import Table

    from hftshm.runtime.manifest import NoRunningPlatform, read_running

    directory = _run_dir(run_dir, config)
    try:
        manifest = read_running(directory)
    except NoRunningPlatform:
        manifest = None
    if manifest is None:
        _list_configured(config, as_json)
        return
    rows = _status_rows(manifest, worker) or []
    registry = {e["strategy_id"]: e for e in _registry(directory, worker)}
    for row in rows:
        entry = registry.get(row["strategy_id"], {})
        row["class"] = entry.get("class", "")
        row["last_error"] = entry.get("last_error", "")
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table(title=f"strategies on {worker} (run {manifest.prefix.rstrip('_')})")
    columns = ("strategy_id", "name", "class", "state", "position", "realized_pnl", "unrealized_pnl", "fees",
               "signals", "intents", "fills", "rejects", "open_orders", "errors")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column in ("name", "class", "state") else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console = Console()
    console.print(table)
    for row in rows:
        if row.get("last_error"):
            console.print(f"[red]{row['name']}[/red]: {row['last_error']}")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return str(value)


def _list_configured(config: Path, as_json: bool) -> None:
    from hftshm.config import ConfigError, Section, read_toml
    from hftshm.strategies.config import StrategiesConfig
    from hftshm.strategies.registry import available, describe, load_class

    try:
        raw = read_toml(config) if Path(config).is_file() else {}
        cfg = StrategiesConfig.from_section(Section("strategies", raw.get("strategies", {})))
    except ConfigError as exc:
        _fail(f"config error: {exc}", 2)
    configured = [{"name": i.name, "class": i.spec, "symbol": i.symbol, "enabled": i.enabled, "params": i.params}
                  for i in cfg.instances]
    classes = {}
    for name, target in available().items():
        try:
            classes[name] = describe(load_class(name))
        except LookupError as exc:
            classes[name] = f"(cannot load: {exc})"
    if as_json:
        typer.echo(json.dumps({"running": False, "configured": configured, "classes": classes}, indent=1))
        return
    typer.echo("No platform running; configured strategies:")
    for item in configured:
        flag = "enabled " if item["enabled"] else "disabled"
        params = ", ".join(f"{k}={v}" for k, v in item["params"].items())
        typer.echo(f"  {item['name']:<18} {flag}  {item['class']} on {item['symbol']}: {params}")
    typer.echo("Strategy classes by name (or use package.module:Class):")
    for name, text in classes.items():
        typer.echo(f"  {name:<18} {text}")


@strategies_app.command("params")
def params_command(
    strategy: str = typer.Argument(..., help="built-in name, package.module:Class, or entry point"),
) -> None:
    """The parameters a strategy class declares: name, default, meaning."""
    from hftshm.strategies.registry import describe, load_class

    try:
        cls = load_class(strategy)
    except LookupError as exc:
        _fail(str(exc))
    typer.echo(f"{strategy}: {describe(cls)}")
    if not cls.PARAMS:
        typer.echo("  (declares no PARAMS: takes any parameters, unchecked)")
    for name, param in cls.PARAMS.items():
        bounds = []
        if param.positive:
            bounds.append("> 0")
        if param.min is not None:
            bounds.append(f">= {param.min}")
        if param.max is not None:
            bounds.append(f"<= {param.max}")
        if param.choices:
            bounds.append("one of " + "/".join(param.choices))
        extra = f" [{', '.join(bounds)}]" if bounds else ""
        typer.echo(f"  {name:<26} {param.default!r:<10} {param.doc}{extra}")


# ------------------------------------------------------------------------------------ control

@contextmanager
def _control_ring(run_dir: Path, manifest, worker: str, ring_name: str | None):
    from hftshm.transport.ring import Ring

    ring_name = ring_name or f"control.{worker}"
    entry = next((r for r in manifest.rings if r.name == ring_name), None)
    if entry is None:
        names = ", ".join(r.name for r in manifest.rings if r.layout == "control_message") or "(none)"
        _fail(f"the running platform has no control ring {ring_name!r}; control rings: {names}")
    lock_path = Path(run_dir) / f"{ring_name}.lock"  # the one-producer convention for operator rings
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ring = Ring.attach(entry.segment, "control_message")
        try:
            yield ring
        finally:
            ring.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


def send_control(run_dir: Path, manifest, worker: str, ring_name: str | None, kind: int, target_id: int,
                 value_i: int = 0) -> None:
    """Write one control_message into the worker's control ring (under the writers' lock)."""
    with _control_ring(run_dir, manifest, worker, ring_name) as ring:
        record = {"ts_ns": time.time_ns(), "target_id": target_id, "value_i": value_i, "kind": kind,
                  "seq": time.time_ns()}
        if not ring.write(record, timeout_s=2.0):
            _fail(f"control ring {ring.name} stayed full for 2 s: is the {worker} worker running?")


def _resolve(run_dir: Path, manifest, worker: str, name: str) -> dict:
    rows = _status_rows(manifest, worker) or []
    for row in rows:
        if row["name"] == name or str(row["strategy_id"]) == name:
            return row
    known = ", ".join(r["name"] for r in rows if r["state"] != "removed") or "(none)"
    _fail(f"no strategy {name!r} on worker {worker}; running: {known}")


def _wait_state(manifest, worker: str, strategy_id: int, states: tuple[str, ...], wait_s: float) -> str | None:
    deadline = time.monotonic() + wait_s
    while True:
        rows = {r["strategy_id"]: r for r in (_status_rows(manifest, worker) or [])}
        state = rows.get(strategy_id, {}).get("state")
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def _simple(kind_name: str, states: tuple[str, ...]):
    def command(name: str = typer.Argument(..., help="strategy name or id"), config: Path = ConfigOption,
                run_dir: Path = RunDirOption, worker: str = WorkerOption, ring: str = RingOption,
                wait: float = WaitOption) -> None:
        from hftshm.codes import ControlKind

        directory = _run_dir(run_dir, config)
        manifest = _manifest(directory)
        row = _resolve(directory, manifest, worker, name)
        send_control(directory, manifest, worker, ring, int(ControlKind[f"STRATEGY_{kind_name.upper()}"]),
                     int(row["strategy_id"]))
        state = _wait_state(manifest, worker, int(row["strategy_id"]), states, wait)
        if state in states:
            typer.echo(f"{row['name']}: {state}")
        else:
            _fail(f"{row['name']}: sent {kind_name}, but the worker shows {state!r} after {wait:g}s")

    command.__doc__ = f"{kind_name.capitalize()} a running strategy (by name or id)."
    return command


strategies_app.command("pause")(_simple("pause", ("paused",)))
strategies_app.command("resume")(_simple("resume", ("running",)))
strategies_app.command("remove")(_simple("remove", ("removed",)))


@strategies_app.command("add")
def add_command(
    name: str = typer.Argument(..., help="instance name for the new strategy"),
    strategy_class: str = typer.Option(None, "--class", help="built-in, package.module:Class or entry point "
                                                             "(default: the [strategies.NAME] class, else NAME)"),
    symbol: str = typer.Option(None, "--symbol", help="symbol to trade (default: config, else BTCUSDT)"),
    param: list[str] = typer.Option([], "--param", "-p", help="k=v strategy parameter (repeatable)"),
    paused: bool = typer.Option(False, "--paused", help="add it paused; 'resume' starts it"),
    config: Path = ConfigOption, run_dir: Path = RunDirOption, worker: str = WorkerOption, ring: str = RingOption,
    wait: float = WaitOption,
) -> None:
    """Start a new strategy on the running platform (others keep running). Parameters are checked here
    first, so a typo fails before anything is sent."""
    from hftshm.codes import ControlKind
    from hftshm.config import read_toml
    from hftshm.strategies.base import StrategyError, resolve_params
    from hftshm.strategies.registry import load_class
    from hftshm.strategies.worker import requests_dir

    directory = _run_dir(run_dir, config)
    manifest = _manifest(directory)
    configured = (read_toml(config).get("strategies", {}) if Path(config).is_file() else {}).get(name, {})
    configured = configured if isinstance(configured, dict) else {}
    spec = strategy_class or configured.get("class", name)
    symbol = (symbol or configured.get("symbol") or "BTCUSDT").upper()
    base = {k: v for k, v in configured.items() if k not in ("class", "symbol", "enabled", "strategy_id")}
    try:
        given = {**base, **parse_params(param)}
        cls = load_class(spec)
        params = resolve_params(name, cls.PARAMS, given)
    except (LookupError, StrategyError, ValueError) as exc:
        _fail(str(exc), 2)
    request_id = time.time_ns() // 1000
    folder = requests_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    request = folder / f"{request_id}.json"
    request.write_text(json.dumps({"name": name, "class": spec, "symbol": symbol, "params": params,
                                   "paused": paused}))
    send_control(directory, manifest, worker, ring, int(ControlKind.STRATEGY_ADD), -1, request_id)
    result_path = folder / f"{request_id}.result.json"
    deadline = time.monotonic() + wait
    while not result_path.exists():
        if time.monotonic() > deadline:
            _fail(f"sent add for {name}, but the {worker} worker did not answer within {wait:g}s")
        time.sleep(0.05)
    result = json.loads(result_path.read_text())
    request.unlink(missing_ok=True)
    result_path.unlink(missing_ok=True)
    if not result.get("ok"):
        _fail(f"{name} was not added: {result.get('error')}")
    typer.echo(f"{name}: added as strategy {result['strategy_id']} ({spec} on {symbol})"
               + (", paused" if paused else ""))


def parse_params(items: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; values stay strings (the strategy's PARAMS decide their types)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return params
