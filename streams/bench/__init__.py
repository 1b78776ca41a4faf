"""``pulse bench``: raw consumer vs idiomatic Faust vs Pulse, measured in one run on the same data.

Every figure is relative to what *this* machine can do right now: the same messages go through

1. a bare confluent-kafka consumer (``assign`` + ``consume(10000)``, no processing): the ceiling
   the client library and broker allow, so every other figure is also given as a ratio to it;
2. an idiomatic Faust agent (``async for value in stream``, orjson per event, a Faust Table of
   per-(community, window) counts): what a straightforward Faust service does;
3. ``pulse worker`` with each engine (``batch`` and ``faust``), as real subprocesses;

then latency is measured at fixed offered loads and throughput at other (communities, members)
shapes.  Shared machines are noisy, which is why figures are only ever compared within one run,
and why the test of this module checks that figures exist and are consistent, never how big.

How each figure is taken, and why:

* **Throughput** is timed from the first sign of work to the end of the topics: the raw consumer
  from its first non-empty batch, the Faust baseline from its first processed event (its group
  join is excluded), Pulse from its first Redis commit (the ``pulse:progress`` fields appear)
  until the stored offsets reach the end offsets.  Messages already covered by that first sign
  are not counted, so start-up costs do not dilute any rate.
* **End offsets** come from the producer's delivery reports (highest offset + 1 per partition),
  not from ``ListOffsets``: the embedded Tansu broker (0.6) answers "latest" with the base offset
  of the partition's last record batch, which is up to a batch short of the true end.
* **Latency** is visible time minus produce time for every message: the produce time is the
  message's CreateTime (set by librdkafka when ``produce()`` is called, read back from the
  delivery report with its partition and offset), the visible time is when a poll of
  ``pulse:progress`` every ~2 ms first shows the partition's stored next offset past the
  message's offset, i.e. when its effects are readable in Redis.
* **Peak RSS** is the worker's ``VmHWM`` from ``/proc/<pid>/status``, read just before stopping it.

The bench flushes the Redis database between runs.  It starts its own Redis unless told to use
one; an existing database must be empty, so the bench never deletes anyone's data.
"""

# The package, by concern (a newcomer's map; the text above is the ``method`` of every bench.json):
#   config.py     BenchConfig (what a run does), Throughput (one figure)
#   data.py       the simulated datasets and their publishing
#   baselines.py  the raw consumer and the idiomatic Faust baseline
#   workers.py    ``pulse worker`` rows: timed through the stored offsets in Redis
#   latency.py    publish → visible latency at fixed offered loads
#   scale.py      throughput and memory at other (communities, members) shapes
#   machine.py    the machine and library versions the figures were taken on
#   report.py     summary, targets and the Markdown report;  ui.py  the progress lines
#   run.py        run_bench: one run, every measurement, bench.json + bench.md
#   cluster.py    the Redis Cluster row (full runs);  capacity.py  python -m streams.bench.capacity

from streams.bench.config import BenchConfig, Throughput
from streams.bench.data import Dataset
from streams.bench.latency import percentile
from streams.bench.run import run_bench

__all__ = [
    "BenchConfig",
    "Dataset",
    "Throughput",
    "percentile",
    "run_bench",
]
