"""CLI: ``hftshm kill-switch on|off`` and ``hftshm risk state|status|reset-state``.

These write the running platform's shared-memory risk control block, found through the run manifest
of ``--run-dir`` (or named directly with ``--segment``); the risk check reads it on every intent, so
the change applies from the next check. With ``[redis] url`` configured the kill switch is also set
in Redis (``hftshm:<namespace>:kill_switch``), where another host's platform sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG, ConfigError

risk_app = typer.Typer(help="Pre-trade risk: trading state, limits in force, reject counts, mirrored state.",
                       no_args_is_help=True)

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file")
RunDirOption = typer.Option(None, "--run-dir", help="run directory of the platform (default [platform] run_dir)")
SegmentOption = typer.Option(None, "--segment", help="shared-memory name of the control block (overrides --run-dir)")


def register(app: typer.Typer) -> None:
    app.command("kill-switch")(kill_switch_command)
    app.add_typer(risk_app, name="risk")


def _config(path: Path):
    """The platform config with only the sections these commands read validated ([platform], [redis]):
    an operator stopping trading must not be blocked by a typo in an unrelated section."""
    from hftshm.config import read_toml
    from hftshm.platform import PlatformConfig

    try:
        config = PlatformConfig.from_raw(read_toml(path), base_dir=Path(path).resolve().parent.parent)
        config.redis  # noqa: B018 (validates [redis] now, with a clear error)
        return config
    except (ConfigError, ValueError, KeyError) as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _attach(run_dir: Path | None, segment: str | None, config_path: Path, required: bool = True):
    """The running platform's control block, or None (when not ``required``)."""
    from hftshm.risk.control import ControlBlock, ControlBlockError
    from hftshm.runtime.manifest import NoRunningPlatform, read_running

    try:
        if segment is None:
            if run_dir is None:
                run_dir = _config(config_path).platform.run_dir
            manifest = read_running(run_dir)
            if not manifest.control_segment:
                raise ControlBlockError(f"the platform under {run_dir} runs without a risk control block")
            segment = manifest.control_segment
        return ControlBlock.attach(segment)
    except (NoRunningPlatform, ControlBlockError) as exc:
        if not required:
            return None
        typer.secho(str(exc), fg="yellow", err=True)
        raise typer.Exit(1) from None


def kill_switch_command(
    state: str = typer.Argument(..., help="on: reject every new order and cancel all open ones; off: resume"),
    run_dir: Path = RunDirOption, segment: str = SegmentOption, config: Path = ConfigOption,
) -> None:
    """Turn the kill switch on or off.

    On: from the next check every new order and replace is rejected (kill_switch), and the risk worker
    sends a cancel for every open order it knows. Off: orders are checked normally again (the trading
    state is unchanged; see 'hftshm risk state').
    """
    if state.lower() not in ("on", "off"):
        typer.secho(f"kill-switch takes 'on' or 'off', not {state!r}", fg="red", err=True)
        raise typer.Exit(2)
    on = state.lower() == "on"
    cfg = _config(config)
    redis_config = cfg.redis
    block = _attach(run_dir, segment, config, required=not redis_config.enabled)
    if block is not None:
        block.set_kill_switch(on)
        typer.echo(f"kill switch {'ON' if on else 'off'} in {block.name} (epoch {block.epoch})")
        block.close()
    if redis_config.enabled:
        from hftshm.risk.redis_mirror import set_kill_switch_key

        try:
            set_kill_switch_key(redis_config, on)
        except Exception as exc:
            typer.secho(f"Redis {redis_config.url} not updated: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"Redis {redis_config.key('kill_switch')} = {1 if on else 0}")
        if block is None:
            typer.echo("no platform runs here; platforms watching this Redis namespace will see it")


@risk_app.command("state")
def state_command(
    state: str = typer.Argument(..., help="active | reducing (only position-reducing orders) | halted (only cancels)"),
    run_dir: Path = RunDirOption, segment: str = SegmentOption, config: Path = ConfigOption,
) -> None:
    """Set the trading state of the running platform."""
    from hftshm.codes import TradingState, parse_code

    try:
        trading_state = parse_code(TradingState, state, "trading state")
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    block = _attach(run_dir, segment, config)
    block.set_trading_state(trading_state)
    typer.echo(f"trading state {trading_state.name.lower()} in {block.name} (epoch {block.epoch})")
    block.close()


@risk_app.command("status")
def status_command(
    run_dir: Path = RunDirOption, segment: str = SegmentOption, config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="print the control block as JSON"),
) -> None:
    """Kill switch, trading state, PnL summary and reject counts of the running platform."""
    block = _attach(run_dir, segment, config)
    snap = block.snapshot()
    block.close()
    if as_json:
        typer.echo(json.dumps(snap, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"risk control block {segment or ''}".strip())
    table.add_column("field")
    table.add_column("value", justify="right")
    redis = {0: "not configured", 1: "mirroring", -1: "FAILING"}.get(snap["redis_status"], "?")
    rows = [
        ("kill switch", "ON" if snap["kill_switch"] else "off"),
        ("trading state", snap["trading_state"] + (f" ({snap['halt_reason']})" if snap["halt_reason"] else "")),
        ("daily PnL", f"{snap['daily_pnl']:,.2f}"), ("realized", f"{snap['realized_pnl']:,.2f}"),
        ("unrealized", f"{snap['unrealized_pnl']:,.2f}"), ("fees", f"{snap['fees']:,.2f}"),
        ("open orders", str(snap["open_orders"])), ("checks", f"{snap['checks']:,}"),
        ("approved", f"{snap['approved']:,}"), ("rejected", f"{snap['rejected']:,}"),
        ("kill-switch cancels", f"{snap['kill_cancels']:,}"), ("redis", redis),
    ]
    rows += [(f"  reject {reason}", f"{count:,}") for reason, count in sorted(snap["reject_counts"].items())]
    for field, value in rows:
        table.add_row(field, value)
    Console().print(table)


@risk_app.command("reset-state")
def reset_state_command(
    config: Path = ConfigOption,
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Delete the risk state mirrored in Redis (positions, PnL, open orders): the next start begins flat."""
    redis_config = _config(config).redis
    if not redis_config.enabled:
        typer.echo("[redis] url is not set: there is no mirrored state (risk state lives in shared memory only)")
        return
    if not yes:
        typer.confirm(f"delete risk state under {redis_config.key('risk')} at {redis_config.url}?", abort=True)
    from hftshm.risk.redis_mirror import delete_state

    deleted = delete_state(redis_config)
    typer.echo(f"deleted {deleted} key(s) under {redis_config.key('risk')}")
