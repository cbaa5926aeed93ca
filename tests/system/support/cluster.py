"""A VRRP cluster of booted nodes for the update tests: each node a container (support.containers) of a
Debian root (support.roots) in a network namespace of its own, all joined by a bridge, with a client in a
namespace of its own that probes the VIP every 10 ms.

Addresses, all inside 192.0.2.0/24 (TEST-NET-1) and only inside the namespaces the run creates: node i has
192.0.2.(10 + i) on its `ska0`, the client 192.0.2.50, the VIP is 192.0.2.100. The bridge lives in a
namespace of its own (`-sw`), so nothing of the cluster touches the host's network.

The feed: every node reaches the run's feed directory at http://127.0.0.1:FEED_PORT/ on its own loopback
(one small HTTP server per node namespace, serving the same directory), the address the other system tests
use, so the transfer file is the one `build --update-url` writes for a loopback feed.

The probe: each node namespace runs a UDP responder on port 7000 that answers with the node's name; the
client sends a numbered datagram to the VIP every PROBE_INTERVAL and records which node answered. A probe
without an answer within PROBE_TIMEOUT is lost. `Probe.stop()` returns a `Timeline`: lost probes, the
longest run of them and the total (as time: probes x interval), and every change of the answering node
(a VIP move).

API: `Cluster(run_id, work, feed_root)`; `cluster.add_node(name, tree)` makes the node's namespace, feed
server and responder (the caller boots `tree` as a container in `Network(node.ns)` and sets
`node.container`); `cluster.wait_feed(sub)`, `cluster.holders()`, `cluster.probe()` -> Probe;
`cluster.close()` removes every namespace and process."""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from support.common import Failure, expect, run
from support.session import die_with_parent

VIP = "192.0.2.100"
CLIENT_ADDR = "192.0.2.50"
BRIDGE_ADDR = "192.0.2.254"
FEED_PORT = 8080
PROBE_PORT = 7000
PROBE_INTERVAL = 0.01
PROBE_TIMEOUT = 0.2

RESPONDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
name = sys.argv[2].encode()
while True:
    data, peer = s.recvfrom(256)
    s.sendto(data + b" " + name, peer)
"""

# Sends a numbered datagram every INTERVAL until SIGTERM (or MAX seconds), and writes "seq sent answered node"
# per probe (answered and node "-" when lost) to OUT at the end.
PROBER = """
import select, signal, socket, sys, time
vip, port, interval, timeout, limit, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, answers = [], {}
start = time.monotonic()
next_send = start
print("ready", flush=True)
while not stop and time.monotonic() - start < limit:
    now = time.monotonic()
    if now >= next_send:
        try:
            s.sendto(str(len(sent)).encode(), (vip, port))
        except OSError:
            pass
        sent.append(now)
        next_send += interval
    r, _, _ = select.select([s], [], [], max(0.0, next_send - time.monotonic()))
    while r:
        try:
            data = s.recv(256)
        except BlockingIOError:
            break
        seq, node = data.decode().split()
        answers.setdefault(int(seq), (time.monotonic(), node))
end = time.monotonic()
with open(out, "w") as f:
    for seq, t in enumerate(sent):
        a = answers.get(seq)
        ok = a is not None and a[0] - t <= timeout and end - t > timeout
        if end - t <= timeout:
            break  # too recent to count as lost or answered
        f.write(f"{seq} {t - start:.4f} {a[0] - start if ok else '-'} {a[1] if ok else '-'}\\n")
"""


@dataclass
class Timeline:
    """What the client saw: per probe (send time, answering node or None)."""
    probes: list
    interval: float = PROBE_INTERVAL

    @property
    def lost(self):
        return sum(1 for _, node in self.probes if node is None)

    @property
    def total_gap(self):
        return self.lost * self.interval

    @property
    def longest_gap(self):
        longest = run_ = 0
        for _, node in self.probes:
            run_ = run_ + 1 if node is None else 0
            longest = max(longest, run_)
        return longest * self.interval

    @property
    def holders(self):
        """[(time, node)] each time the answering node changed, the first answer included."""
        out = []
        for t, node in self.probes:
            if node is not None and (not out or out[-1][1] != node):
                out.append((t, node))
        return out

    @property
    def moves(self):
        return max(0, len(self.holders) - 1)

    def summary(self):
        return (f"{len(self.probes)} probes, {self.lost} lost, longest gap {self.longest_gap:.2f} s, total gap "
                f"{self.total_gap:.2f} s, {self.moves} moves: "
                + ", ".join(f"{node}@{t:.2f}s" for t, node in self.holders))


class Probe:
    def __init__(self, cluster):
        self.out = os.path.join(cluster.work, f"probe-{time.monotonic_ns()}.txt")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", cluster.client_ns, "python3", "-c", PROBER, VIP, str(PROBE_PORT),
             str(PROBE_INTERVAL), str(PROBE_TIMEOUT), "900", self.out],
            stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        expect(self.proc.stdout.readline().strip() == "ready", "the prober did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        probes = []
        with open(self.out) as f:
            for line in f:
                _, sent, _, node = line.split()
                probes.append((float(sent), None if node == "-" else node))
        return Timeline(probes)


@dataclass
class Node:
    name: str
    index: int
    ns: str
    tree: str
    container: object = None
    procs: list = field(default_factory=list)

    @property
    def addr(self):
        return f"192.0.2.{10 + self.index}"


class Cluster:
    def __init__(self, run_id, work, feed_root):
        self.run_id = run_id
        self.work = work
        self.feed_root = feed_root
        self.sw = f"{run_id}-sw"
        self.client_ns = f"{run_id}-client"
        self.nodes = {}
        self.namespaces = []
        self.procs = []
        self._netns(self.sw)
        run(["ip", "-n", self.sw, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.sw, "addr", "add", f"{BRIDGE_ADDR}/24", "dev", "br0"])
        run(["ip", "-n", self.sw, "link", "set", "br0", "up"])
        self._attach(self.client_ns, "cl", CLIENT_ADDR)

    def _netns(self, name):
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _attach(self, ns, port, addr):
        """A namespace joined to the bridge: `ska0` inside with addr/24, PORT on the bridge."""
        self._netns(ns)
        run(["ip", "-n", self.sw, "link", "add", port, "type", "veth", "peer", "name", "ska0", "netns", ns])
        run(["ip", "-n", self.sw, "link", "set", port, "master", "br0", "up"])
        run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "ska0"])
        run(["ip", "-n", ns, "link", "set", "ska0", "up"])

    def _spawn(self, ns, *cmd):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.procs.append(p)
        return p

    def add_node(self, name, tree):
        index = len(self.nodes) + 1
        node = Node(name, index, f"{self.run_id}-{name}", str(tree))
        self._attach(node.ns, f"n{index}", node.addr)
        self._spawn(node.ns, "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                    self.feed_root, str(FEED_PORT))
        self._spawn(node.ns, "python3", "-c", RESPONDER, str(PROBE_PORT), name)
        self.nodes[name] = node
        return node

    def wait_feed(self, sub):
        """Every node's loopback serves the feed (a refused update must not be a dead server)."""
        for node in self.nodes.values():
            deadline = time.monotonic() + 20
            while True:
                p = run(["ip", "netns", "exec", node.ns, "curl", "--silent", "--fail", "--max-time", "5",
                         f"http://127.0.0.1:{FEED_PORT}/{sub}/SHA256SUMS"], check=False)
                if p.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise Failure(f"{node.name}: the feed is not served on 127.0.0.1:{FEED_PORT}: {p.stderr}")
                time.sleep(0.2)

    def holders(self):
        """The nodes whose ska0 has the VIP."""
        return [n.name for n in self.nodes.values()
                if f"{VIP}/24" in run(["ip", "-n", n.ns, "-o", "-4", "addr", "show", "dev", "ska0"]).stdout]

    def probe(self):
        return Probe(self)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "delete", ns], check=False)


HANDOVER_FILE = "/var/lib/keepalived-sysext/handover"
# A keyword keepalived 2.3.4 knows and 2.2.7 does not (global_parser.c of 2.3.4): with it, 2.2.7's
# --config-test reports "Unknown keyword".
NEW_ONLY_KEYWORD = "vrrp_owner_ignore_adverts"


def keepalived_conf(name, priority, state="BACKUP", new_only=False, handover=True, interface="ska0"):
    """A node's configuration as docs/operating.md's control-plane example has it (auth PASS, advert_int 1),
    with the handover track file the docs ask for (unless handover=False) and, with new_only, a keyword
    only the newer keepalived knows."""
    track = f"""
track_file keepalived_sysext_handover {{
    file "{HANDOVER_FILE}"
}}
""" if handover else ""
    tracked = """
    track_file {
        keepalived_sysext_handover
    }""" if handover else ""
    extra = f"\n    {NEW_ONLY_KEYWORD}" if new_only else ""
    return f"""global_defs {{
    router_id {name}{extra}
}}
{track}
vrrp_instance VI_1 {{
    state {state}
    interface {interface}
    virtual_router_id 51
    priority {priority}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass k8s-vip
    }}
    virtual_ipaddress {{
        {VIP}/24
    }}{tracked}
}}
"""
