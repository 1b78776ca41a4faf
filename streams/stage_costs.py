"""What each stage and each operator costs per event, measured in-process on the bench stream.

``pulse bench`` runs workers as subprocesses, which tells how fast the whole worker goes but not
where its time goes.  This module feeds the same simulated stream (the bench's seed, communities,
members and duplicate rate) through the worker's own objects — :class:`~streams.pipeline.Pipeline`
then :class:`~streams.operators.runner.OperatorRunner` with every operator's ``apply_batch`` timed —
in batches of the worker's size, with no Kafka and no Redis.  Each figure is CPU time of this process
(``time.process_time``), so waiting for a core on a shared machine does not count:

* ``decode``: :meth:`~schemas.events.EventDecoder.decode` alone (JSON parse, validation, the
  event object), timed on a separate pass over the same messages;
* ``pipeline``: :meth:`~streams.pipeline.Pipeline.apply_batch` (decode again, event-time alignment,
  lateness, de-duplication, the activity deltas);
* one row per operator: its ``apply_batch``;
* ``text stage``: :func:`~online_models.text_stage.annotate` (each post analysed once, shared by
  the operators; per applied event, of which about a third are posts);
* ``persistence``: the rest of :meth:`OperatorRunner.run` (pickling snapshots and event logs).

The Redis commit (the Lua script, run by the Redis server) and Kafka are not included: the bench's
subprocess rows hold them.  ``python -m streams.stage_costs --profile FILE`` also writes a cProfile
summary (top functions by own time, cost grouped by source file).

>>> costs = measure_stage_costs(events=300, operators="forecasts,turnout", batch=100, communities=5)
>>> sorted(costs["operators"]), costs["events"] > 0, costs["stages_us_per_event"]["decode"] > 0
(['forecasts', 'turnout'], True, True)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from online_models.text_stage import annotate
from streams.config import Settings
from streams.engines.applier import GC_GEN0_THRESHOLD
from streams.operators.registry import build_operators
from streams.operators.runner import OperatorRunner
from streams.pipeline import Message, PartitionProgress, Pipeline, TopicPartition

PARTITIONS = 4


def bench_messages(
    events: int, communities: int = 200, members: int = 20_000, seed: int = 42, dup_rate: float = 0.01
) -> list[Message]:
    """The bench's stream (its simulator settings) as engine-neutral messages."""
    from streams.simulator import SimConfig, Simulator

    config = SimConfig(seed=seed, events=events, communities=communities, members=members, dup_rate=dup_rate)
    return as_messages(Simulator(config).messages())


def as_messages(records: Iterable[Any]) -> list[Message]:
    """Records with ``topic`` (logical), ``key`` and ``value`` → messages partitioned by key, offsets
    in order (crc32 of the key, not Kafka's murmur2: any split by key keeps a community together)."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for m in records:
        partition = zlib.crc32(m.key or b"") % PARTITIONS
        offset = offsets[(m.topic, partition)]
        offsets[(m.topic, partition)] = offset + 1
        out.append(Message(m.topic, partition, offset, m.key, m.value))
    return out


class _Timed:
    """Wraps an operator so its ``apply_batch`` adds its duration to ``seconds``."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.name = op.name
        self.reads_text = getattr(op, "reads_text", True)
        self.seconds = 0.0

    def new_state(self, community: str) -> Any:
        return self.op.new_state(community)

    def apply_batch(self, states: dict[str, Any], events: Sequence[Any]) -> Any:
        t = time.process_time()
        try:
            return self.op.apply_batch(states, events)
        finally:
            self.seconds += time.process_time() - t


class _GcClock:
    """A ``gc.callbacks`` entry adding up the time the cyclic collector runs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections[info["generation"]] += 1


def measure_stage_costs(
    events: int = 200_000,
    operators: str = "all",
    batch: int | None = None,
    communities: int = 200,
    members: int = 20_000,
    profile: cProfile.Profile | None = None,
    messages: list[Message] | None = None,
    gc_gen0: int = GC_GEN0_THRESHOLD,
) -> dict[str, Any]:
    """Run the stream through the pipeline and the operators; µs per applied event per stage.

    ``profile``: enabled around the processing only (not the simulation)."""
    settings = Settings(_env_file=None, operators=operators)  # type: ignore[call-arg]  # defaults, no .env
    batch = batch or settings.batch_max
    msgs = messages if messages is not None else bench_messages(events, communities, members)
    pipeline = Pipeline(settings)
    timed = [_Timed(op) for op in build_operators(settings)]
    runner = OperatorRunner(timed)  # type: ignore[arg-type]
    progress: dict[TopicPartition, PartitionProgress] = {}
    gc.collect()
    gc.freeze()  # as the worker does (streams.engines.applier.tune_gc)
    old_threshold = gc.get_threshold()
    gc.set_threshold(gc_gen0, 20, 20)  # as `pulse worker` (streams.engines.applier.tune_gc)
    gc_clock = _GcClock()
    gc.callbacks.append(gc_clock)
    try:
        if profile:
            profile.enable()
        decoder = pipeline.decoder
        latest = decoder.latest_ts()
        t = time.process_time()
        for m in msgs:
            decoder.decode(m.topic, m.value, latest)
        decode_s = time.process_time() - t
        pipeline_s = text_s = run_s = 0.0
        applied = 0
        for at in range(0, len(msgs), batch):
            t = time.process_time()
            result = pipeline.apply_batch(msgs[at : at + batch], progress)
            t2 = time.process_time()
            runner.load({community: ({}, []) for community in runner.missing(result.events)})
            t3 = time.process_time()
            if runner.reads_text:  # what run() does first; timed apart
                annotate(result.events, runner.text_max_chars)
            t4 = time.process_time()
            runner.run(result.events)
            t5 = time.process_time()
            pipeline_s += t2 - t
            text_s += t4 - t3
            run_s += t5 - t4
            applied += len(result.events)
        if profile:
            profile.disable()
    finally:
        gc.callbacks.remove(gc_clock)
        gc.set_threshold(*old_threshold)
        gc.unfreeze()
    ops_s = {op.name: op.seconds for op in timed}
    per = 1e6 / max(1, applied)
    stages = {
        "decode": decode_s * 1e6 / max(1, len(msgs)),  # per message: every message is decoded
        "pipeline": pipeline_s * per,
        "text stage": text_s * per,  # per applied event (posts are about a third of them)
        **{f"operator:{n}": s * per for n, s in ops_s.items()},
        "persistence": (run_s - sum(ops_s.values())) * per,
        "of which gc": gc_clock.seconds * per,  # collections, wherever they fell (decode pass included)
    }
    total = pipeline_s + text_s + run_s
    return {
        "operators_setting": operators,
        "events": applied,
        "messages": len(msgs),
        "batch": batch,
        "communities": communities,
        "members": members,
        "operators": {n: round(s * per, 2) for n, s in ops_s.items()},
        "stages_us_per_event": {k: round(v, 2) for k, v in stages.items()},
        "total_us_per_event": round(total * per, 2),
        "in_process_events_per_s": round(applied / total, 1) if total else None,
        "gc_collections": gc_clock.collections,
    }


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_memory(
    events: int, communities: int, members: int, operators: str = "all", batch: int = 20_000
) -> dict[str, Any]:
    """Memory of the live operator states after ``events`` events of the given shape, in this
    process: RSS growth over the process with everything imported and the messages built (after
    a full collection), and the pickled size of each operator's states (what Redis holds), per
    community and per active member.  Run each shape in a fresh process (``--memory``): freed
    memory is not always returned to the OS, so shapes measured in one process would overlap."""
    import pickle

    msgs = bench_messages(events, communities, members)
    settings = Settings(_env_file=None, operators=operators)  # type: ignore[call-arg]
    pipeline = Pipeline(settings)
    runner = OperatorRunner(build_operators(settings), max_states=10**9)
    progress: dict[TopicPartition, PartitionProgress] = {}
    gc.collect()
    base = _rss_bytes()
    seen_members: set[str] = set()
    seen_communities: set[str] = set()
    for at in range(0, len(msgs), batch):
        result = pipeline.apply_batch(msgs[at : at + batch], progress)
        runner.load({community: ({}, []) for community in runner.missing(result.events)})
        runner.run(result.events)
        seen_members.update(ev.member for ev in result.events)
        seen_communities.update(ev.community for ev in result.events)
    del msgs
    gc.collect()
    grown = _rss_bytes() - base
    pickled = {
        name: sum(len(pickle.dumps(st, protocol=5)) for st in states.values())
        for name, states in runner.states.items()
    }
    n_c, n_m = len(seen_communities), len(seen_members)
    return {
        "events": events, "communities": n_c, "active_members": n_m, "operators": operators,
        "rss_growth_bytes": grown,
        "rss_growth_per_community": round(grown / max(1, n_c)),
        "pickled_state_bytes": pickled,
        "pickled_per_community": {k: round(v / max(1, n_c)) for k, v in pickled.items()},
        "pickled_per_active_member": {k: round(v / max(1, n_m), 1) for k, v in pickled.items()},
    }  # fmt: skip


def profile_summary(prof: cProfile.Profile, events: int, top: int = 30) -> str:
    """cProfile's top functions by own time, and own time grouped by source file (µs/event)."""
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_file: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        short = _short(filename)
        by_file[short] += tt
        rows.append((tt, ct, nc, f"{short}:{line}({func})"))
    rows.sort(reverse=True)
    total = sum(by_file.values())
    lines = [
        f"Total profiled time {total:.2f} s over {events:,} applied events"
        f" ({total * 1e6 / max(1, events):.1f} µs/event under cProfile, which inflates call-heavy code).",
        "",
        "### Own time by source file",
        "",
        "| file | s | µs/event | share |",
        "|---|---:|---:|---:|",
    ]
    for name, tt in sorted(by_file.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {name} | {tt:.2f} | {tt * 1e6 / max(1, events):.2f} | {tt / total:.1%} |")
    lines += [
        "",
        f"### Top {top} functions by own time",
        "",
        "| function | calls | own s | cumulative s | own µs/event |",
        "|---|---:|---:|---:|---:|",
    ]
    for tt, ct, nc, name in rows[:top]:
        lines.append(f"| `{name}` | {nc:,} | {tt:.2f} | {ct:.2f} | {tt * 1e6 / max(1, events):.2f} |")
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return filename.removeprefix(root)


def render_costs(costs: dict[str, Any]) -> str:
    """A markdown table of :func:`measure_stage_costs`' figures."""
    lines = ["| stage | µs per event |", "|---|---:|"]
    for name, us in costs["stages_us_per_event"].items():
        note = " (per message, separate pass; also inside pipeline)" if name == "decode" else ""
        lines.append(f"| {name}{note} | {us:.1f} |")
    lines.append(
        f"| **total** (pipeline + text stage + operators + persistence)"
        f" | **{costs['total_us_per_event']:.1f}** |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--operators", default="all")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="also write a cProfile summary here")
    parser.add_argument(
        "--memory", default=None, metavar="COMMUNITIES:MEMBERS",
        help="instead: memory of the live states after --events events of this shape (JSON on stdout)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.memory:
        c, m = (int(x) for x in args.memory.split(":"))
        print(orjson.dumps(measure_memory(args.events, c, m, args.operators)).decode())
        return
    msgs = bench_messages(args.events)
    costs = measure_stage_costs(args.events, args.operators, args.batch, messages=msgs)
    print(render_costs(costs))
    print(
        f"in-process: {costs['in_process_events_per_s']:,.0f} events/s (CPU);"
        f" gc collections by generation: {costs['gc_collections']}"
    )
    if args.profile:
        prof = cProfile.Profile()
        profiled = measure_stage_costs(args.events, args.operators, args.batch, profile=prof, messages=msgs)
        head = (
            f"# Profile of the all-operators path — {datetime.now(UTC).date()}\n\n"
            f"`python -m streams.stage_costs --events {args.events} --operators {args.operators}"
            f" --profile ...`: the bench stream (200 communities, 20,000 members, 1 % duplicates),"
            f" batches of {costs['batch']:,}, in-process, no Kafka or Redis.\n\n"
            "## Per stage and per operator (without the profiler)\n\n"
        )
        body = profile_summary(prof, profiled["events"])
        args.profile.write_text(head + render_costs(costs) + "\n\n## cProfile\n\n" + body + "\n")
        print(f"wrote {args.profile}")


if __name__ == "__main__":
    main()
