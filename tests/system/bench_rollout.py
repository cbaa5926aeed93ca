"""The rolling-upgrade benchmark (bench/rolling-upgrade runs it; not collected by the test suite, whose files
are test_*.py): the cluster of test_cluster.py rolled from keepalived 2.2.7 to 2.3.4 and back, ROUNDS times
(SKA_BENCH_ROUNDS, default 3) for each of two ways, alternating:

- naive: the configuration without the handover track file, and on each node what a timer-driven update
  does without keepalived-sysext: the link moved, `systemd-sysext refresh`, then
  `systemctl restart keepalived` (the restart still passes the pre-activation check, which moves nothing);
- handover: the configuration with the track file, and `keepalived-sysext rollback VERSION` on each node
  (the same check, handover and restart as `apply` after a sysupdate).

Both roll the backups first and the master last; the client keeps probing for SETTLE seconds after the
last node, past a master-down interval, so that a move back by preemption counts. Before each rollout every
node releases any hold, so every round starts alike. Each rollout's client timeline (longest gap,
total gap, moves) goes to the results file under `rollout_<way>`."""

import os
import shutil
import time

from support.cluster import keepalived_conf
from support.session import note
# `cluster` is the module fixture of test_cluster.py, imported so that pytest finds it here.
from test_cluster import (CONF, GOOD, LINK, OLD, OPT, PRIORITIES, TOOL, cluster, image_name,  # noqa: F401
                          node, running_version, versions, wait_for, wait_running)

ORDER = ("n3", "n2", "n1")
SETTLE = 6


def set_config(cluster, handover):
    for name, n in cluster.nodes.items():
        n.container.sh(f"cat > {CONF} <<'EOF'\n{keepalived_conf(name, PRIORITIES[name], handover=handover)}EOF")
        n.container.run("systemctl", "reload", "keepalived.service")


def settle(cluster):
    for n in cluster.nodes.values():
        n.container.run(TOOL, "release")
    wait_for(lambda: cluster.holders() == ["n1"], "n1 to hold the VIP", timeout=60)


def naive_rollout(cluster, version):
    for name in ORDER:
        c = node(cluster, name)
        c.run("ln", "-sfn", f"{OPT}/{image_name(version)}", LINK)
        c.run("systemd-sysext", "refresh")
        c.run("systemctl", "restart", "keepalived.service")
        wait_running(c, version, f"{name} to run {version}")
        # As a timer-driven fleet does: the next node only once this one is back (and, with preemption,
        # has taken back what its priority gives it).
        wait_for(lambda: len(cluster.holders()) == 1, "one VIP holder", timeout=60)


def handover_rollout(cluster, version):
    for name in ORDER:
        c = node(cluster, name)
        p = c.run(TOOL, "rollback", version, check=False, timeout=300)
        assert p.returncode == 0, f"{name}: rollback {version}:\n{p.stderr}"
        wait_running(c, version, f"{name} to run {version}")


def install(cluster, version):
    """Puts the feed's image of VERSION next to the installed ones on every node, as sysupdate would."""
    for n in cluster.nodes.values():
        shutil.copy2(cluster.feed.image(version), os.path.join(n.tree, OPT.lstrip("/"), image_name(version)))


def test_rollouts(cluster, results):
    rounds = int(os.environ.get("SKA_BENCH_ROUNDS", "3"))
    install(cluster, GOOD)
    runs = {"naive": [], "handover": []}
    version = GOOD if running_version(node(cluster, "n1")) == f"v{OLD}" else OLD
    for _ in range(rounds):
        for way, rollout in (("naive", naive_rollout), ("handover", handover_rollout)):
            set_config(cluster, handover=(way == "handover"))
            settle(cluster)
            probe = cluster.probe()
            rollout(cluster, version)
            # Probing goes on past a master-down interval (3.6 s) after the last node, so that a move back
            # by preemption is counted.
            time.sleep(SETTLE)
            timeline = probe.stop()
            running = versions(cluster)
            assert set(running.values()) == {f"v{version}"}, running
            runs[way].append({"longest_gap_s": round(timeline.longest_gap, 3),
                              "total_gap_s": round(timeline.total_gap, 3), "moves": timeline.moves,
                              "lost": timeline.lost, "probes": len(timeline.probes), "to": version})
            note(f"rollout {way} to {version}: {timeline.summary()}")
            version = OLD if version == GOOD else GOOD
    results["rollouts"] = runs

