"""The README's walk-through, checked against what ships: its trigger files name interfaces
that exist, its example device sends what fires them, and every `astraea` command it shows
exists."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from typer.core import TyperGroup
from typer.main import get_command

from astraea.cli.main import app
from astraea.interfaces import ASTARTE_STANDARD

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _files() -> dict[str, Any]:
    """The JSON files the README writes with `cat > NAME.json <<'EOF'`."""
    blocks = re.findall(r"cat > (\S+\.json) <<'EOF'\n(.*?)\nEOF\n", README, re.DOTALL)
    return {name: json.loads(text) for name, text in blocks}


def _shipped_majors() -> dict[str, int]:
    documents = (json.loads(p.read_text()) for p in ASTARTE_STANDARD.glob("*.json"))
    return {d["interface_name"]: d["version_major"] for d in documents}


def test_trigger_files_name_shipped_interfaces_at_their_major() -> None:
    files = _files()
    assert {"on-connect.json", "hot.json"} <= set(files)
    majors = _shipped_majors()
    for trigger in files.values():
        for simple in trigger["simple_triggers"]:
            if simple["type"] == "data_trigger":
                assert majors[simple["interface_name"]] == simple["interface_major"]


def test_the_example_device_sends_a_value_that_fires_the_data_trigger() -> None:
    [hot] = _files()["hot.json"]["simple_triggers"]
    assert hot["value_match_operator"] == ">"
    sent = re.search(r"for degrees in \(([^)]*)\):", README)
    assert sent is not None
    assert any(float(value) > hot["known_value"] for value in sent.group(1).split(","))


def test_every_astraea_command_of_the_readme_exists() -> None:
    root = get_command(app)
    shown = re.findall(r"(?:^|&& |\$\()astraea ([a-z][^\n)`]*)", README, re.MULTILINE)
    assert len(shown) > 15
    for line in shown:
        command = root
        words = iter(shlex.split(line.rstrip("\\ ").split("#")[0]))
        for word in words:
            if not isinstance(command, TyperGroup):
                break
            if word.startswith("-"):  # a group option, and its value unless a flag
                [option] = [p for p in command.params if word in p.opts]
                if not getattr(option, "is_flag", False):
                    next(words)
                continue
            assert word in command.commands, line
            command = command.commands[word]
        assert not isinstance(command, TyperGroup), f"{line}: not a command"
