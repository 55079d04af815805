"""What a newcomer meets before calling any API: help texts, the version, table layout."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from astraea import __version__
from astraea.cli.main import app
from astraea.cli.output import print_table


def _commands(
    command: TyperCommand | TyperGroup, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], TyperCommand | TyperGroup]]:
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            assert isinstance(sub, TyperCommand | TyperGroup)
            yield from _commands(sub, (*path, name))


_ROOT = get_command(app)
assert isinstance(_ROOT, TyperGroup)
ALL = list(_commands(_ROOT))


def _shows_default(option: TyperOption) -> bool:
    """Typer shows a default unless it is None, or False for a flag without a --no- form."""
    if isinstance(option.show_default, str):
        return True
    off_flag = option.is_flag and not option.default and not option.secondary_opts
    return option.default is not None and not off_flag


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """No credentials anywhere: not in the environment, not in the working folder."""
    for name in [name for name in os.environ if name.startswith("ASTRAEA_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")
    return CliRunner()


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=" ".join)
def test_every_help_works_without_credentials_and_shows_every_default(
    runner: CliRunner, path: tuple[str, ...]
) -> None:
    command = dict(ALL)[path]
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    options = [p for p in command.params if isinstance(p, TyperOption)]
    for option in options:
        # Written into a help text, `[default: …]` is taken for rich markup and vanishes.
        assert "[default:" not in (option.help or ""), option.opts
    expected = sum(_shows_default(option) for option in options)
    assert result.output.count("[default:") == expected, result.output


def test_defaults_that_are_not_values_are_spelled_out(runner: CliRunner) -> None:
    out = runner.invoke(app, ["up", "--help"]).output
    for default in (
        "mqtts://localhost:<mqtt-port>",
        "SQLite in the data folder",
        "in this process",
    ):
        assert default in out
    out = runner.invoke(app, ["housekeeping", "--help"]).output
    assert "astraea-data/keys/housekeeping_private.pem" in out


def test_housekeeping_without_a_key_fails_only_when_calling(runner: CliRunner) -> None:
    result = runner.invoke(app, ["housekeeping", "realms", "list"])
    assert result.exit_code == 1
    assert "give --token or --private-key" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"astraea {__version__}\n")


def test_tables_never_break_device_ids(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    ids = ["2TBn-jNESuuHamE2Zo1anA", "f0VMRgIBAQAAAAAAAAAAAA"]
    stamp = "2026-12-03T20:00:00.000Z"
    print_table(
        ["device", "connected", "last connection", "last disconnection", "aliases"],
        [(device, "true", stamp, stamp, "living-room-sensor, kitchen") for device in ids],
    )
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for device in ids:
        assert re.search(rf"│ {re.escape(device)} +│", out), out


def test_gitignore_covers_what_the_readme_creates() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            "git",
            "check-ignore",
            "--no-index",
            "myrealm.pem",
            "sdk-venv/",
            "device-data/",
            "astraea-data/",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == ["myrealm.pem", "sdk-venv/", "device-data/", "astraea-data/"]
