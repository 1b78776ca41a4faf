"""Topic administration: use the platform's topics as they are, create the missing ones."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import INPUT_TOPICS, Settings

log = logging.getLogger(__name__)

OUTPUT_TOPICS = ("dead-letters", "alerts", "match-candidates")


def ensure_topics(settings: Settings, timeout: float = 30.0) -> dict[str, int]:
    """Create missing input and output topics; return every topic's partition count.

    New input topics get the partition count of the existing ones (so a community's posts,
    reactions and RSVPs stay co-partitioned), else ``settings.partitions``.
    """
    # a copy typed as the stub wants it (its dict parameter is invariant in the value type)
    config: dict[str, str | int | float | bool] = dict(settings.kafka_config())
    admin = AdminClient(config)
    existing = {
        name: len(meta.partitions) for name, meta in admin.list_topics(timeout=timeout).topics.items()
    }
    inputs = [settings.topic(t) for t in INPUT_TOPICS]
    counts = {existing[t] for t in inputs if t in existing}
    if len(counts) > 1:
        log.warning(
            "input topics have different partition counts %s: fine for one worker, but workers in a group"
            " need co-partitioned topics to keep a community on one worker",
            {t: existing[t] for t in inputs if t in existing},
        )
    partitions = max(counts) if counts else settings.partitions
    wanted = [t for t in [*inputs, *(settings.topic(t) for t in OUTPUT_TOPICS)] if t not in existing]
    if wanted:
        futures = admin.create_topics([NewTopic(t, partitions, 1) for t in wanted], operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result()
                log.info("created topic %s with %d partitions", name, partitions)
            except KafkaException as exc:
                if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another worker won the race
                    raise
            existing[name] = partitions
    return existing
