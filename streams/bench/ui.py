"""The progress lines ``pulse bench`` shows while it runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Ui:
    """Rich status/progress lines for the phases of a run (quiet ones when not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        with self.console.status(text):
            yield

    @contextlib.contextmanager
    def progress(self, text: str, total: int) -> Iterator[Callable[[int], None]]:
        bar = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=True,
        )  # fmt: skip
        with bar:
            task = bar.add_task(text, total=total)
            yield lambda n: bar.update(task, completed=n)

    def done(self, text: str) -> None:
        self.console.print(f"[green]✓[/] {text}")
