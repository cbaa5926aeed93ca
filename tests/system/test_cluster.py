"""Updates of a running three-node VRRP cluster (support.cluster): n1 and n3 boot Debian trixie (systemd 257,
Flatcar Stable's generation), n2 Debian sid (systemd 262), each in a network namespace of its own, one VIP,
and a client probing the VIP every 10 ms from a namespace of its own. Every node updates with the real
systemd-sysupdate from one signed feed. The trixie nodes apply with `keepalived-sysext apply`; on n2 nobody
does: its systemd-sysupdate-notify-sysext.socket is enabled (as systemd's preset has it; Debian leaves it
off), so systemd 262 merges the update at once and systemd-sysext restarts keepalived-sysext-apply.service
(EXTENSION_RESTART_UNITS=). Two real keepalived versions: 2.2.7 (OLD, Debian bookworm's) and 2.3.4 (GOOD,
the data file's default).

The tests share one booted cluster and run in file order; each asserts the state it starts from. What the
client saw in each scenario (who held the VIP over time, the longest and the total gap, the moves) is
printed at the end of the run and written to the results file (bench/rolling-upgrade reads it).

Bounds come from VRRP's timers, not from this machine: a node that stops while MASTER sends a priority-0
advert and the backup takes over after its skew time, (256 - 99) / 256 x advert_int = 0.61 s (RFC 3768
6.4.2) -- the gap the handover exists to avoid. So every gap must stay below SKEW, and the VIP may move only
where the scenario says."""

import os
import shutil
import time

import pytest

from support.builds import assembler_build
from support.cluster import FEED_PORT, HANDOVER_FILE, NEW_ONLY_KEYWORD, Cluster, keepalived_conf
from support.common import PREFIX, expect, keepalived_version, old_keepalived_version
from support.containers import Container, Network
from support.feed import MARKER, TRANSFER_FILE
from support.session import note
from test_sysupdate import CONF, LINK, OPT, PUBRING, TRANSFER, image_name, merged_version, put, show, wait_for

OLD = old_keepalived_version()
GOOD = keepalived_version()
BAD = GOOD + ".1"
SUB = "cluster"
TOOL = "/usr/bin/keepalived-sysext"
APPLY_UNIT = "keepalived-sysext-apply.service"
SUITES = {"n1": "trixie", "n2": "sid", "n3": "trixie"}
PRIORITIES = {"n1": 100, "n2": 99, "n3": 98}
SKEW = (256 - 99) / 256 * 1.0


class Feed:
    """The cluster's signed feed: images built into one directory as nix/release.nix does, SHA256SUMS merged
    by the assembler and signed again after every addition."""

    def __init__(self, assembler, keys, root, binaries, markers):
        self.assembler, self.keys, self.binaries, self.markers = assembler, keys, binaries, markers
        self.root = root
        self.path = os.path.join(root, SUB)
        self.url = f"http://127.0.0.1:{FEED_PORT}/{SUB}/"
        os.makedirs(self.path)

    def add(self, version, keepalived):
        mark = os.path.join(self.markers, version)
        with open(mark, "w") as f:
            f.write(version + "\n")
        assembler_build(self.assembler, "x86-64", self.binaries[keepalived], self.path,
                        "--file", f"{MARKER}={mark}", "--update-url", self.url, version=version)
        self.keys.sign(self.path, self.keys.trusted)

    def image(self, version):
        return os.path.join(self.path, image_name(version))

    @property
    def transfer(self):
        with open(os.path.join(self.path, TRANSFER_FILE)) as f:
            return f.read()


@pytest.fixture(scope="module")
def cluster(assembler, keepalived_x86_64, keepalived_x86_64_old, keys, root_trixie, root_sid, loop_nodes,
            tmp_path_factory):
    work = str(tmp_path_factory.mktemp("cluster"))
    feed = Feed(assembler, keys, os.path.join(work, "feeds"),
                {OLD: keepalived_x86_64_old, GOOD: keepalived_x86_64}, str(tmp_path_factory.mktemp("marks")))
    feed.add(OLD, OLD)
    feed.add(GOOD, GOOD)
    roots = {"trixie": root_trixie, "sid": root_sid}
    c = Cluster(f"{PREFIX}{os.getpid()}", work, feed.root)
    containers = []
    try:
        for name, suite in SUITES.items():
            tree = roots[suite].copy(os.path.join(work, name))
            os.makedirs(os.path.join(tree, "etc/extensions"), exist_ok=True)
            put(tree, TRANSFER, feed.transfer)
            put(tree, PUBRING, keys.pubring(keys.trusted))
            put(tree, CONF, keepalived_conf(name, PRIORITIES[name]), 0o600)
            os.makedirs(os.path.join(tree, OPT.lstrip("/")), exist_ok=True)
            shutil.copy2(feed.image(OLD), os.path.join(tree, OPT.lstrip("/"), image_name(OLD)))
            os.symlink(f"{OPT}/{image_name(OLD)}", os.path.join(tree, LINK.lstrip("/")))
            if suite == "sid":
                wants = os.path.join(tree, "etc/systemd/system/sockets.target.wants")
                os.makedirs(wants, exist_ok=True)
                os.symlink("/usr/lib/systemd/system/systemd-sysupdate-notify-sysext.socket",
                           os.path.join(wants, "systemd-sysupdate-notify-sysext.socket"))
            c.add_node(name, tree)
        c.wait_feed(SUB)
        for node in c.nodes.values():
            container = Container(node.tree, f"{node.ns}-c", Network(node.ns), loop_nodes,
                                  os.path.join(work, f"nspawn-{node.name}.log"))
            containers.append(container)
            node.container = container.start()
        for node_ in c.nodes.values():
            wait_for(lambda: running_version(node_.container) == f"v{OLD}",
                     f"keepalived {OLD} to run on {node_.name}", timeout=60)
        wait_for(lambda: c.holders() == ["n1"], "n1 (priority 100) to hold the VIP", timeout=60)
        c.feed = feed
        yield c
    finally:
        for container in containers:
            container.stop()
        c.close()


def node(cluster, name):
    return cluster.nodes[name].container


def running_version(c):
    pid = show(c, "keepalived.service", "MainPID")
    p = c.run(f"/proc/{pid}/exe", "--version", check=False)
    return (p.stdout + p.stderr).split()[1] if p.returncode == 0 and pid != "0" else None


def versions(cluster):
    return {name: running_version(n.container) for name, n in cluster.nodes.items()}


def record(results, scenario, timeline):
    results[f"cluster_{scenario}"] = {"probes": len(timeline.probes), "lost": timeline.lost,
                                      "longest_gap_s": round(timeline.longest_gap, 3),
                                      "total_gap_s": round(timeline.total_gap, 3), "moves": timeline.moves,
                                      "holders": [[round(t, 2), n] for t, n in timeline.holders]}
    note(f"cluster, {scenario}: {timeline.summary()}")


def apply(c, *args, check=True):
    p = c.run(TOOL, *(args or ("apply",)), check=False, timeout=300)
    if check:
        expect(p.returncode == 0, f"keepalived-sysext {' '.join(args or ('apply',))} failed:\n{p.stdout}{p.stderr}")
    return p


def automatic(name):
    """Whether systemd applies an update on this node by itself (systemd 262 with the notify socket)."""
    return SUITES[name] == "sid"


def update_and_apply(c, name, check=True):
    """sysupdate, then `keepalived-sysext apply` on 257; on 262 systemd's automatic refresh restarts the
    apply unit, which is waited for. Returns what the apply unit logged for this update."""
    since = c.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    c.run("/usr/lib/systemd/systemd-sysupdate", "-C", "keepalived", "update", timeout=300)
    if not automatic(name):
        return apply(c, check=check).stderr
    def done():
        log = c.run("journalctl", "--no-pager", "-o", "cat", "-u", APPLY_UNIT, "--since", since,
                    check=False).stdout
        finished = show(c, APPLY_UNIT, "ActiveState") in ("inactive", "failed") and (
            "restarting keepalived.service" in log or "REFUSED" in log or "not applying" in log)
        return log if finished else None
    log = wait_for(done, f"{name}: systemd 262 to apply the update by itself", timeout=120)
    if check:
        expect(show(c, APPLY_UNIT, "Result") == "success", f"{name}: the automatic apply failed:\n{log}")
    return log


def wait_running(c, version, what):
    return wait_for(lambda: running_version(c) == f"v{version}" and show(c, "keepalived.service", "ActiveState")
                    == "active", what, timeout=60)


def test_rolling_upgrade_moves_the_vip_once_without_a_gap(cluster, results):
    """2.2.7 -> 2.3.4 on every node, backups first, the master last, each from the signed feed through
    sysupdate and `keepalived-sysext apply`: mixed versions serve while it runs, the VIP moves once (when
    the master hands over), and no gap reaches a priority-0 handover's skew time."""
    expect(versions(cluster) == {n: f"v{OLD}" for n in SUITES}, f"start: {versions(cluster)}")
    expect(cluster.holders() == ["n1"], f"start: VIP on {cluster.holders()}")
    probe = cluster.probe()
    for name in ("n3", "n2", "n1"):
        c = node(cluster, name)
        log = update_and_apply(c, name)
        expect(c.run("readlink", "-f", LINK).stdout.strip() == f"{OPT}/{image_name(GOOD)}",
               f"{name}: sysupdate did not install {GOOD}")
        wait_running(c, GOOD, f"{name} to run keepalived {GOOD}")
        expect(merged_version(c) == GOOD, f"{name}: {merged_version(c)} merged")
        if name == "n1":
            expect("handed over" in log, f"n1 did not hand over:\n{log}")
    timeline = probe.stop()
    record(results, "rolling_upgrade", timeline)
    expect(versions(cluster) == {n: f"v{GOOD}" for n in SUITES}, f"after the rollout: {versions(cluster)}")
    expect(cluster.holders() == ["n2"], f"VIP on {cluster.holders()} after the rollout, expected n2")
    expect(timeline.moves == 1, f"the VIP moved {timeline.moves} times: {timeline.summary()}")
    expect(timeline.longest_gap < SKEW, f"a gap of {timeline.longest_gap:.2f} s: {timeline.summary()}")
    n1 = node(cluster, "n1")
    expect("held" in n1.run(TOOL, "status").stdout, n1.run(TOOL, "status").stdout)


def test_release_ends_the_hold(cluster, results):
    """After the rollout, `keepalived-sysext release` on n1 gives it its configured priority back: with
    preemption (the configuration's choice) the VIP moves back to it, once and without a gap."""
    expect(cluster.holders() == ["n2"], f"start: VIP on {cluster.holders()}")
    probe = cluster.probe()
    node(cluster, "n1").run(TOOL, "release")
    wait_for(lambda: cluster.holders() == ["n1"], "n1 to take the VIP back", timeout=30)
    time.sleep(2)  # the client's answers follow the move (its ARP entry, the new master's GARP)
    timeline = probe.stop()
    record(results, "release", timeline)
    expect(timeline.moves == 1 and timeline.longest_gap < SKEW, timeline.summary())
    expect(node(cluster, "n1").run("cat", HANDOVER_FILE).stdout.strip() == "0", "handover file not reset")


@pytest.mark.parametrize("name", ["n3", "n2"])
def test_rollback_on_a_backup(cluster, results, name):
    """`keepalived-sysext rollback` on a BACKUP (n3: systemd 257, n2: systemd 262) returns it to 2.2.7 after
    the check, and `rollback 2.3.4` forward again; the VIP never moves."""
    c = node(cluster, name)
    expect(cluster.holders() == ["n1"], f"start: VIP on {cluster.holders()}")
    probe = cluster.probe()
    apply(c, "rollback")
    wait_running(c, OLD, f"{name} to run keepalived {OLD}")
    expect(c.run("readlink", "-f", LINK).stdout.strip() == f"{OPT}/{image_name(OLD)}", "link not on OLD")
    apply(c, "rollback", GOOD)
    wait_running(c, GOOD, f"{name} to run keepalived {GOOD} again")
    timeline = probe.stop()
    record(results, f"rollback_{name}", timeline)
    expect(timeline.moves == 0 and timeline.lost == 0, timeline.summary())
    expect(show(c, APPLY_UNIT, "Result") == "success", c.journal(APPLY_UNIT))


def test_a_master_that_no_node_can_relieve_keeps_the_vip(cluster, results):
    """With keepalived stopped on n2 and n3, applying another version on the master n1 aborts: no node took
    over, so n1 keeps the VIP and its running keepalived, and the apply unit fails saying so."""
    n1 = node(cluster, "n1")
    expect(cluster.holders() == ["n1"], f"start: VIP on {cluster.holders()}")
    for name in ("n2", "n3"):
        node(cluster, name).run("systemctl", "mask", "--runtime", "keepalived.service")
        node(cluster, name).run("systemctl", "stop", "keepalived.service")
    try:
        wait_for(lambda: cluster.holders() == ["n1"], "n1 alone to hold the VIP")
        pid = show(n1, "keepalived.service", "MainPID")
        probe = cluster.probe()
        p = apply(n1, "rollback", check=False)
        timeline = probe.stop()
        record(results, "master_alone", timeline)
        expect(p.returncode != 0, f"the apply went on without another node:\n{p.stderr}")
        expect("no other node took over" in p.stderr, p.stderr)
        expect(show(n1, "keepalived.service", "MainPID") == pid, "n1's keepalived was restarted")
        expect(running_version(n1) == f"v{GOOD}", f"n1 runs {running_version(n1)}")
        expect(timeline.moves == 0 and timeline.lost == 0, timeline.summary())
        expect(n1.run("cat", HANDOVER_FILE).stdout.strip() == "0", "the demotion was not undone")
        expect(show(n1, APPLY_UNIT, "Result") != "success", "the apply unit succeeded")
    finally:
        for name in ("n2", "n3"):
            node(cluster, name).run("systemctl", "unmask", "--runtime", "keepalived.service")
            node(cluster, name).run("systemctl", "start", "keepalived.service")
        # n1's link is on OLD now (the rollback merged it, then did not apply it): back to GOOD.
        n1.run("ln", "-sfn", f"{OPT}/{image_name(GOOD)}", LINK)
        n1.run("systemd-sysext", "refresh")
    for name in ("n2", "n3"):
        wait_running(node(cluster, name), GOOD, f"{name} back")


def test_a_release_that_rejects_the_configuration_reaches_every_node(cluster, results):
    """Every node's configuration uses a keyword only 2.3.4 knows; the feed then publishes BAD, a higher
    version whose keepalived is 2.2.7. Every node installs it through sysupdate and refuses it at apply: no
    node loses keepalived, none restarts it, the VIP does not move, and every apply unit is failed."""
    for name, n in cluster.nodes.items():
        n.container.sh(f"cat > {CONF} <<'EOF'\n{keepalived_conf(name, PRIORITIES[name], new_only=True)}EOF")
        n.container.run("systemctl", "reload", "keepalived.service")
    cluster.feed.add(BAD, OLD)
    pids = {name: show(n.container, "keepalived.service", "MainPID") for name, n in cluster.nodes.items()}
    wait_for(lambda: cluster.holders() == ["n1"], "n1 to hold the VIP")
    probe = cluster.probe()
    for name in ("n3", "n2", "n1"):
        log = update_and_apply(node(cluster, name), name, check=False)
        for needle in (f"REFUSED keepalived v{OLD}", f"Unknown keyword '{NEW_ONLY_KEYWORD}'",
                       f"returning to keepalived v{GOOD}"):
            expect(needle in log, f"{name}: {needle!r} not said:\n{log}")
    timeline = probe.stop()
    record(results, "bad_release", timeline)
    for name, n in cluster.nodes.items():
        c = n.container
        expect(show(c, "keepalived.service", "MainPID") == pids[name], f"{name}: keepalived restarted")
        expect(running_version(c) == f"v{GOOD}", f"{name} runs {running_version(c)}")
        expect(c.run("readlink", "-f", LINK).stdout.strip() == f"{OPT}/{image_name(GOOD)}", f"{name}: link")
        expect(c.run("systemctl", "is-failed", APPLY_UNIT, check=False).stdout.strip() == "failed",
               f"{name}: {APPLY_UNIT} not failed")
    expect(timeline.moves == 0 and timeline.lost == 0, timeline.summary())
    expect(cluster.holders() == ["n1"], f"VIP on {cluster.holders()}")
