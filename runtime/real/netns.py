"""Linux network namespaces for a cluster's worker nodes: a bridge, one namespace and veth pair per node, rate limits by `tc`; removed on exit, crash included.

`create(nodes, bandwidth_bps, latency_s)` builds, on this machine, a bridge in the
current namespace (its address is where the head listens, in the current namespace, so
drivers here reach it) and one namespace per worker node joined to it by a veth pair.
Each veth end gets the link's shape on its way out: ``netem delay ... rate ...`` where
the kernel has netem, else ``tbf rate ...`` (rate only, the missing latency said in
`Namespaces.notes`). A node process runs inside its namespace through `Namespaces.wrap`
(``ip netns exec NAME``, which execs: the pid is the node's). Where namespaces cannot be
made (no ``ip`` command, not permitted: unprivileged), `create` raises `NetnsUnavailable`
saying which, and the caller falls back to loopback.

Cleanup: before anything is made, a watchdog process is started with the names it will
remove (this file run with ``--watch``, standard library only); it waits for its stdin to close,
which happens when `Namespaces.close` is called or when this process dies however it
dies (SIGKILL included: the kernel closes the pipe), then deletes every namespace (their
veth pairs go with them) and the bridge.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Namespaces", "NetnsUnavailable", "create"]

SUBNET = "10.231"
"""The /16 the bridges' /24s are taken from (one per `create`, by pid and a counter)."""

BURST_BYTES = 256 * 1024
"""tbf's bucket: large enough for a full-rate burst at the rates scenarios use."""

_count = itertools.count()


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here; the message says exactly what was refused."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip ARGS``; `NetnsUnavailable` with its stderr when it fails and `check`."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


@dataclass
class Namespaces:
    """A bridge and one namespace per worker node, with the addresses nodes listen on."""

    bridge: str
    head_ip: str
    """The bridge's address, in this namespace: where the head node listens."""
    names: list[str]
    """Namespace of worker node k (1..N-1) at ``names[k - 1]``."""
    ips: list[str]
    """Address of worker node k in its namespace at ``ips[k - 1]``."""
    notes: list[str] = field(default_factory=list)
    """What of the asked network could not be applied, and why."""
    _watchdog: subprocess.Popen | None = field(default=None, repr=False)

    def wrap(self, node: int) -> list[str]:
        """The argv prefix that runs a command in worker node `node`'s namespace."""
        return ["ip", "netns", "exec", self.names[node - 1]]

    def node_ip(self, node: int) -> str:
        """Where worker node `node` listens (in its namespace)."""
        return self.ips[node - 1]

    def close(self) -> None:
        """Remove the namespaces, veth pairs and bridge (the watchdog does it); idempotent."""
        dog, self._watchdog = self._watchdog, None
        if dog is None:
            return
        if dog.stdin is not None:
            dog.stdin.close()
        dog.wait(timeout=60)


def _shape(
    dev: str, netns: str | None, rate_bps: float | None, delay_s: float | None
) -> tuple[str, str]:
    """Shape `dev`'s egress: (the qdisc used, "netem" or "tbf" or "", why netem was not)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    netem_error = ""
    if delay_s:
        args = ["netem", "delay", f"{delay_s * 1e6:.0f}us"]
        if rate_bps:
            args += ["rate", f"{rate_bps:.0f}bit"]
        cmd = [*prefix, "tc", "qdisc", "add", "dev", dev, "root", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return "netem", ""
        netem_error = done.stderr.strip() or f"exit status {done.returncode}"
    if rate_bps:
        cmd = [*prefix, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
               f"{rate_bps:.0f}bit", "burst", str(BURST_BYTES), "latency", "50ms"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise NetnsUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
        return "tbf", netem_error
    return "", netem_error


def create(
    nodes: int, bandwidth_bps: float | None = None, latency_s: float | None = None
) -> Namespaces:
    """A bridge and `nodes - 1` namespaces (worker nodes 1..N-1), each link shaped.

    `bandwidth_bps` (bits/s) and `latency_s` are one link's, applied on each veth end's
    egress (so a packet from a worker node to the head crosses one shaped end each way,
    and one between two worker nodes two). Raises `NetnsUnavailable` saying which step
    was refused (everything made so far is removed first).
    """
    if nodes < 2:
        raise ValueError(f"create(nodes={nodes}): worker nodes need at least 2 nodes")
    if sys.platform != "linux":
        raise NetnsUnavailable(f"network namespaces are Linux's; this is {sys.platform}")
    if shutil.which("ip") is None or shutil.which("tc") is None:
        raise NetnsUnavailable("the `ip` and `tc` commands (iproute2) are not installed")
    tag = f"{os.getpid() % 100000:05d}{next(_count) % 10}"
    subnet = f"{SUBNET}.{(os.getpid() * 10 + int(tag[-1])) % 250 + 1}"
    bridge = f"trb{tag}"
    names = [f"twinray-{tag}-{k}" for k in range(1, nodes)]
    dog = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--watch", bridge, *names],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # outlives a Ctrl-C of this process group, to clean up
    )
    spaces = Namespaces(bridge, f"{subnet}.1", names, [], [], dog)
    try:
        try:
            _ip("netns", "add", names[0])
        except NetnsUnavailable as exc:
            raise NetnsUnavailable(f"network namespaces are not permitted here: {exc}") from None
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        kinds, netem_errors = set(), set()
        for k, name in enumerate(names, start=1):
            if k > 1:
                _ip("netns", "add", name)
            host, inner, ip = f"trh{tag}{k}", f"trn{tag}{k}", f"{subnet}.{k + 1}"
            _ip("link", "add", host, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", name)
            _ip("link", "set", host, "master", bridge, "up")
            _ip("-n", name, "addr", "add", f"{ip}/24", "dev", inner)
            _ip("-n", name, "link", "set", inner, "up")
            _ip("-n", name, "link", "set", "lo", "up")
            for dev, where in ((host, None), (inner, name)):
                kind, netem_error = _shape(dev, where, bandwidth_bps, latency_s)
                kinds.add(kind)
                netem_errors.add(netem_error)
            spaces.ips.append(ip)
        if latency_s and "netem" not in kinds:
            spaces.notes.append(
                f"tc netem is not available ({'; '.join(sorted(netem_errors - {''}))}): the "
                f"link latency ({latency_s * 1e6:g} us) is not applied, only the rate (tbf)"
            )
    except BaseException:
        spaces.close()
        raise
    return spaces


def _watch(names: Sequence[str]) -> int:
    """Wait for stdin to close, then delete the bridge `names[0]` and namespaces `names[1:]`."""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    bridge, spaces = names[0], names[1:]
    for name in spaces:
        _ip("netns", "del", name, check=False)
    _ip("link", "del", bridge, check=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--watch":
        sys.exit(_watch(sys.argv[2:]))
    print("usage: netns.py --watch BRIDGE [NAMESPACE ...]", file=sys.stderr)
    sys.exit(2)
