"""The VRRP lab: two network namespaces joined by a veth pair (192.0.2.1 and .2/24, nothing outside
192.0.2.0/24), each a Node that runs keepalived under the shipped unit's capability bounding set and
no_new_privs, configured after docs/operating.md's Kubernetes control-plane example (auth PASS, advert_int 1,
priorities 100/99 as its cp-1 and cp-2, a track_script), except: two nodes instead of three, multicast
adverts instead of unicast peers, the first node starting as MASTER, the track_script every 1 s with weight -2
(the example: 3 s, -5) run as root, and a notify script that records state changes.

Namespaces are named ska-e2e-<pid>-<node>; keepalived is started with die_with_parent, and whatever still
runs in a namespace is killed before the namespace is deleted, so a lab never outlives its module.

Fixture: `vrrp_lab` (module scope; test_vrrp.py imports it). support.host_container builds its `unit_lab`
with `make_lab`."""

import os
import re
import signal
import subprocess
import time

import pytest

from support.common import Failure, expect, run
from support.keepalived import unit_capabilities_for_setpriv
from support.session import RUN_ID, die_with_parent, pid_alive, require

# VRRP parameters, after docs/operating.md's control-plane example.
ADVERT_INT = 1.0
PRIO_A, PRIO_B = 100, 99
VIP, VIP2 = "192.0.2.100", "192.0.2.101"
ADDR_A, ADDR_B = "192.0.2.1", "192.0.2.2"
# RFC 3768: Master_Down_Interval = 3 * Advertisement_Interval + Skew_time, Skew_time = (256 - Priority) / 256
SKEW_B = (256 - PRIO_B) / 256 * ADVERT_INT
FAILOVER_BOUND = 3 * ADVERT_INT + SKEW_B + 0.5
# A master that shuts down sends a priority-0 advert; the backup then takes over after Skew_time alone
# (RFC 3768 6.4.2). The bound sits well below FAILOVER_BOUND, so a lost priority-0 advert (the backup
# waiting out Master_Down_Interval instead) fails the check.
PRIORITY0_BOUND = SKEW_B + 0.5


def keepalived_conf(name, state, priority, vip, work):
    return f"""global_defs {{
  router_id {name}
  enable_script_security
  script_user root
  vrrp_garp_master_delay 1
}}

vrrp_script check_apiserver {{
  script "{work}/check-{name}.sh"
  interval 1
  weight -2
  fall 2
  rise 2
}}

vrrp_instance VI_1 {{
  state {state}
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int {int(ADVERT_INT)}

  authentication {{
    auth_type PASS
    auth_pass e2e_pass
  }}

  virtual_ipaddress {{
    {vip}/24
  }}

  track_script {{
    check_apiserver
  }}

  notify "{work}/notify.sh {name}"
}}
"""


class Node:
    def __init__(self, lab, name, addr, state, priority):
        self.lab, self.name, self.addr, self.state, self.priority = lab, name, addr, state, priority
        self.ns = f"{RUN_ID}-{name}"
        self.dir = os.path.join(lab.work, name)
        self.conf = os.path.join(self.dir, "keepalived.conf")
        self.health = os.path.join(lab.work, f"healthy-{name}")
        self.proc = None

    def pidfile(self, kind):
        return os.path.join(self.dir, f"{kind}.pid")

    def write_conf(self, vip):
        with open(self.conf, "w") as f:
            f.write(keepalived_conf(self.name, self.state, self.priority, vip, self.lab.work))

    def start(self):
        cmd = ["ip", "netns", "exec", self.ns, "setpriv", f"--bounding-set={self.lab.caps}", "--no-new-privs",
               self.lab.binary, "--dont-fork", "--log-console", "--log-detail", "--dont-respawn",
               f"--use-file={self.conf}", f"--pid={self.pidfile('main')}",
               f"--vrrp_pid={self.pidfile('vrrp')}", f"--checkers_pid={self.pidfile('checkers')}",
               f"--bfd_pid={self.pidfile('bfd')}"]
        self.log = open(os.path.join(self.dir, "keepalived.log"), "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    def live_vrrp_pid(self):
        """The pid of this node's running VRRP process, or None."""
        try:
            with open(self.pidfile("vrrp")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def vrrp_pid(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = self.live_vrrp_pid()
            if pid:
                return pid
            time.sleep(0.05)
        raise Failure(f"{self.name}: no live VRRP process in {self.pidfile('vrrp')}")

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # Children the parent did not reap (after a SIGKILLed parent) die with the namespace cleanup.

    def addrs(self):
        out = run(["ip", "-n", self.ns, "-o", "-4", "addr", "show", "dev", "eth0"]).stdout
        return set(re.findall(r"inet (\S+)/", out))

    def has(self, vip):
        return vip in self.addrs()

    def transitions(self):
        path = os.path.join(self.lab.work, f"notify-{self.name}.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().split()


class Lab:
    """Two namespaces joined by a veth pair, each running keepalived from BINARY. `vip` is the address the
    nodes' configurations currently carry."""

    def __init__(self, work, binary, names=("a", "b")):
        self.work, self.binary, self.caps = work, binary, unit_capabilities_for_setpriv()
        self.a = Node(self, names[0], ADDR_A, "MASTER", PRIO_A)
        self.b = Node(self, names[1], ADDR_B, "BACKUP", PRIO_B)
        self.nodes = (self.a, self.b)
        self.vip = VIP

    def setup(self):
        os.makedirs(self.work, mode=0o755, exist_ok=True)
        for n in self.nodes:
            os.makedirs(n.dir)
            run(["ip", "netns", "add", n.ns])
            run(["ip", "-n", n.ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.a.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
             "netns", self.b.ns])
        for n in self.nodes:
            run(["ip", "-n", n.ns, "addr", "add", f"{n.addr}/24", "dev", "eth0"])
            run(["ip", "-n", n.ns, "link", "set", "eth0", "up"])
            script = os.path.join(self.work, f"check-{n.name}.sh")
            with open(script, "w") as f:
                f.write(f"#!/bin/sh\n# track_script stand-in for an API server health check\n"
                        f"exec test -e {n.health}\n")
            os.chmod(script, 0o755)
            open(n.health, "w").close()
        with open(os.path.join(self.work, "notify.sh"), "w") as f:
            f.write('#!/bin/sh\n# notify NODE TYPE NAME STATE PRIORITY: keep the state history\n'
                    f'echo "$4" >> {self.work}/notify-"$1".log\n')
        os.chmod(os.path.join(self.work, "notify.sh"), 0o755)
        self.write_confs(VIP)

    def write_confs(self, vip):
        for n in self.nodes:
            n.write_conf(vip)
        self.vip = vip

    def teardown(self):
        for n in self.nodes:
            try:
                n.stop()
            except Exception:
                pass
        for n in self.nodes:
            # Whatever still runs in the namespace (a VRRP child whose parent was killed) goes too.
            p = run(["ip", "netns", "pids", n.ns], check=False)
            for pid in p.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "delete", n.ns], check=False)

    def holders(self, vip=None):
        """Which of the two roles hold VIP: "a" (the MASTER by priority) and/or "b", whatever the nodes' names."""
        vip = vip or self.vip
        return ["a" if n is self.a else "b" for n in self.nodes if n.has(vip)]

    def wait_for(self, cond, timeout, what, interval=0.02):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if cond():
                return time.monotonic() - start
            time.sleep(interval)
        raise Failure(f"timed out after {timeout:.1f} s waiting for {what}; "
                      f"{self.a.name}={sorted(self.a.addrs())} {self.b.name}={sorted(self.b.addrs())}")

    def sample_single_holder(self, seconds, want, vip=None):
        """Samples both nodes for `seconds`; every sample must show exactly `want` holding the VIP."""
        vip = vip or self.vip
        samples = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got = self.holders(vip)
            expect(got == [want], f"VIP {vip} held by {got or 'nobody'}, expected only {want}")
            samples += 1
            time.sleep(0.1)
        return samples

    def logs(self):
        return ", ".join(os.path.join(n.dir, "keepalived.log") for n in self.nodes)


def make_lab(work, binary, names):
    require("ip", "setpriv", "nsenter")
    lab = Lab(work, binary, names)
    try:
        lab.setup()
    except BaseException:
        lab.teardown()
        raise
    return lab


@pytest.fixture(scope="module")
def vrrp_lab(work, merged_keepalived):
    """Nodes a and b (MASTER 100, BACKUP 99) with keepalived from the merged root, not yet started."""
    lab = make_lab(os.path.join(work, "vrrp"), merged_keepalived, ("a", "b"))
    yield lab
    lab.teardown()
    print(f"keepalived logs: {lab.logs()}")
