"""What ``pulse bench`` shows: progress lines while it runs and the Markdown report after."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.stage_costs import render_costs

# --------------------------------------------------------------------------------------------------
# Progress display
# --------------------------------------------------------------------------------------------------


class _Ui:
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


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _mb(n: int | None) -> str:
    return f"{n / 2**20:.0f} MB" if n else "–"


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render_markdown(report: dict[str, Any]) -> str:
    """The short human summary of ``bench.json``."""
    m = report["machine"]
    v = m["versions"]
    cfg = report["config"]
    quick = " — QUICK run: figures are not meaningful" if cfg["quick"] else ""
    lines = [
        f"# Pulse bench — {report['date']}",
        "",
        f"{m['cpu_model']}, {m['usable_cores']} usable cores, {(m['ram_bytes'] or 0) / 2**30:.0f} GiB RAM;"
        f" Python {m['python']}; librdkafka {m['versions'].get('librdkafka')},"
        f" faust-streaming {v.get('faust-streaming')}, redis-server {v.get('redis-server')}."
        f" Broker: {report['broker']}. {cfg['events']:,} simulated events ({report['dataset']['messages']:,}"
        f" messages, {cfg['partitions']} partitions × 3 topics){quick}.",
        "",
        "## Throughput (same data)",
        "",
        "| name | events/s | ratio to raw | CPU µs/msg | peak RSS | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for t in report["throughput"].values():
        ratio = _num(t["ratio_to_raw"], ".3f")
        cpu = _num(t["cpu_us_per_message"], ".1f")
        rss = _mb(t["peak_rss_bytes"])
        lines.append(f"| {t['name']} | {t['events_per_s']:,.0f} | {ratio} | {cpu} | {rss} | {t['notes']} |")
    s = report["summary"]
    lines += [
        "",
        f"With `PULSE_OPERATORS={s['operators']}` Pulse (batch) is"
        f" **{_num(s['pulse_vs_faust_baseline'], '.1f')}×** the idiomatic Faust baseline"
        f" and {_num(s['pulse_ratio_to_raw'], '.1%')} of the raw consumer (core operators:"
        f" {_num(s['core_ratio_to_raw'], '.1%')}); the Faust engine"
        f" {_num(s['pulse_faust_engine_vs_faust_baseline'], '.1f')}× the baseline;"
        f" `--processes 2`: {_num(s['two_processes_speedup'], '.2f')}× one process.",
    ]
    costs = report.get("operator_costs")
    if costs:
        lines += [
            "",
            f"## Cost per event, in-process (CPU µs; `PULSE_OPERATORS={costs['operators_setting']}`,"
            f" batches of {costs['batch']:,}, the same {costs['messages']:,} messages)",
            "",
            render_costs(costs),
        ]
    lines += [
        "",
        "## Latency (batch engine, produce → visible in Redis)",
        "",
        "| operators | offered/s | achieved/s | messages | p50 ms | p99 ms | p99.9 ms | max ms | drain ms"
        " | kept up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["latency"]:
        lines.append(
            f"| {r.get('operators', 'default')} | {r['offered_rate']:,} | {r['achieved_rate']:,.0f}"
            f" | {r['messages']:,} | {r['p50_ms']:.1f}"
            f" | {r['p99_ms']:.1f} | {r['p999_ms']:.1f} | {r['max_ms']:.1f} | {r['drain_ms']:.0f}"
            f" | {'yes' if r['kept_up'] else 'no'} |"
        )
    lines += [
        "",
        "## Scale (batch engine)",
        "",
        "| communities | members | messages | events/s | ratio to raw | CPU µs/msg | peak RSS"
        " | active members | member-board bytes / active member |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["scale"]:
        lines.append(
            f"| {r['communities']:,} | {r['members']:,} | {r['messages']:,} | {r['events_per_s']:,.0f}"
            f" | {_num(r['ratio_to_raw'], '.3f')} | {_num(r['cpu_us_per_message'], '.1f')}"
            f" | {_mb(r['peak_rss_bytes'])}"
            f" | {r['active_members']:,}"
            f" | {r['bytes_per_active_member']:,.0f} |"
        )
    targets = report["targets"]
    lines += [
        "",
        "## Targets",
        "",
        *(f"- {'✅' if ok else '❌'} {name}" for name, ok in targets.items() if ok is not None),
        "",
        f"Run took {report['run_seconds']:.0f} s. Machine-readable: `bench.json`.",
        "",
    ]
    return "\n".join(lines)


