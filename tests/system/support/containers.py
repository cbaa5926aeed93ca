"""Booting a root (support.roots) as a container whose PID 1 is the root's own systemd, so sysext, sysupdate
and the unit files meet the systemd generation under test rather than the host's.

API (stable; used by tests/system/test_*.py and other fixture modules):

- fixture `network` (session): a `Network`, the network namespace every container of the run shares, made
  by the run: only `lo` (up) and a veth pair `ska0` (192.0.2.1/24) / `ska1` (no address; the kernel here has no
  dummy interfaces). The feed (support.feed) is
  served on 127.0.0.1 inside it, and keepalived's VRRP addresses land on ska0, never on the host.
  `Network.name`, `Network.path` (/run/netns/NAME), `Network.run(cmd, ...)` runs a host command inside it.
- fixture `boot` (function): `boot(tree, network=...) -> Container` boots the directory tree (a `Root.copy`),
  in the run's shared namespace or in `network` (anything with .name and .path: support.cluster), and waits
  until `systemctl is-system-running --wait` returns; every container a test booted is stopped at teardown,
  whatever the test did.
- `Container.run(*cmd, check=True, timeout=120)` runs cmd inside (all the container's namespaces, its root,
  a clean environment) and returns the CompletedProcess; `Container.sh(script)` runs `sh -c script`.
- `Container.reboot()` stops the container and boots the same tree again (the journal and /run do not
  survive, as on a real reboot). `Container.stop()` shuts it down (idempotent); `Container.journal(unit)`.
- `Container.system_state` is what `is-system-running --wait` answered at boot.

How: the host's systemd-nspawn (252) with `-b`, `--register=no --keep-unit` (the host's PID 1 is not
systemd, so there is no machined and no scope to create), `SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1` (systemd 262
refuses the legacy cgroup layout nspawn would give it here), `--network-namespace-path` (the run's
namespace above) with CAP_NET_ADMIN, which nspawn drops by default and keepalived needs to add a VIP
("Netlink: error: Operation not permitted ... RTM_NEWADDR" without it), and the loop devices bound in:
systemd-sysext attaches images to loop devices and opens /dev/loopN, which nspawn's private /dev lacks
("Failed to read metadata for image ...: No such file or directory"). Nodes for /dev/loop0..63 are made in
CACHE/work/ska-e2e-<pid>-dev (fixture `loop_nodes`, session) and bound one by one, so a loop device the
kernel allocates during the test is there too. Commands enter the container with nsenter.

Names: containers are `PREFIX<pid>-<n>`, the namespace `PREFIX<pid>-net`; a run first stops the containers
and deletes the namespaces of runs whose pid is gone (a crashed or killed run)."""

import glob
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from support.common import CACHE, PREFIX, Failure, expect, run

LOOPS = 64
ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
       "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb"]


def _alive(pid):
    return os.path.exists(f"/proc/{pid}")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def cleanup_stale():
    """Stops containers and deletes namespaces left by earlier runs whose process is gone."""
    pattern = re.compile(rb"--machine=" + re.escape(PREFIX.encode()) + rb"(\d+)-")
    for proc in glob.glob("/proc/[0-9]*"):
        pid = int(os.path.basename(proc))
        args = _cmdline(pid)
        if not args or not args[0].endswith(b"systemd-nspawn"):
            continue
        for a in args:
            m = pattern.match(a)
            if m and not _alive(int(m.group(1))):
                os.kill(pid, signal.SIGKILL)
    # -net: the shared namespace below; -sw, -client and node names: support.cluster's.
    for path in glob.glob(f"/run/netns/{PREFIX}*"):
        m = re.match(re.escape(PREFIX) + r"(\d+)-[\w-]+$", os.path.basename(path))
        if m and not _alive(int(m.group(1))):
            run(["ip", "netns", "delete", os.path.basename(path)], check=False)
            if os.path.exists(path):
                os.unlink(path)
    for path in glob.glob(os.path.join(CACHE, "work", f"{PREFIX}*-dev")):
        m = re.match(re.escape(PREFIX) + r"(\d+)-dev$", os.path.basename(path))
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)


class Network:
    def __init__(self, name):
        self.name = name
        self.path = f"/run/netns/{name}"

    def run(self, cmd, **kw):
        return run(["ip", "netns", "exec", self.name, *cmd], **kw)


@pytest.fixture(scope="session")
def network():
    cleanup_stale()
    net = Network(f"{PREFIX}{os.getpid()}-net")
    run(["ip", "netns", "add", net.name])
    try:
        for cmd in (["link", "set", "lo", "up"], ["link", "add", "ska0", "type", "veth", "peer", "name", "ska1"],
                    ["link", "set", "ska1", "up"],
                    ["addr", "add", "192.0.2.1/24", "dev", "ska0"], ["link", "set", "ska0", "up"]):
            run(["ip", "-n", net.name, *cmd])
        yield net
    finally:
        run(["ip", "netns", "delete", net.name], check=False)


@pytest.fixture(scope="session")
def loop_nodes():
    """A directory of loop device nodes to bind into containers (see the module doc)."""
    d = os.path.join(CACHE, "work", f"{PREFIX}{os.getpid()}-dev")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for n in range(LOOPS):
        os.mknod(os.path.join(d, f"loop{n}"), 0o660 | 0o060000, os.makedev(7, n))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Container:
    def __init__(self, tree, name, network, loop_dir, log):
        self.tree = tree
        self.name = name
        self.network = network
        self.loop_dir = loop_dir
        self.log = log
        self.proc = None
        self.leader = None
        self.system_state = None

    def start(self, timeout=120):
        cmd = ["systemd-nspawn", "-b", "-D", self.tree, f"--machine={self.name}", "--register=no",
               "--keep-unit", "--console=passive", f"--network-namespace-path={self.network.path}",
               "--capability=CAP_NET_ADMIN",
               "--bind=/dev/loop-control"]
        cmd += [f"--bind={self.loop_dir}/loop{n}:/dev/loop{n}" for n in range(LOOPS)]
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        self.leader = None
        while self.leader is None:
            if self.proc.poll() is not None:
                raise Failure(f"systemd-nspawn exited with {self.proc.returncode} while booting {self.tree}:\n"
                              + self._log_tail())
            expect(time.monotonic() < deadline, f"no container PID 1 after {timeout} s:\n{self._log_tail()}")
            self.leader = self._find_leader()
            if self.leader is None:
                time.sleep(0.1)
        # systemctl answers nothing until PID 1 has set up its private socket, and "offline" until PID 1 has
        # made /run/systemd/system; then --wait blocks until the boot is done.
        self.system_state = ""
        while self.system_state in ("", "offline") and time.monotonic() < deadline:
            left = max(5, int(deadline - time.monotonic()))
            p = self.run("timeout", str(left), "systemctl", "is-system-running", "--wait", check=False,
                         timeout=left + 10)
            self.system_state = p.stdout.strip()
            if self.system_state in ("", "offline"):
                time.sleep(0.2)
        if self.system_state not in ("running", "degraded"):
            raise Failure(f"{self.name}: system state {self.system_state!r} after boot\n"
                          + self.run("systemctl", "--failed", "--no-legend", check=False).stdout
                          + self.run("journalctl", "-b", "--no-pager", "-n", "80", check=False).stdout)
        return self

    def _log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def _find_leader(self):
        """The container's PID 1: the descendant of nspawn whose pid in its own namespace is 1."""
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = f.read()
            except OSError:
                continue
            m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if m and m.group(1).split()[-1] == "1" and len(m.group(1).split()) > 1:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "systemd":
                        return pid
            for children in glob.glob(f"/proc/{pid}/task/*/children"):
                with open(children) as f:
                    todo += [int(c) for c in f.read().split()]
        return None

    def run(self, *cmd, check=True, timeout=120, input=None):
        expect(self.leader is not None, f"{self.name} is not running")
        return run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", *ENV,
                    *cmd], check=check, timeout=timeout, input=input)

    def sh(self, script, check=True, timeout=120):
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def journal(self, unit=None):
        args = ["journalctl", "--no-pager", "-b", "-o", "cat"] + (["-u", unit] if unit else ["-n", "200"])
        return self.run(*args, check=False).stdout

    def stop(self, timeout=60):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # nspawn forwards SIGTERM to the guest's PID 1 as SIGRTMIN+3: a clean shutdown.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None
        self.leader = None

    def reboot(self, timeout=120):
        self.stop()
        return self.start(timeout)


@pytest.fixture
def boot(network, loop_nodes, tmp_path):
    started = []

    def boot(tree, timeout=120, network=network):
        c = Container(str(tree), f"{PREFIX}{os.getpid()}-{len(started)}", network, loop_nodes,
                      str(tmp_path / f"nspawn-{len(started)}.log"))
        started.append(c)
        return c.start(timeout)

    try:
        yield boot
    finally:
        for c in started:
            c.stop()
