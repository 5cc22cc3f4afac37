"""CLI: ``hftshm layouts`` prints every record layout as a table."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("layouts")(layouts_command)


def layouts_command(name: str = typer.Argument(None, help="one layout (default: all)")) -> None:
    """Print every record layout declared in layouts/: field, type, offset, size, and the fingerprint."""
    from hftshm.transport.layout import all_layouts, load

    for layout in [load(name)] if name else all_layouts():
        typer.echo(format_layout(layout))


def format_layout(layout) -> str:
    lines = [f"{layout.name}  version {layout.version}  itemsize {layout.itemsize}  fingerprint {layout.fingerprint:016x}",
             f"  {'field':<24}{'type':<10}{'offset':>7}{'size':>6}"]
    for f in layout.fields:
        ftype = f.type + (f"[{','.join(map(str, f.shape))}]" if f.shape else "")
        lines.append(f"  {f.name:<24}{ftype:<10}{f.offset:>7}{f.size:>6}")
    return "\n".join(lines) + "\n"
