"""keepalived.service under a real systemd: containers booted with systemd-nspawn from the host's /usr
(read-only, tmpfs root, --volatile=yes), with os-release ID=flatcar and the x86-64 image's content as a
directory extension that systemd-sysext.service merges at boot, as on Flatcar. A directory, because the
container has no loop devices; the squashfs merge itself is test_merge.py's.

These containers run the host's systemd (Debian 12: 252). The containers booted from debootstrapped roots
with Flatcar's systemd versions live elsewhere (support/containers.py); this one needs nothing but the host.

Fixtures (module scope; test_units.py imports them): `extension_dir` (the image unpacked into the run's work
directory) and `unit_lab` (a support.lab Lab of nodes sa and sb, namespaces ska-e2e-<pid>-sa and -sb, whose
files live in /run/ska-e2e-<pid>, not under /var/tmp, which the unit's PrivateTmp= would hide from the
check scripts)."""

import os
import subprocess
import time

import pytest

from support.common import Failure, expect, run
from support.lab import make_lab
from support.session import RUN_ID, die_with_parent, remove_tree, require

FLATCAR_OS_RELEASE = 'NAME="Fake Flatcar"\nID=flatcar\nVERSION_ID=4230.2.0\nSYSEXT_LEVEL=1.0\n'


def children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


class HostContainer:
    def __init__(self, work, name, extension, netns=None, conf=None, binds=()):
        """netns: join that named network namespace; without it the container gets its own empty one."""
        self.work, self.name = work, name
        self.args = [f"--bind-ro={os.path.join(work, 'os-release')}:/etc/os-release",
                     # The empty /etc makes systemd apply presets; enable none of the host's services.
                     f"--bind-ro={os.path.join(work, 'disable-all.preset')}:/etc/systemd/system-preset/00-e2e.preset",
                     f"--bind-ro={extension}:/var/lib/extensions/keepalived"]
        if netns:
            # nspawn keeps CAP_NET_ADMIN only for containers with their own network; this one joins ours.
            self.args += [f"--network-namespace-path=/run/netns/{netns}", "--capability=CAP_NET_ADMIN"]
        else:
            self.args.append("--private-network")
        if conf:
            self.args.append(f"--bind-ro={conf}:/etc/keepalived/keepalived.conf")
        self.args += [f"--bind={b}" for b in binds]
        self.proc = self.leader = None

    def boot(self):
        tree = os.path.join(self.work, f"os-{self.name}")
        os.makedirs(tree, exist_ok=True)
        with open(os.path.join(self.work, "os-release"), "w") as f:
            f.write(FLATCAR_OS_RELEASE)
        with open(os.path.join(self.work, "disable-all.preset"), "w") as f:
            f.write("disable *\n")
        if not os.path.ismount(tree):
            # Read-only: nspawn --volatile=yes only takes /usr from it, and nothing may write through it.
            run(["mount", "--bind", "/", tree])
            run(["mount", "-o", "remount,bind,ro", tree])
        self.log = open(os.path.join(self.work, f"nspawn-{self.name}.log"), "a")
        cmd = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", f"--machine={RUN_ID}-{self.name}",
               f"--directory={tree}", "--volatile=yes"] + self.args + [
               "--boot", "--", "systemd.firstboot=off", "systemd.unit=multi-user.target",
               "systemd.wants=systemd-sysext.service",
               # Nothing configures the test's links through networkd; the test set them up already.
               "systemd.mask=systemd-networkd-wait-online.service"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while self.leader is None and time.monotonic() < deadline:
            expect(self.proc.poll() is None, f"systemd-nspawn exited ({self.proc.returncode}); see {self.log.name}")
            todo = children(self.proc.pid)
            while todo:
                pid = todo.pop()
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        if f.read().strip() == "systemd":
                            self.leader = pid
                            break
                except OSError:
                    continue
                todo += children(pid)
            time.sleep(0.2)
        expect(self.leader, f"no systemd inside the container after 30 s; see {self.log.name}")
        # Until the container's manager listens, systemctl cannot connect and prints nothing.
        state = ""
        while time.monotonic() < deadline + 60:
            p = self.sh("systemctl", "is-system-running", "--wait", check=False, timeout=90)
            state = p.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise Failure(f"container did not finish booting: {state!r} {p.stderr.strip()}; see {self.log.name}")
        # The image sets EXTENSION_RELOAD_MANAGER=1: systemd >= 255 (Flatcar's) reloads the manager after the
        # merge, so the Upholds= drop-in takes effect. Debian 12's systemd 252 does not know that field yet;
        # do its reload here, as the only stand-in in these tests.
        self.sh("systemctl", "daemon-reload")

    def sh(self, *cmd, check=True, timeout=60):
        return run(["nsenter", "-t", str(self.leader), "-a", *cmd], check=check, timeout=timeout)

    def show(self, unit, *props):
        out = self.sh("systemctl", "show", unit, *[f"--property={p}" for p in props]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_unit(self, want, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            props = self.show("keepalived.service", "ActiveState", "SubState", "MainPID", "NRestarts")
            if want(props):
                return props
            time.sleep(0.2)
        raise Failure(f"keepalived.service never {what}: {props}\n{self.journal()}")

    def journal(self):
        return self.sh("journalctl", "--unit=keepalived.service", "--output=cat", "--no-pager", check=False).stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # nspawn shuts the container down cleanly
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        tree = os.path.join(self.work, f"os-{self.name}")
        if os.path.ismount(tree):
            run(["umount", "--lazy", tree], check=False)


@pytest.fixture(scope="module")
def extension_dir(work, image_x86_64):
    require("unsquashfs", "systemd-nspawn", "nsenter")
    ext = os.path.join(work, "extension")
    if not os.path.isdir(ext):
        run(["unsquashfs", "-no-progress", "-dest", ext, image_x86_64])
    return ext


@pytest.fixture(scope="module")
def unit_lab(merged_keepalived):
    """Nodes sa (to run under systemd in a container) and sb (a plain process), not yet started."""
    sd_work = os.path.join("/run", RUN_ID)
    try:
        lab = make_lab(sd_work, merged_keepalived, ("sa", "sb"))
    except BaseException:
        remove_tree(sd_work)
        raise
    yield lab
    lab.teardown()
    remove_tree(sd_work)
