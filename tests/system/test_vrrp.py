"""VRRP between two keepalived from the merged root, in network namespaces on 192.0.2.0/24 (support/lab.py):
config test good and bad, one VIP holder in the steady state within the unit's privileges, failover within
the RFC 3768 bound after SIGKILL of the master's VRRP process, preemption when it returns, a failing
track_script moving the VIP, and the unit's own ExecReload= commands moving a changed VIP without leaving
MASTER.

The tests share one lab and run in file order, each leaving the state the next starts from; each also
establishes its own starting state when run alone (`-k preemption`), and asserts it before acting."""

import os
import signal
import time

import pytest

from support.common import expect, run
from support.keepalived import check_process_privileges, unit_lines
from support.lab import FAILOVER_BOUND, VIP, VIP2, vrrp_lab  # noqa: F401 (vrrp_lab: a fixture)
from support.session import note, require


def test_config_test_accepts_good_config(vrrp_lab, merged_keepalived):
    lab = vrrp_lab
    p = run(["ip", "netns", "exec", lab.a.ns, merged_keepalived, "--config-test", f"--use-file={lab.a.conf}"],
            check=False)
    expect(p.returncode == 0, f"good config rejected (exit {p.returncode}):\n{p.stdout}{p.stderr}")


def test_config_test_accepts_good_config_aarch64(vrrp_lab, keepalived_aarch64):
    """The aarch64 binary under qemu-aarch64-static."""
    require("qemu-aarch64-static")
    lab = vrrp_lab
    p = run(["ip", "netns", "exec", lab.a.ns, "qemu-aarch64-static", keepalived_aarch64, "--config-test",
             f"--use-file={lab.a.conf}"], check=False)
    expect(p.returncode == 0, f"aarch64 binary rejected the good config (exit {p.returncode}):\n"
           f"{p.stdout}{p.stderr}")


def test_config_test_rejects_broken_config(vrrp_lab, merged_keepalived):
    lab = vrrp_lab
    bad = os.path.join(lab.work, "bad.conf")
    with open(lab.a.conf) as f:
        text = f.read().replace("virtual_router_id 51", "virtual_router_id 999")
    with open(bad, "w") as f:
        f.write(text)
    p = run(["ip", "netns", "exec", lab.a.ns, merged_keepalived, "-t", "-f", bad], check=False)
    out = p.stdout + p.stderr
    expect(p.returncode != 0, f"broken config accepted (exit 0):\n{out}")
    line = 1 + text.splitlines().index("  virtual_router_id 999")
    expect(f"Line {line})" in out and "'999'" in out, f"no message naming the bad value and line {line}:\n{out}")
    note(f"keepalived -t: {out.strip().splitlines()[0]}")


@pytest.fixture(scope="module")
def vrrp_running(vrrp_lab, results):
    """Both nodes started; a (priority 100) holds the VIP."""
    lab = vrrp_lab
    t0 = time.monotonic()
    lab.a.start()
    lab.b.start()
    took = lab.wait_for(lambda: lab.holders() == ["a"], 15, "node a to hold the VIP")
    results["initial_master_s"] = round(time.monotonic() - t0, 3)
    note(f"a became MASTER {took:.2f} s after start")
    return lab


def test_steady_state(vrrp_running):
    """Exactly one node (a) holds the VIP over 5 s, and every keepalived process stays within the unit's
    privileges."""
    lab = vrrp_running
    samples = lab.sample_single_holder(5, "a")
    for n in lab.nodes:
        check_process_privileges(n.proc.pid)
        check_process_privileges(n.vrrp_pid())
    note(f"{samples} samples over 5 s: only a holds {VIP}")


def test_failover_after_sigkill_of_master_vrrp(vrrp_running, results):
    """The backup holds the VIP within 3 x advert_int + skew + 0.5 s of SIGKILL of the master's VRRP process."""
    lab = vrrp_running
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "a to hold the VIP before it is killed")
    pid = lab.a.vrrp_pid()
    os.kill(pid, signal.SIGKILL)
    took = lab.wait_for(lambda: lab.b.has(lab.vip), FAILOVER_BOUND, f"b to take {lab.vip} after SIGKILL")
    results["failover_sigkill_s"] = round(took, 3)
    results["failover_bound_s"] = round(FAILOVER_BOUND, 3)
    note(f"b holds the VIP {took:.3f} s after SIGKILL of a's VRRP process "
         f"(bound 3 x advert_int + skew + 0.5 = {FAILOVER_BOUND:.3f} s)")


def test_preemption_when_master_returns(vrrp_running, results):
    lab = vrrp_running
    pid = lab.a.live_vrrp_pid()
    if pid:  # run alone: fail a over first, as the failover test leaves it
        os.kill(pid, signal.SIGKILL)
    # (a's killed VRRP process left the VIP configured on its link; only the restart below removes it.)
    lab.wait_for(lambda: lab.b.has(lab.vip) and not lab.a.live_vrrp_pid(), 15, "b to hold the VIP while a is down")
    lab.a.stop()  # the parent exits after its VRRP child died (--dont-respawn); reap it
    lab.a.start()
    took = lab.wait_for(lambda: lab.holders() == ["a"], 15, "a to take the VIP back")
    results["preemption_s"] = round(took, 3)
    lab.sample_single_holder(3, "a")
    note(f"a back as MASTER {took:.2f} s after restart")


def test_failing_track_script_moves_vip(vrrp_running, results):
    """A failing track_script lowers the master's priority and moves the VIP; recovery moves it back."""
    lab = vrrp_running
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "a to hold the VIP before its check fails")
    os.unlink(lab.a.health)
    try:
        took = lab.wait_for(lambda: lab.holders() == ["b"], 10, "b to take the VIP after a's check failed")
        results["track_script_failover_s"] = round(took, 3)
        lab.sample_single_holder(2, "b")
    finally:
        open(lab.a.health, "w").close()
    back = lab.wait_for(lambda: lab.holders() == ["a"], 10, "a to take the VIP back after recovery")
    note(f"failing check on a: VIP on b after {took:.2f} s (fall 2 x interval 1 + adverts);"
         f" a back {back:.2f} s after recovery")


def test_reload_with_changed_vip_keeps_master(vrrp_running, merged_keepalived, results):
    """The unit's own ExecReload= commands (config test, SIGHUP), pointed at each instance's config and
    main process, move a changed VIP without a state change."""
    lab = vrrp_running
    old = lab.vip
    expect(old != VIP2, f"the lab already serves {VIP2}")
    lab.wait_for(lambda: lab.holders() == ["a"], 15, "a to hold the VIP before the reload")
    lab.sample_single_holder(1, "a")
    seen_a, seen_b = len(lab.a.transitions()), len(lab.b.transitions())
    reload_cmds = [value.split() for value in unit_lines("ExecReload")]
    expect(reload_cmds, "unit has no ExecReload=")
    lab.write_confs(VIP2)
    for n in lab.nodes:
        mainpid = str(n.proc.pid)
        for argv in reload_cmds:
            argv = [a.replace("/etc/keepalived/keepalived.conf", n.conf).replace("$MAINPID", mainpid)
                    for a in argv]
            if argv[0] == "/usr/bin/keepalived":
                argv[0] = merged_keepalived
            run(["ip", "netns", "exec", n.ns] + argv)
    took = lab.wait_for(lambda: lab.holders(VIP2) == ["a"] and not lab.holders(old), 10,
                        f"a to move from {old} to {VIP2}")
    lab.sample_single_holder(3, "a", VIP2)
    expect(not lab.holders(old), f"old VIP {old} still present")
    new_a = lab.a.transitions()[seen_a:]
    new_b = lab.b.transitions()[seen_b:]
    expect(all(s == "MASTER" for s in new_a), f"a left MASTER during reload: {new_a}")
    expect("MASTER" not in new_b, f"b became MASTER during reload: {new_b}")
    results["reload_vip_move_s"] = round(took, 3)
    note(f"after SIGHUP: a serves {VIP2} ({took:.2f} s), state changes a={new_a} b={new_b}")
