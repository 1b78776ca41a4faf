"""Terminal tables of what Redis holds, for ``pulse leaderboard`` and ``pulse demo``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from streams import queries
from streams.config import Settings


def wide_console(**kwargs: Any) -> Console:
    """A console that keeps tables readable when the output is not a terminal (logs, CI)."""
    probe = Console(**kwargs)
    return probe if probe.is_terminal else Console(width=120, **kwargs)


def leaderboard_table(
    client: Any, settings: Settings, start: int, community: str | None, limit: int
) -> Table:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    size = settings.window_seconds
    if community:
        table = Table(title=f"Members of {community} · window {when} ({size}s)")
        table.add_column("#", justify="right")
        table.add_column("member")
        table.add_column("contribution", justify="right")
        for i, r in enumerate(queries.top_members(client, community, size, start, limit), 1):
            table.add_row(str(i), r.name, f"{r.score:g}")
        return table
    table = Table(
        title=f"Communities · window {when} ({size}s)", caption="I interactions · C participants · H posts"
    )
    for col in ("#", "community", "score", "I", "C", "H", "top member"):
        table.add_column(col, justify="left" if col in ("community", "top member") else "right", no_wrap=True)
    for i, r in enumerate(queries.top_communities(client, size, start, limit), 1):
        a = queries.activity(client, r.name, size, start)
        top = queries.top_members(client, r.name, size, start, 1)
        table.add_row(
            str(i),
            r.name,
            f"{r.score:.1f}",
            f"{a.get('interactions', 0):.0f}",
            f"{a.get('participants', 0):.0f}",
            f"{a.get('posts', 0):.0f}",
            f"{top[0].name} ({top[0].score:g})" if top else "",
        )
    return table
