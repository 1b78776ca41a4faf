"""What ``pulse bench`` concludes and shows: the summary, the targets and the Markdown report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.bench.config import Throughput
from streams.bench.latency import LatencyResult
from streams.stage_costs import render_costs


def summarize(
    operators: str,
    events: int,
    throughput: dict[str, Throughput],
    latency: Sequence[LatencyResult],
    costs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, bool | None]]:
    """The run's headline ratios and which targets it met (``None``: not measured, or a run with
    another ``PULSE_OPERATORS`` than every operator, whose rows are not the targets')."""
    pulse = throughput["pulse_batch"]
    faust_base = throughput["faust_baseline"]
    at_10k = next((r for r in latency if r.offered_rate == 10_000 and r.operators == operators), None)

    def vs_faust(t: Throughput) -> float | None:
        return round(t.events_per_s / faust_base.events_per_s, 2) if faust_base.events_per_s else None

    two = throughput["pulse_batch_2_processes"]
    summary = {
        "operators": operators,
        "pulse_events_per_s": round(pulse.events_per_s, 1),
        "pulse_ratio_to_raw": pulse.ratio_to_raw,
        "pulse_vs_faust_baseline": vs_faust(pulse),
        "pulse_faust_engine_vs_faust_baseline": vs_faust(throughput["pulse_faust"]),
        "core_ratio_to_raw": throughput["pulse_batch_core"].ratio_to_raw,
        "two_processes_speedup": round(two.events_per_s / pulse.events_per_s, 3)
        if pulse.events_per_s
        else None,
        "in_process_us_per_event": costs["total_us_per_event"],
    }
    rss_ok = pulse.peak_rss_bytes is not None and pulse.peak_rss_bytes <= 500 * 2**20
    targets: dict[str, bool | None] = {
        "all operators: ≥ 50 % of the raw consumer's events/s": (pulse.ratio_to_raw or 0) >= 0.5,
        "all operators: p99 publish → visible ≤ 250 ms at 10,000 events/s": (
            (at_10k.p99_ms <= 250 and at_10k.kept_up) if at_10k else None
        ),
        "all operators: need/offer → candidate visible p99 ≤ 1 s at 10,000 events/s": (
            (at_10k.p99_ms <= 1000 and at_10k.kept_up) if at_10k else None
        ),
        "Faust engine, all operators: ≥ 10× the idiomatic Faust baseline": (
            (summary["pulse_faust_engine_vs_faust_baseline"] or 0) >= 10
        ),
        "batch engine, all operators: ≥ 10× the idiomatic Faust baseline": (
            summary["pulse_vs_faust_baseline"] or 0
        )
        >= 10,
        f"all operators: peak RSS ≤ 500 MB on the {events:,}-event stream": rss_ok,
    }
    if operators not in ("all", "default"):
        targets = dict.fromkeys(targets)
    return summary, targets


def mb(n: int | None) -> str:
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
        rss = mb(t["peak_rss_bytes"])
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
            f" | {mb(r['peak_rss_bytes'])}"
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
