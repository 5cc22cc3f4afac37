"""CLI: ``hftshm kill-switch on|off`` and ``hftshm risk state|status|reset-state``.

These write the running platform's shared-memory risk control block, found through the run manifest
of ``--run-dir`` (or named directly with ``--segment``); the risk check reads it on every intent, so
the change applies from the next check. Every change is also persisted (``<run_dir>/controls.json``,
and with ``[redis] url`` the keys ``hftshm:<namespace>:kill_switch`` / ``trading_state``, where another
host's platform sees it) and audited: with no platform running it waits there for the next start.
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


def _operator_controls(config_path: Path, run_dir: Path | None, segment: str | None):
    """The control path every CLI change takes: running block (if any), persisted copies, audit."""
    from hftshm.audit.controls import operator_controls

    cfg = _config(config_path)
    block = _attach(run_dir, segment, config_path, required=segment is not None)  # a named block must exist
    return operator_controls(cfg, run_dir or cfg.platform.run_dir, find_block=lambda: block), block


def _cli_actor():
    from hftshm.audit.controls import Actor
    from hftshm.audit.log import os_user

    return Actor(os_user(), "", "cli")


def _finish(ops, block, result: dict, what: str) -> None:
    where = f"in {block.name} (epoch {block.epoch})" if block is not None else \
        f"persisted in {ops.store.path}: no platform runs here; the next start applies it"
    typer.echo(f"{what} {where}")
    if ops.store.redis_config is not None and not result["redis_error"]:
        typer.echo(f"Redis {ops.store.redis_config.key('kill_switch')} / {ops.store.redis_config.key('trading_state')} "
                   "updated")
    if block is not None:
        block.close()
    if ops.audit is not None:
        ops.audit.try_drain()  # the row is in the journal already; delivered now if the database is up
    if result["redis_error"]:
        typer.secho(result["redis_error"], fg="red", err=True)
        raise typer.Exit(1)


def kill_switch_command(
    state: str = typer.Argument(..., help="on: reject every new order and cancel all open ones; off: resume"),
    run_dir: Path = RunDirOption, segment: str = SegmentOption, config: Path = ConfigOption,
) -> None:
    """Turn the kill switch on or off, with or without a running platform.

    On: from the next check every new order and replace is rejected (kill_switch), and the risk worker
    sends a cancel for every open order it knows. Off: orders are checked normally again (the trading
    state is unchanged; see 'hftshm risk state'). The setting is persisted in the run directory (and
    Redis when configured): a platform started while it is on starts halted. Audited (hftshm audit).
    """
    if state.lower() not in ("on", "off"):
        typer.secho(f"kill-switch takes 'on' or 'off', not {state!r}", fg="red", err=True)
        raise typer.Exit(2)
    on = state.lower() == "on"
    ops, block = _operator_controls(config, run_dir, segment)
    result = ops.set_kill_switch(on, _cli_actor())
    _finish(ops, block, result, f"kill switch {'ON' if on else 'off'}")


@risk_app.command("state")
def state_command(
    state: str = typer.Argument(..., help="active | reducing (only position-reducing orders) | halted (only cancels)"),
    run_dir: Path = RunDirOption, segment: str = SegmentOption, config: Path = ConfigOption,
) -> None:
    """Set the trading state, with or without a running platform (persisted and audited)."""
    from hftshm.codes import TradingState, parse_code

    try:
        trading_state = parse_code(TradingState, state, "trading state")
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    ops, block = _operator_controls(config, run_dir, segment)
    result = ops.set_trading_state(trading_state, _cli_actor())
    _finish(ops, block, result, f"trading state {trading_state.name.lower()}")


@risk_app.command("status")
def status_command(
    run_dir: Path = RunDirOption, segment: str = SegmentOption, config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="print the control block as JSON"),
) -> None:
    """Kill switch, trading state, PnL summary and reject counts of the running platform; with none
    running, the persisted controls the next start will apply."""
    block = _attach(run_dir, segment, config, required=False)
    if block is None:
        from hftshm.audit.controls import operator_controls

        cfg = _config(config)
        persisted = operator_controls(cfg, run_dir or cfg.platform.run_dir, audit=False).current()
        if as_json:
            typer.echo(json.dumps(persisted, indent=2))
        else:
            typer.echo(f"no platform running; persisted controls: kill switch "
                       f"{'ON' if persisted['kill_switch'] else 'off'}, trading state {persisted['trading_state']}"
                       + (f" (set by {persisted['changed_by']} via {persisted['source']})" if persisted['changed_by'] else ""))
        return
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
        # the account's unit: every symbol's PnL in the quote currency (an inverse symbol's coin at its mid)
        ("daily PnL (USD)", f"{snap['daily_pnl']:,.2f}"), ("realized (USD)", f"{snap['realized_pnl']:,.2f}"),
        ("unrealized (USD)", f"{snap['unrealized_pnl']:,.2f}"), ("fees (USD)", f"{snap['fees']:,.2f}"),
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
