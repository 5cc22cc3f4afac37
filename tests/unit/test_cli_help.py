"""Every command's --help reads as written: rich markup would eat square-bracketed words
("a [strategies] instance" printed as "a  instance"), so the app renders help as plain text."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from hftshm.cli import app

BRACKETED = re.compile(r"\[[^\]\s]+\]")


def walk(command, path: tuple[str, ...] = ()):
    """Every command of the tree (typer's own click: groups are the ones with ``commands``)."""
    yield path, command
    if getattr(command, "commands", None):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, path + (name,))


def help_strings(command) -> list[str]:
    texts = [command.help or "", command.short_help or ""]
    texts += [getattr(p, "help", None) or "" for p in command.params]
    return [t for t in texts if t]


def test_every_bracketed_word_of_every_help_is_printed():
    root = typer.main.get_command(app)
    runner = CliRunner()
    checked = 0
    for path, command in walk(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
        assert result.exit_code == 0, (path, result.output)
        flat = " ".join(result.output.split())
        for text in help_strings(command):
            for word in BRACKETED.findall(text):
                assert word in flat, f"'hftshm {' '.join(path)} --help' lost {word!r}"
                checked += 1
    assert checked >= 3  # [strategies], [platform], [risk] ... are among them


def test_backtest_help_names_the_strategies_section():
    output = " ".join(CliRunner().invoke(app, ["backtest", "--help"], env={"COLUMNS": "400"}).output.split())
    assert "a [strategies] instance, built-in name" in output
