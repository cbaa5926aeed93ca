"""The shipped units under a real systemd (support/host_container.py: nspawn containers from the host's /usr,
the image as a directory extension merged at boot): without a configuration nothing starts or retries and
a configuration appearing later starts keepalived (keepalived.path); with one, keepalived.service runs at
boot within the unit's sandbox and holds the VIP against a second node (support/lab.py); track_script
works inside the sandbox; `systemctl reload` moves a changed VIP and refuses a broken configuration;
SIGKILL of the main process fails over at once and Restart= brings keepalived back.

The tests after the first share one booted container and run in file order; each asserts the state it
starts from (MASTER on the unit-managed node, the main process from boot)."""

import os
import signal
import time

import pytest

from support.common import Failure, expect
from support.host_container import HostContainer, extension_dir, unit_lab  # noqa: F401 (fixtures)
from support.keepalived import proc_status, unit_capability_mask
from support.lab import PRIORITY0_BOUND, VIP2
from support.session import note


def test_no_config_nothing_starts_until_config_appears(work, extension_dir):
    """Merged at boot, no configuration: nothing starts or retries past systemd's rate-limit interval;
    a configuration appearing starts keepalived."""
    c = HostContainer(work, "noconf", extension_dir)
    try:
        c.boot()
        upholds = c.show("multi-user.target", "Upholds")["Upholds"].split()
        expect("keepalived.path" in upholds, f"multi-user.target does not uphold keepalived.path: {upholds}")
        path = c.show("keepalived.path", "ActiveState", "SubState")
        expect(path == {"ActiveState": "active", "SubState": "waiting"}, f"keepalived.path: {path}")
        props = c.show("keepalived.service", "ActiveState", "NRestarts", "FragmentPath")
        # (Debian's search path lists /lib/systemd/system first; /lib is a symlink to usr/lib.)
        expect(props["FragmentPath"] in ("/usr/lib/systemd/system/keepalived.service",
                                         "/lib/systemd/system/keepalived.service"),
               f"unit not loaded from the merged /usr: {props}")
        # Watch past systemd's 10 s rate-limit interval for automatic starts: there must be none.
        journals = []
        for _ in range(4):
            journals.append(c.journal())
            time.sleep(4)
        journals.append(c.journal())
        expect(all(j.strip() == "" for j in journals), f"start attempts without a config:\n{journals[-1]}")
        expect(c.show("keepalived.service", "ActiveState")["ActiveState"] == "inactive", "keepalived started")
        # The configuration appears after boot: keepalived.path starts the service.
        c.sh("sh", "-c", "mkdir -p /etc/keepalived && echo 'global_defs { router_id LATE }' "
             "> /etc/keepalived/keepalived.conf")
        props = c.wait_unit(lambda p: p["ActiveState"] == "active", 10, "started after the config appeared")
        note(f"no config: no start attempt in 16 s; config written: keepalived.service active "
             f"(MainPID {props['MainPID']})")
    finally:
        c.stop()


@pytest.fixture(scope="module")
def unit_node(work, extension_dir, unit_lab):
    """A container with node sa's configuration, booted; keepalived.service active at boot; node sb started
    as a plain process. Yields (container, lab, MainPID at boot)."""
    lab = unit_lab
    sd = HostContainer(work, "vrrp", extension_dir, netns=lab.a.ns, conf=lab.a.conf, binds=[lab.work])
    try:
        sd.boot()
        props = sd.wait_unit(lambda p: p["ActiveState"] == "active", 15, "became active")
        lab.b.start()
        try:
            took = lab.wait_for(lambda: lab.holders() == ["a"], 20, "the unit-managed node to hold the VIP")
        except Failure as e:
            raise Failure(f"{e}\njournal of keepalived.service:\n{sd.journal()[-4000:]}")
        note(f"keepalived.service active (MainPID {props['MainPID']}) and MASTER {took:.2f} s after B started")
        yield sd, lab, props["MainPID"]
    finally:
        sd.stop()


def test_config_present_starts_at_boot_within_sandbox_and_holds_vip(unit_node):
    """Upholds=/keepalived.path start keepalived at boot as /usr/bin/keepalived, within the unit's
    capabilities, no_new_privs, seccomp and a read-only /etc; it holds the VIP."""
    sd, lab, pid = unit_node
    exe = sd.sh("readlink", f"/proc/{pid}/exe").stdout.strip()
    expect(exe == "/usr/bin/keepalived", f"main process is {exe}")
    fields = proc_status(sd.sh("cat", f"/proc/{pid}/status").stdout)
    allowed = unit_capability_mask()
    expect(int(fields["CapBnd"], 16) & ~allowed == 0,
           f"CapBnd {fields['CapBnd'].strip()} exceeds the unit's {allowed:#x}")
    expect(fields["NoNewPrivs"].strip() == "1", "no_new_privs not set by the unit")
    # RestrictAddressFamilies= and SystemCallArchitectures= are seccomp filters; ProtectSystem=full
    # makes /etc read-only in keepalived's mount namespace.
    expect(fields["Seccomp"].strip() == "2", f"no seccomp filter on keepalived: {fields['Seccomp'].strip()}")
    mounts = sd.sh("cat", f"/proc/{pid}/mountinfo").stdout.splitlines()
    etc = [m.split() for m in mounts if m.split()[4] == "/etc"]
    expect(etc and "ro" in etc[-1][5].split(","), f"/etc not read-only for keepalived: {etc}")
    lab.sample_single_holder(3, "a")


def test_track_script_runs_in_unit_sandbox(unit_node):
    """A failing track_script inside the unit's sandbox moves the VIP, and recovery moves it back."""
    sd, lab, pid = unit_node
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "the unit-managed node to hold the VIP before its check fails")
    os.unlink(lab.a.health)
    try:
        took = lab.wait_for(lambda: lab.holders() == ["b"], 10, "b to take the VIP after the check failed")
    finally:
        open(lab.a.health, "w").close()
    lab.wait_for(lambda: lab.holders() == ["a"], 10, "the unit-managed node to take the VIP back")
    note(f"failing track_script inside the unit's sandbox moved the VIP in {took:.2f} s, and back")


def test_systemctl_reload_moves_changed_vip(unit_node):
    """systemctl reload with a changed VIP moves it and keeps MASTER and the main process."""
    sd, lab, pid = unit_node
    old = lab.vip
    expect(old != VIP2, f"the lab already serves {VIP2}")
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "the unit-managed node to hold the VIP before the reload")
    seen = len(lab.a.transitions())
    lab.write_confs(VIP2)  # in place: the container sees the bind-mounted file change
    os.kill(lab.b.proc.pid, signal.SIGHUP)
    sd.sh("systemctl", "reload", "keepalived.service")
    took = lab.wait_for(lambda: lab.holders(VIP2) == ["a"] and not lab.holders(old), 10,
                        f"the unit-managed node to move to {VIP2}")
    lab.sample_single_holder(2, "a", VIP2)
    props = sd.show("keepalived.service", "ActiveState", "MainPID")
    expect(props == {"ActiveState": "active", "MainPID": pid}, f"after reload: {props}")
    new = lab.a.transitions()[seen:]
    expect(all(t == "MASTER" for t in new), f"left MASTER during reload: {new}")
    note(f"systemctl reload: {VIP2} served after {took:.2f} s, same MainPID, state changes {new}")


def test_systemctl_reload_refuses_broken_config(unit_node):
    """A reload of a broken configuration fails; the running configuration, the VIP and the process stay."""
    sd, lab, pid = unit_node
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "the unit-managed node to hold the VIP before the reload")
    with open(lab.a.conf) as f:
        good = f.read()
    with open(lab.a.conf, "w") as f:
        f.write(good.replace("virtual_router_id 51", "virtual_router_id 999"))
    try:
        p = sd.sh("systemctl", "reload", "keepalived.service", check=False)
        expect(p.returncode != 0, "reload of a broken config succeeded")
        time.sleep(2)
        expect(lab.holders() == ["a"], f"VIP {lab.vip} lost after a refused reload: {lab.holders()}")
        props = sd.show("keepalived.service", "ActiveState", "MainPID")
        expect(props == {"ActiveState": "active", "MainPID": pid}, f"after refused reload: {props}")
        expect("999" in sd.journal(), "keepalived's message about the broken config is not in the journal")
    finally:
        with open(lab.a.conf, "w") as f:
            f.write(good)


def test_sigkill_of_main_fails_over_and_restart_brings_it_back(unit_node, results):
    """SIGKILL of the main process: the backup takes over at once (priority-0 advert) and Restart=on-failure
    brings keepalived back to MASTER."""
    sd, lab, pid = unit_node
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "the unit-managed node to hold the VIP before the kill")
    t0 = time.monotonic()
    sd.sh("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", "keepalived.service")
    # KillMode=control-group stops the VRRP child with SIGTERM, so it sends a priority-0 advert (with mixed,
    # systemd SIGKILLs it at once when the main process is gone, and the advert races that).
    try:
        took = lab.wait_for(lambda: lab.b.has(lab.vip), PRIORITY0_BOUND,
                            "b to take the VIP after SIGKILL of main (priority-0 advert)")
    except Failure as e:
        raise Failure(f"{e}\njournal of keepalived.service:\n{sd.journal()[-4000:]}")
    props = sd.wait_unit(lambda p: p["ActiveState"] == "active" and p["MainPID"] not in ("0", pid),
                         20, "restarted")
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "the restarted node to take the VIP back")
    expect(props["NRestarts"] == "1", f"NRestarts {props['NRestarts']}")
    results["systemd_sigkill_main_failover_s"] = round(took, 3)
    results["priority0_bound_s"] = round(PRIORITY0_BOUND, 3)
    results["systemd_restart_and_preempt_s"] = round(time.monotonic() - t0, 3)
    note(f"SIGKILL of keepalived's main process: b holds the VIP after {took:.3f} s"
         f" (priority-0 bound {PRIORITY0_BOUND:.3f} s); Restart=on-failure"
         f" restarted it, MASTER again {time.monotonic() - t0:.1f} s after the kill")
