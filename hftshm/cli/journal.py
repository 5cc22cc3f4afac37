"""CLI: ``hftshm journal replay``: order events and execution reports read back from JetStream."""

from __future__ import annotations

from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG, ConfigError

journal_app = typer.Typer(help="The order-event journal a trading host exports to NATS JetStream.",
                          no_args_is_help=True)

LAYOUT_OF_RING = {"oms.events": "order_event", "oms.reports": "execution_report"}


def register(app: typer.Typer) -> None:
    app.add_typer(journal_app, name="journal")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(code)


@journal_app.command("replay")
def replay_command(
    start: str = typer.Option(None, "--from", help="first record: an id (order event_id / report seq) or an ISO time"),
    stop: str = typer.Option(None, "--to", help="last record (inclusive): an id or an ISO time"),
    ring: str = typer.Option("oms.events", help="exported ring: oms.events (order events) or oms.reports"),
    namespace: str = typer.Option(None, help="the exporting platform's \\[bridge] namespace (default: the config's)"),
    subject: str = typer.Option(None, help="NATS subject (default hftshm.<namespace>.<ring>)"),
    layout: str = typer.Option(None, help="record layout (default: by ring)"),
    database: str = typer.Option(None, "--database", help="write order events into this OMS database URL "
                                 "(sqlite:///file or postgresql+psycopg://...); default: print them"),
    url: str = typer.Option(None, "--url", help="NATS server (default \\[bridge] url)"),
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file"),
) -> None:
    """Re-read order events (or execution reports) retained in JetStream: print them, or rebuild the
    OMS tables (orders, order_events, fills) in another database from them."""
    import dataclasses

    from hftshm.bridge.config import BridgeConfig
    from hftshm.bridge.journal import Bound, read_journal
    from hftshm.bridge.nats_thread import BridgeError
    from hftshm.config import Section, read_toml
    from hftshm.transport import layout as layouts

    try:
        raw = read_toml(config).get("bridge", {}) if Path(config).exists() else {}
        bridge = BridgeConfig.from_section(Section("bridge", raw))
        bridge = dataclasses.replace(bridge, url=url or bridge.url, namespace=namespace or bridge.namespace)
        first, last = Bound.parse(start, "--from"), Bound.parse(stop, "--to")
        layout_name = layout or LAYOUT_OF_RING.get(ring)
        if layout_name is None:
            raise ConfigError(f"ring {ring!r}: say which --layout its records have")
        record_layout = layouts.load(layout_name)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    if database and record_layout.name != "order_event":
        _fail("--database rebuilds the OMS tables from order events: use it with --ring oms.events")
    subject = subject or bridge.subject(ring)
    store = None
    if database:
        from hftshm.oms.store import Store, StoreError

        try:
            store = Store(database)
        except StoreError as exc:
            _fail(f"--database: {exc}")
    total = 0
    try:
        for batch in read_journal(bridge, subject, record_layout, first, last):
            total += len(batch.records)
            if store is not None:
                store.write_events(batch.records)
            else:
                for record in batch.records:
                    typer.echo(_line(record, batch))
    except BridgeError as exc:
        _fail(str(exc), 1)
    finally:
        if store is not None:
            store.close()
    where = f"into {database}" if database else "printed"
    typer.secho(f"{total} {record_layout.name} records from {subject} {where}", err=True)


def _line(record, batch) -> str:
    from hftshm import codes

    enums = {"kind": codes.OrderEventKind, "state": codes.OrderState, "prev_state": codes.OrderState,
             "side": codes.Side, "event": codes.ReportEvent, "reason": codes.Reason}
    parts = [batch.stored.isoformat(timespec="microseconds")]
    for name in record.dtype.names:
        value = record[name]
        if getattr(value, "shape", ()) != ():
            continue
        if name in enums:
            try:
                value = enums[name](int(value)).name
            except ValueError:
                pass  # a code this version does not know: the number
        parts.append(f"{name}={value}")
    return " ".join(parts)
