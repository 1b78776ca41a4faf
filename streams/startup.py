"""Start-up of ``pulse worker``: wait until Kafka and Redis answer, saying so in one line.

A worker started before its broker or Redis (a compose stack coming up, a Kafka restart) would
otherwise fail inside the first client call: librdkafka logs a line per connection attempt (hundreds
in 30 s) and the admin call ends in a traceback.  Here each missing service gets one warning line
when it first fails and one when it answers; the probes' own clients are silenced (``log_level``
0, errors captured by ``error_cb`` for the message).  ``startup_timeout_seconds`` (0: for ever)
bounds the wait; past it :class:`StartupError` says which service did not answer and why.
Before any of that, :func:`limit_malloc_arenas` caps glibc's malloc arenas (peak memory).
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Callable

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams import metrics
from streams.config import Settings

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
"""How long one probe may take (and so how often an absent service is retried)."""


M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the arena limit (``malloc.h``), as ``MALLOC_ARENA_MAX``."""


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (``Settings.malloc_arena_max``; 0 leaves glibc's default).

    Python's small objects come from pymalloc, but its large blocks (dicts, lists, a batch's bytes)
    and the C libraries' allocations (librdkafka's threads, orjson) go through malloc, and glibc
    gives busy threads arenas of their own (up to 8 per core) whose freed memory the others do not
    reuse.  Call it before the process starts any thread: set after importing numpy (which starts
    OpenBLAS's threads), a limit of 2 measured −5 MB of peak RSS instead of −15 to −20.  The same as
    the ``MALLOC_ARENA_MAX`` environment variable, which wins when it is set.  Returns whether the
    limit was applied (False off glibc)."""
    if arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl and macOS have no such arenas  # noqa: B018
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


class StartupError(RuntimeError):
    """A service did not answer within ``startup_timeout_seconds``."""


Probe = Callable[[float], str | None]
"""``probe(timeout) -> None`` when the service answered, else why it did not (one line)."""


def kafka_probe(settings: Settings) -> Probe:
    """A metadata request through a silent admin client (kept across attempts)."""
    errors: list[str] = []
    config: dict[str, str | int | float | bool | Callable[..., None]] = {
        **settings.kafka_config(),
        "log_level": 0,  # no librdkafka line per failed connection: the reason is in the message
        "error_cb": lambda err: errors.append(err.str()),
    }
    admin = AdminClient(config)  # type: ignore[arg-type]

    def probe(timeout: float) -> str | None:
        try:
            admin.list_topics(timeout=timeout)
            return None
        except KafkaException as exc:
            admin.poll(0)  # serve error_cb: "…: Connect to … failed: Connection refused"
            detail = errors[-1] if errors else exc.args[0].str()
            errors.clear()
            return detail

    return probe


def redis_probe(settings: Settings) -> Probe:
    """PING the node the URL names (on Redis Cluster, the seed node: the cluster client finds the
    rest once the worker starts)."""
    from streams.sinks.cluster import plain_url

    def probe(timeout: float) -> str | None:
        client = redis.Redis.from_url(
            plain_url(settings.redis_url),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            **settings.redis_kwargs(),  # type: ignore[arg-type]
        )
        try:
            client.ping()
            metrics.REDIS_UP.set(1)
            return None
        except redis.RedisError as exc:
            metrics.REDIS_UP.set(0)
            return f"{type(exc).__name__}: {exc}"
        finally:
            client.close()

    return probe


def wait_for(
    name: str,
    where: str,
    probe: Probe,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Probe until the service answers, for up to ``timeout`` s (0: for ever); one warning when it
    first does not answer, one info line when it then does."""
    started = clock()
    deadline = started + timeout if timeout > 0 else None
    warned = False
    while True:
        left = None if deadline is None else deadline - clock()
        why = probe(PROBE_SECONDS if left is None else max(0.1, min(PROBE_SECONDS, left)))
        if why is None:
            if warned:
                log.info("%s at %s answered after %.1f s", name, where, clock() - started)
            return
        if deadline is not None and clock() >= deadline - 0.05:
            raise StartupError(
                f"{name} at {where} did not answer within the start-up timeout of {timeout:g} s ({why});"
                " giving up (PULSE_STARTUP_TIMEOUT_SECONDS=0 waits for ever)"
            )
        if not warned:
            until = "until it answers" if deadline is None else f"for up to {timeout:g} s"
            log.warning("%s at %s unreachable (%s); waiting %s", name, where, why, until)
            warned = True
        sleep(0.5 if deadline is None else max(0.0, min(0.5, deadline - clock())))


def wait_for_services(settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
    """Wait for Kafka, then Redis, each for up to ``settings.startup_timeout_seconds`` (0: for ever)."""
    timeout = settings.startup_timeout_seconds
    wait_for("Kafka", settings.kafka_bootstrap, kafka_probe(settings), timeout, clock)
    wait_for("Redis", settings.redis_url_redacted(), redis_probe(settings), timeout, clock)
