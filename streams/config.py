"""Pulse's configuration: one typed place, read from ``PULSE_*`` environment variables.

Every field has a documented default; the CLI's flags override the environment
(``Settings(**flags)``).  Secrets are :class:`~pydantic.SecretStr`, so they never
appear in ``repr``, logs or error messages.

>>> s = Settings(_env_file=None, topic_prefix="acme.", redis_password="hunter2")
>>> s.topic("posts"), s.window_seconds, s.grace_seconds
('acme.posts', 3600, 300)
>>> "hunter2" in repr(s)
False
"""

from __future__ import annotations

import math
import re
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

INPUT_TOPICS = ("posts", "reactions", "rsvps")
"""Logical names of the input topics; the configured prefix stands before each."""


class Settings(BaseSettings):
    """All of Pulse's knobs.  Env var = ``PULSE_`` + field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="PULSE_", extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("", description="Prefix before every topic name (posts, reactions, ...).")
    group_id: str = Field("pulse", description="Kafka consumer group of the workers.")
    partitions: int = Field(4, ge=1, description="Partition count for topics the worker has to create.")
    session_timeout_ms: int = Field(
        6000,
        ge=1000,
        description=(
            "Consumer group session timeout. A broker holds a new group's first join for about half of it,"
            " and reassigns a crashed worker's partitions only after it, so keep it short."
        ),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle for TLS to the brokers.")

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = Field("redis://localhost:6379/0", description="redis:// or rediss:// (TLS) URL.")
    redis_username: str | None = Field(None, description="Redis ACL user (overrides the URL's).")
    redis_password: SecretStr | None = Field(None, description="Redis password (overrides the URL's).")

    # --- Activity windows --------------------------------------------------------------------
    window_seconds: int = Field(3600, ge=1, description="Tumbling event-time window size, epoch aligned.")
    grace_seconds: int = Field(300, ge=0, description="How late (event time) an event may arrive.")
    retention_seconds: int = Field(7 * 86400, ge=1, description="TTL of window keys after their last write.")
    max_future_seconds: int = Field(
        300, ge=0, description="Events stamped further ahead of the wall clock are dead-lettered."
    )
    w_interactions: float = Field(0.5, description="Weight of I (reactions + RSVPs) in the score.")
    w_participants: float = Field(0.3, description="Weight of C (distinct members) in the score.")
    w_posts: float = Field(0.2, description="Weight of H (posts, replies included) in the score.")
    member_post_weight: float = Field(1.0, description="A member's contribution per post.")
    member_reaction_weight: float = Field(0.5, description="A member's contribution per reaction given.")
    member_rsvp_weight: float = Field(0.5, description="A member's contribution per RSVP.")

    # --- Worker ------------------------------------------------------------------------------
    engine: Literal["batch", "faust"] = Field(
        "batch", description="batch: confluent-kafka batch consumer; faust: Faust agents (take_events)."
    )
    operators: str = Field(
        "all",
        description="Stateful operators, comma separated: 'all' (the default; 'default' is the same),"
        " 'core' (forecasts, turnout) or names; '-name' turns one off, e.g. 'all,-trends'.",
    )
    batch_max: int = Field(
        5000,
        ge=1,
        description="Most messages in one Redis transaction: with every operator on, a 5,000-message"
        " batch's script holds Redis for ~100 ms on a 2-core machine (20,000: ~0.4 s, blocking every"
        " reader meanwhile); larger batches amortize persistence a little better.",
    )
    batch_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Most input bytes in one batch: bounds the Redis script's argument and how long it"
        " blocks Redis (a backlog of 10,000-character posts would otherwise make one batch hundreds of MB;"
        " at 4 MiB such a batch's script held Redis 0.1-0.3 s on a busy 2-core machine). Typical"
        " messages (~300 B) fill PULSE_BATCH_MAX first.",
    )
    batch_timeout_ms: int = Field(50, ge=1, description="Longest wait to fill a batch.")
    align_idle_ms: int = Field(
        500,
        ge=0,
        description="Event-time alignment: how long a quiet input partition may hold back the others of"
        " its partition number (0: no alignment).",
    )
    align_max_held: int = Field(
        20_000,
        ge=0,
        description="Event-time alignment: most messages held per partition number. A partition"
        " holding a sixteenth of it (at least 1,000) is paused until it drains, which bounds what is"
        " held to about 3 x (that + PULSE_BATCH_MAX) messages; past the cap the oldest are released"
        " early (pulse_alignment_forced counts them). Decoded messages held are most of a catching-up"
        " worker's memory.",
    )
    max_message_bytes: int = Field(1_000_000, ge=1024, description="Larger messages are dead-lettered.")
    idle_ttl_seconds: int = Field(
        30 * 86400,
        ge=1,
        description="A community's keys (operator state, logs, atmosphere, forecast, trends, alerts ...)"
        " expire this long after its last event: it disappears and starts fresh when it returns.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the Prometheus /metrics endpoint (0.0.0.0: all interfaces)."
    )
    api_max_requests: int = Field(
        256, ge=1, description="pulse serve: most requests in flight (live streams included); more get 503."
    )
    api_idle_seconds: float = Field(
        15.0, gt=0, description="pulse serve: an idle keep-alive connection is closed after this long."
    )
    match_ttl_seconds: int = Field(
        14 * 86400, ge=60, description="Matching: a need or offer stays open this long (event time)."
    )
    match_top_k: int = Field(10, ge=1, le=100, description="Matching: candidates kept per open post.")
    match_max_open_posts: int = Field(
        1000, ge=10, description="Matching: open needs + offers kept per community (the oldest close beyond)."
    )
    reco_top_k: int = Field(5, ge=1, le=50, description="Recommendations: meetups kept per member.")
    metrics_port: int = Field(9100, ge=0, description="Port of /metrics; 0 disables it.")
    metrics_communities: str = Field(
        "", description="Communities with per-community gauges (comma separated); default: the first 20 seen."
    )
    # --- text stage (issue 18) ---
    text_max_chars: int = Field(
        500,
        ge=100,
        description="Operators see at most this prefix of a post's text (the schema allows 10,000):"
        " the text stage analyses it (language, topics, terms, sentiment), a typical post whole;"
        " it also bounds memory held by alignment and the operator logs.",
    )

    # --- Worker start-up (issue 15) --------------------------------------------------------------
    startup_timeout_seconds: float = Field(
        0,
        ge=0,
        description="How long `pulse worker` waits for Kafka, then for Redis, at start before it exits with"
        " an error (0: wait for ever).  Either way it says in one line what it is waiting for.",
    )

    malloc_arena_max: int = Field(
        2,
        ge=0,
        description="glibc malloc arenas of a worker process (its mallopt M_ARENA_MAX, set before any thread"
        " starts; 0: glibc's default of 8 per core). Each thread that allocates may otherwise get an arena"
        " of its own, and memory freed in one is not reused by the others. Measured with every operator on"
        " (bench stream, three alternating workers each): peak RSS 490 MB with glibc's default, 473 MB with"
        " 2, 464 MB with 1, at the same events/s.",
    )

    # --- Redis Cluster (issue 17) ----------------------------------------------------------------
    redis_cluster: bool = Field(
        False,
        description="Use Redis Cluster (also implied by a redis+cluster:// or rediss+cluster:// URL): every"
        " key carries its input partition's hash tag, one batch script per partition (README, Scaling out).",
    )

    @field_validator(
        "w_interactions",
        "w_participants",
        "w_posts",
        "member_post_weight",
        "member_reaction_weight",
        "member_rsvp_weight",
    )
    @classmethod
    def _finite(cls, value: float) -> float:
        """A NaN or infinite weight would make every score NaN, which Redis refuses mid-batch."""
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        return value

    def topic(self, name: str) -> str:
        """The full topic name for a logical name (``posts`` → ``{prefix}posts``)."""
        return f"{self.topic_prefix}{name}"

    @property
    def input_topics(self) -> list[str]:
        return [self.topic(t) for t in INPUT_TOPICS]

    @property
    def dead_letter_topic(self) -> str:
        return self.topic("dead-letters")

    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        conf = {"bootstrap.servers": self.kafka_bootstrap, "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            conf["sasl.password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = self.kafka_ssl_cafile
        return conf

    def redis_kwargs(self) -> dict[str, str]:
        """Credentials that override the URL's, for ``redis.Redis.from_url(url, **kwargs)``."""
        kwargs: dict[str, str] = {}
        if self.redis_username:
            kwargs["username"] = self.redis_username
        if self.redis_password:
            kwargs["password"] = self.redis_password.get_secret_value()
        return kwargs

    def redis_url_redacted(self) -> str:
        """The Redis URL safe to print: a password anywhere in it (user info, ``?password=``) is replaced.

        >>> Settings(_env_file=None, redis_url="redis://u:pw@h:1/0").redis_url_redacted()
        'redis://u:***@h:1/0'
        >>> Settings(_env_file=None, redis_url="rediss://h/0?password=pw&db=1").redis_url_redacted()
        'rediss://h/0?password=***&db=1'
        >>> Settings(_env_file=None, redis_url="redis://:p%40ss@h").redis_url_redacted()
        'redis://:***@h'
        """
        return redact_url(self.redis_url)


_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:password|pass|pwd|secret|token|auth)=)[^&;#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: in the user info and in query parameters."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparsable: show nothing of it
        return "***"
    if password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        parts = parts._replace(query=_SECRET_QUERY.sub(r"\1***", parts.query))
    return urlunsplit(parts)
