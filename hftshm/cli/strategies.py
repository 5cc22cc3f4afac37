"""CLI: ``hftshm strategies list|params|add|remove|pause|resume``.

``list`` and ``params`` work without a running platform (configured instances, known classes). The
others act on a running platform without restarting anything: they write one ``control_message``
record into the strategy worker's control ring (``control.<worker>``, found through the run manifest
``<run_dir>/current.json``) and wait for the worker to show the change (``hftshm.strategies.control``,
which the web API uses too).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hftshm.cli.audit import record_cli_action

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


def _status_rows(manifest, worker: str) -> list[dict]:
    from hftshm.strategies.control import status

    return status(manifest, worker)


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
        if param.is_quantity:
            bounds.append(f"default {param.contracts!r} on an inverse market")
        extra = f" [{', '.join(bounds)}]" if bounds else ""
        typer.echo(f"  {name:<26} {param.default!r:<10} {param.doc}{extra}")


# ------------------------------------------------------------------------------------ control

def _simple(kind_name: str):
    def command(name: str = typer.Argument(..., help="strategy name or id"), config: Path = ConfigOption,
                run_dir: Path = RunDirOption, worker: str = WorkerOption, ring: str = RingOption,
                wait: float = WaitOption) -> None:
        from hftshm.strategies import control

        manifest = _manifest(_run_dir(run_dir, config))
        action = getattr(control, f"{kind_name}_strategy")
        try:
            state = action(manifest, name, worker, ring, wait)
        except control.ControlError as exc:
            record_cli_action(config, run_dir, f"strategy_{kind_name}", target=name, new=kind_name,
                              outcome="refused", detail=str(exc))
            _fail(str(exc))
        record_cli_action(config, run_dir, f"strategy_{kind_name}", target=name, new=str(state))
        typer.echo(f"{name}: {state}")

    command.__doc__ = f"{kind_name.capitalize()} a running strategy (by name or id), without restarting anything."
    return command


strategies_app.command("pause")(_simple("pause"))
strategies_app.command("resume")(_simple("resume"))
strategies_app.command("remove")(_simple("remove"))


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
    from hftshm.config import read_toml
    from hftshm.strategies import control

    manifest = _manifest(_run_dir(run_dir, config))
    configured = (read_toml(config).get("strategies", {}) if Path(config).is_file() else {}).get(name, {})
    configured = configured if isinstance(configured, dict) else {}
    spec = strategy_class or configured.get("class", name)
    symbol = (symbol or configured.get("symbol") or "BTCUSDT").upper()
    base = {k: v for k, v in configured.items() if k not in ("class", "symbol", "enabled", "strategy_id")}
    try:
        params = {**base, **parse_params(param)}
    except ValueError as exc:
        _fail(str(exc), 2)
    try:
        strategy_id = control.add_strategy(manifest, name, spec, symbol, params, paused, worker, ring, wait)
    except control.ControlError as exc:
        record_cli_action(config, run_dir, "strategy_add", target=name, new=f"{spec} on {symbol}", outcome="refused",
                          detail=str(exc))
        _fail(str(exc), 2)
    record_cli_action(config, run_dir, "strategy_add", target=name, new=f"{spec} on {symbol} {params}"
                      + (" paused" if paused else ""))
    typer.echo(f"{name}: added as strategy {strategy_id} ({spec} on {symbol})" + (", paused" if paused else ""))


def parse_params(items: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; values stay strings (the strategy's PARAMS decide their types)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return params
