"""Output conventions shared by every CLI group.

Machine-readable values (ids, tokens, PEMs) go to stdout verbatim so they can be piped;
errors are a single red line on stderr and exit code 1, never a traceback. Consoles are
built per call so they follow whatever stdout/stderr is current (tests swap them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Columns of identifiers, which are never broken across lines: a split id cannot be copied.
_ID_COLUMNS = frozenset({"device", "device id", "id"})


def print_text(text: str) -> None:
    """Write `text` verbatim: no markup, highlighting or wrapping that would corrupt values."""
    typer.echo(text)


def print_json(data: object) -> None:
    """Pretty-print `data` as JSON, highlighted only when stdout is a terminal."""
    Console().print_json(orjson.dumps(data).decode())


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None
) -> None:
    """Render rows as a table for humans; cell values are shown literally, never as markup."""
    table = Table(title=title)
    cells = [[Text("" if cell is None else str(cell)) for cell in row] for row in rows]
    for index, column in enumerate(columns):
        if column in _ID_COLUMNS:
            widest = max((row[index].cell_len for row in cells), default=0)
            table.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
        else:
            # Fold rather than truncate: interface names are long and must be readable whole.
            table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


def fail(message: str) -> NoReturn:
    """Report `message` as one red line on stderr and exit with code 1."""
    line = " ".join(message.split())
    Console(stderr=True, highlight=False).print(Text(f"Error: {line}", style="red"), soft_wrap=True)
    raise typer.Exit(code=1)
