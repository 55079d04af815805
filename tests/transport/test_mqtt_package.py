"""Package-level rules: public names, the sans-IO boundary, settings validation."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import astraea.transport
from astraea.transport.settings import TransportSettings

SANS_IO_MODULES = ["acl", "connection_state", "identity", "packets", "session_store", "sessions"]
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "uvloop"}


def test_public_names_exist() -> None:
    for name in astraea.transport.__all__:
        assert hasattr(astraea.transport, name)


@pytest.mark.parametrize("module", SANS_IO_MODULES)
def test_sans_io_modules_import_no_io(module: str) -> None:
    source = Path(astraea.transport.__file__).with_name(f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("astraea.transport."):
                assert node.module.rsplit(".", 1)[1] in SANS_IO_MODULES
    assert not imported & IO_MODULES


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_inflight": 0},
        {"max_inflight": 65_535},
        {"max_pending_packets": 0},
        {"connect_timeout": 0},
    ],
)
def test_settings_reject_unusable_limits(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TransportSettings(Path("ca"), Path("cert"), Path("key"), **overrides)
