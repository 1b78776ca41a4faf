"""Prometheus metrics of the worker.  Labels are bounded: topics, outcomes, reasons, partitions.

Every counter series whose labels are known in advance exists from start-up at 0: ``rate()`` and
``increase()`` need a sample before the first increment to see it (a series born at 22 dead
letters reads as ~0 until it grows again).

>>> from prometheus_client import generate_latest
>>> 'pulse_dead_letters_total{reason="late",topic="rsvps"} 0.0' in generate_latest().decode()
True
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

INPUT_TOPICS = ("posts", "reactions", "rsvps")  # logical names, as streams.config.INPUT_TOPICS
DEAD_LETTER_REASONS = ("oversized", "invalid_json", "schema", "timestamp", "late")
"""``schemas.events.Rejection.reason`` values, plus the pipeline's ``late``."""
OUTPUT_TOPICS = ("alerts", "match-candidates")
"""Logical topics the operators publish to (``streams.operators.base.OutgoingMessage.topic``)."""

EVENTS = Counter("pulse_events", "Messages processed, by input topic and outcome.", ["topic", "outcome"])
DEAD_LETTERS = Counter("pulse_dead_letters", "Messages sent to dead-letters, by reason.", ["topic", "reason"])
LATE_EVENTS = Counter("pulse_late_events", "Events past their window's grace period.", ["topic"])
BATCH_SIZE = Histogram(
    "pulse_batch_size", "Messages per applied batch.", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000)
)
BATCH_SECONDS = Histogram(
    "pulse_batch_seconds",
    "Time to process one batch: decode, operators, Redis commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
REDIS_WRITE_SECONDS = Histogram(
    "pulse_redis_write_seconds",
    "Latency of the atomic batch commit to Redis.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
RESTORE_SECONDS = Histogram(
    "pulse_restore_seconds",
    "Time to restore partition progress from Redis on assignment.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
CONSUMER_LAG = Gauge(
    "pulse_consumer_lag", "Messages behind the partition's high watermark.", ["topic", "partition"]
)
REDIS_UP = Gauge("pulse_redis_up", "1 when the last Redis call succeeded, 0 while Redis is unreachable.")
REDIS_RETRIES = Counter("pulse_redis_retries", "Commits retried because Redis was unreachable.")
FENCED = Counter("pulse_fenced_batches", "Batches refused because another worker moved the offsets.")
KAFKA_ERRORS = Counter("pulse_kafka_errors", "Errors reported by the Kafka client.", ["kind"])
OUTPUTS = Counter(
    "pulse_output_messages", "Messages the operators published, by logical output topic.", ["topic"]
)


ALERTS = Counter("pulse_alerts", "Alerts raised, by kind.", ["kind"])
ALIGNMENT_FORCED = Counter(
    "pulse_alignment_forced",
    "Messages released before their partition number's other partitions caught up in event time,"
    " because it held more than PULSE_ALIGN_MAX_HELD.",
)
ALERT_KINDS = ("atmosphere_drop", "activity_drop", "recovery", "topic_surge", "supply_gap")


def _precreate() -> None:
    """Create every series known in advance at 0 (see the module docstring)."""
    for topic in INPUT_TOPICS:
        EVENTS.labels(topic, "applied")
        EVENTS.labels(topic, "dead_letter")
        LATE_EVENTS.labels(topic)
        for reason in DEAD_LETTER_REASONS:
            DEAD_LETTERS.labels(topic, reason)
    EVENTS.labels("all", "duplicate")
    for kind in ("commit", "unavailable"):  # the ones Pulse itself counts; librdkafka's come as they happen
        KAFKA_ERRORS.labels(kind)
    for topic in OUTPUT_TOPICS:
        OUTPUTS.labels(topic)
    for kind in ALERT_KINDS:
        ALERTS.labels(kind)


ATMOSPHERE = Gauge("pulse_atmosphere_index", "Atmosphere index of the exported communities.", ["community"])
FORECAST = Gauge(
    "pulse_forecast",
    "Forecast figures of the exported communities (next window, rolling MAE).",
    ["community", "figure"],
)
TURNOUT = Gauge(
    "pulse_turnout_log_loss", "Turnout model log loss (progressive validation).", ["community", "model"]
)
TRENDS = Gauge("pulse_trends", "Hot-topic figures of the exported communities.", ["community", "figure"])
MEMBERS = Gauge(
    "pulse_members", "Member-insight figures of the exported communities.", ["community", "figure"]
)
KPI = Gauge(
    "pulse_kpi", "Operations KPIs of the exported communities (current window).", ["community", "kpi"]
)
MATCHING = Gauge(
    "pulse_matching", "Match-candidate figures of the exported communities.", ["community", "figure"]
)
COMMUNITY_GAUGES: dict[str, tuple[Gauge, dict[str, str]]] = {
    "match_open_posts": (MATCHING, {"figure": "open_posts"}),
    "atmosphere_index": (ATMOSPHERE, {}),
    "forecast_mae": (FORECAST, {"figure": "mae"}),
    "forecast_mae_last_value": (FORECAST, {"figure": "mae_last_value"}),
    "forecast_mae_seasonal": (FORECAST, {"figure": "mae_seasonal"}),
    "forecast_demand": (FORECAST, {"figure": "demand"}),
    "forecast_supply": (FORECAST, {"figure": "supply"}),
    "turnout_log_loss": (TURNOUT, {"model": "model"}),
    "turnout_log_loss_base": (TURNOUT, {"model": "base_rate"}),
    **{
        name: (TRENDS, {"figure": name.removeprefix("trends_")})
        for name in (
            "trends_topics",
            "trends_forecast_mae",
            "trends_forecast_mae_last_value",
            "trends_forecast_mae_level",
        )
    },
    **{
        name: (MEMBERS, {"figure": name.removeprefix("members_")})
        for name in ("members_tracked", "members_ranked", "members_auc", "members_auc_recency")
    },
    **{
        name: (KPI, {"kpi": name.removeprefix("kpi_")})
        for name in (
            "kpi_reply_rate",
            "kpi_match_success_rate",
            "kpi_fill_rate",
            "kpi_no_show_rate",
            "kpi_return_rate",
            "kpi_median_first_reply_seconds",
        )
    },
}


_precreate()


class CommunityGauges:
    """Per-community gauges with bounded cardinality: the opt-in list, else the first
    ``limit`` communities observed (never one series per member, never unbounded)."""

    def __init__(self, opt_in: str = "", limit: int = 20) -> None:
        self.allowed = {c.strip() for c in opt_in.split(",") if c.strip()}
        self.fixed = bool(self.allowed)
        self.limit = limit

    def observe(self, metric: str, community: str, value: float) -> None:
        known = COMMUNITY_GAUGES.get(metric)
        if known is None:
            return
        gauge, labels = known
        if community not in self.allowed:
            if self.fixed or len(self.allowed) >= self.limit:
                return
            self.allowed.add(community)
        gauge.labels(community=community, **labels).set(value)


def serve(host: str, port: int) -> None:
    """Expose ``/metrics``; port 0 keeps it off (tests, benchmarks)."""
    if port:
        start_http_server(port, addr=host)
