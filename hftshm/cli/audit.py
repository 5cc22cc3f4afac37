"""CLI: ``hftshm audit``: the audit of operator control actions, newest first."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)


def audit_command(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file"),
    run_dir: Path = typer.Option(None, "--run-dir", help="run directory (default [platform] run_dir)"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000, help="rows to show"),
    action: str = typer.Option(None, "--action", help="only this action (kill_switch, trading_state, ...)"),
    source: str = typer.Option(None, "--source", help="only this source: api, cli, redis, platform"),
    outcome: str = typer.Option(None, "--outcome", help="only applied or refused"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
) -> None:
    """Who changed the kill switch, trading state, limits, strategies, or submitted a backtest: when,
    from where (api, cli, redis), the previous and new value, and whether it applied or was refused.

    Rows come from the OMS database; rows still waiting in the run directory's journal (the
    database was down) are delivered first, or shown marked pending if it is still down.
    """
    from hftshm.audit.log import AuditLog
    from hftshm.cli.risk import _config

    cfg = _config(config)
    audit = AuditLog.for_config(cfg, run_dir or cfg.platform.run_dir)
    try:
        rows, total = audit.rows(limit=limit, offset=0, action=action, source=source, outcome=outcome)
    except Exception as exc:  # noqa: BLE001 - a broken database URL: say so, exit nonzero
        typer.secho(f"cannot read the audit from {audit.db.url}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if audit.last_error:
        typer.secho(audit.last_error, fg="yellow", err=True)
    if as_json:
        typer.echo(json.dumps({"audit": rows, "total": total}, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"audit ({len(rows)} of {total})")
    for column in ("time (UTC)", "action", "target", "actor", "role", "source", "previous", "new", "outcome", "detail"):
        table.add_column(column)
    for r in rows:
        when = datetime.fromtimestamp(r["ts_unix_ns"] / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        table.add_row(when, *(escape(str(r.get(k, ""))) for k in ("action", "target", "actor", "role", "source",
                                                                   "previous", "new")),
                      ("[red]refused[/red]" if r["outcome"] == "refused" else r["outcome"])
                      + (" (pending)" if r.get("pending") else ""), escape(str(r.get("detail", ""))))
    Console().print(table)


def record_cli_action(config_path: Path, run_dir: Path | None, action: str, *, target: str = "", previous: str = "",
                      new: str = "", outcome: str = "applied", detail: str = "") -> None:
    """Audit one CLI control action (actor: the OS user). Never stops the action it records: a config
    that cannot be read only loses the row, with a warning."""
    from hftshm.audit.log import AuditEntry, AuditLog, os_user
    from hftshm.config import read_toml
    from hftshm.platform import PlatformConfig

    try:
        cfg = PlatformConfig.from_raw(read_toml(config_path), base_dir=Path(config_path).resolve().parent.parent)
        audit = AuditLog.for_config(cfg, run_dir or cfg.platform.run_dir)
        audit.record(AuditEntry(action=action, actor=os_user(), source="cli", target=target, previous=previous,
                                new=new, outcome=outcome, detail=detail[:1000]))
        audit.try_drain()
    except Exception as exc:  # noqa: BLE001
        typer.secho(f"audit not recorded: {exc}", fg="yellow", err=True)
