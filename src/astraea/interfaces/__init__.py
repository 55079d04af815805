"""Interfaces the platform ships: Astarte's standard interfaces (`astarte/`) and the
interfaces Edgehog devices declare (`edgehog/`), as JSON files installed with the package."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).parent
ASTARTE_STANDARD = SHIPPED / "astarte"
EDGEHOG = SHIPPED / "edgehog"
