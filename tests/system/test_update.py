"""Applying a keepalived update on a node: the pre-activation check, the return to the version that worked,
and rollback (files/usr/bin/keepalived-sysext, keepalived-sysext-apply.service, keepalived.service's
ExecStartPre), with the real systemd-sysupdate, systemd-sysext and PID 1 of systemd 257 (Debian trixie,
Flatcar Stable's generation) and 262 (Debian sid), against a signed feed on 127.0.0.1 (support.feed).

Two real keepalived versions: 2.3.4 (the data file's default) and 2.2.7 (Debian bookworm's, the older
version tests/e2e/build-keepalived builds). The configuration NEW_ONLY_CONFIG uses a keyword 2.3.4 has and
2.2.7 does not (`vrrp_owner_ignore_adverts`, global_parser.c in 2.3.4), so 2.2.7's `--config-test` reports
"Unknown keyword": the real case of a configuration only the newer version accepts. The "bad release" BAD
is an image with a higher version number whose keepalived is 2.2.7: a release whose parser rejects the
node's configuration, reaching the node through the signed feed like any other."""

import os

import pytest

from support.builds import assembler_build
from support.cluster import NEW_ONLY_KEYWORD, keepalived_conf
from support.common import expect, keepalived_version, old_keepalived_version
from support.feed import MARKER, FeedDir
from test_sysupdate import (CONF, LINK, OPT, image_name, keepalived_running, merged_version, provision, show,
                            update, wait_for)

OLD = old_keepalived_version()
GOOD = keepalived_version()
BAD = GOOD + ".1"
APPLY_UNIT = "keepalived-sysext-apply.service"
TOOL = "/usr/bin/keepalived-sysext"
BOTH_CONFIG = keepalived_conf("node1", 100, state="MASTER")
NEW_ONLY_CONFIG = keepalived_conf("node1", 100, state="MASTER", new_only=True)


@pytest.fixture(scope="session")
def update_feed(assembler, keepalived_x86_64, keepalived_x86_64_old, keys, feed_server, tmp_path_factory):
    """The signed feed `update`: OLD (keepalived 2.2.7), GOOD (2.3.4) and BAD (a higher version holding
    2.2.7), each image with the MARKER file naming its version."""
    sub = "update"
    path = feed_server.path(sub)
    os.makedirs(path)
    markers = tmp_path_factory.mktemp("update-markers")
    for version, binary in ((OLD, keepalived_x86_64_old), (GOOD, keepalived_x86_64), (BAD, keepalived_x86_64_old)):
        (markers / version).write_text(version + "\n")
        assembler_build(assembler, "x86-64", binary, path, "--file", f"{MARKER}={markers / version}",
                        "--update-url", feed_server.url(sub), version=version)
    keys.sign(path, keys.trusted)
    return FeedDir(feed_server, sub)


def image(feed, version):
    return (image_name(version), os.path.join(feed.path, image_name(version)))


def node(root, boot, tmp_path, feed, keys, network, config, versions, current):
    """A booted node with the images of `versions` installed, the link on `current`, and keepalived running
    from it under `config`; returns (container, MainPID)."""
    tree = provision(root, tmp_path, feed, keys, config=False,
                     seed=[image(feed, v) for v in versions if v != current] + [image(feed, current)])
    dest = os.path.join(tree, CONF.lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as f:
        f.write(config)
    os.chmod(dest, 0o600)
    c = boot(tree)
    expect(merged_version(c) == current, f"{merged_version(c)} merged at boot, not {current}")
    pid = keepalived_running(c, network)
    expect(show(c, APPLY_UNIT, "Result") == "success", f"{APPLY_UNIT} at boot:\n{c.journal(APPLY_UNIT)}")
    return c, pid


def running_version(c):
    """The version of the keepalived keepalived.service runs (its own binary, which a merge does not
    replace)."""
    pid = show(c, "keepalived.service", "MainPID")
    p = c.run(f"/proc/{pid}/exe", "--version", check=False)
    return (p.stdout + p.stderr).split()[1] if p.returncode == 0 else None


def link(c):
    return c.run("readlink", "-f", LINK).stdout.strip()


def expect_refused(c, network, pid, current):
    """What a refusal leaves: the link and the merge on `current`, the same keepalived process holding the
    VIP, the apply unit failed, and the journal naming both versions and keepalived's own message."""
    expect(link(c) == f"{OPT}/{image_name(current)}",
           f"{LINK} -> {link(c)}, not back on {current}:\n{c.journal(APPLY_UNIT)}")
    expect(merged_version(c) == current, f"{merged_version(c)} merged, not {current}")
    expect(show(c, "keepalived.service", "MainPID") == pid, "keepalived was restarted")
    expect(keepalived_running(c, network) == pid, "keepalived lost")
    expect(c.run("systemctl", "is-failed", APPLY_UNIT, check=False).stdout.strip() == "failed",
           f"{APPLY_UNIT} is not failed")
    log = c.journal(APPLY_UNIT)
    for needle in (f"REFUSED keepalived v{OLD}", f"Unknown keyword '{NEW_ONLY_KEYWORD}'",
                   f"returning to keepalived v{GOOD}"):
        expect(needle in log, f"{needle!r} not in the journal of {APPLY_UNIT}:\n{log}")


def test_a_release_that_rejects_the_configuration_is_refused_at_apply(root, boot, tmp_path, keys, update_feed,
                                                                        network):
    """sysupdate installs BAD; `keepalived-sysext apply` refuses it, returns the node to GOOD within the
    same command, and keepalived never stops; after a reboot the node still runs GOOD."""
    c, pid = node(root, boot, tmp_path, update_feed, keys, network, NEW_ONLY_CONFIG, [GOOD], GOOD)
    update(c)
    expect(link(c) == f"{OPT}/{image_name(BAD)}", f"sysupdate did not install {BAD}: {LINK} -> {link(c)}")
    p = c.run(TOOL, "apply", check=False, timeout=300)
    expect(p.returncode != 0, f"keepalived-sysext apply accepted {BAD}:\n{p.stdout}{p.stderr}")
    expect_refused(c, network, pid, GOOD)
    expect(f"keepalived v{OLD}" in p.stderr, f"apply does not say what it refused:\n{p.stderr}")
    # The reboot manager's reboot: still GOOD, keepalived starts, the unit stays failed while BAD is
    # installed (monitoring keeps seeing a node held back).
    c.reboot()
    # The boot is up once PID 1 says so; keepalived.path starts keepalived (and the check before it) then.
    wait_for(lambda: show(c, APPLY_UNIT, "ActiveState") in ("inactive", "failed"), f"{APPLY_UNIT} to finish",
             timeout=60)
    expect(merged_version(c) == GOOD, f"{merged_version(c)} merged after the reboot")
    keepalived_running(c, network)
    expect(running_version(c) == f"v{GOOD}", f"keepalived {running_version(c)} runs after the reboot")
    expect(show(c, APPLY_UNIT, "Result") != "success", f"{APPLY_UNIT} succeeded with {BAD} still refused")
    # sysupdate does not bring BAD back: it is the newest installed version.
    update(c)
    expect(link(c) == f"{OPT}/{image_name(GOOD)}", f"sysupdate moved {LINK} to {link(c)} again")


def test_a_release_that_rejects_the_configuration_is_refused_at_boot(root, boot, tmp_path, keys, update_feed,
                                                                       network):
    """The reboot manager's path: sysupdate installs BAD, the node reboots into it, and the boot returns
    the node to GOOD before keepalived starts: keepalived 2.2.7 never runs."""
    c, _ = node(root, boot, tmp_path, update_feed, keys, network, NEW_ONLY_CONFIG, [GOOD], GOOD)
    update(c)
    expect(link(c) == f"{OPT}/{image_name(BAD)}", f"sysupdate did not install {BAD}")
    c.reboot()
    # The boot is up once PID 1 says so; keepalived.path starts keepalived (and the check before it) then.
    wait_for(lambda: show(c, APPLY_UNIT, "ActiveState") in ("inactive", "failed"), f"{APPLY_UNIT} to finish",
             timeout=60)
    expect(merged_version(c) == GOOD,
           f"{merged_version(c)} merged after the boot, not {GOOD}:\n{c.journal(APPLY_UNIT)}")
    pid = keepalived_running(c, network)
    expect(running_version(c) == f"v{GOOD}", f"keepalived {running_version(c)} runs")
    expect(show(c, "keepalived.service", "NRestarts") == "0", "keepalived.service restarted")
    starts = c.run("journalctl", "-b", "-o", "cat", "_COMM=keepalived", check=False).stdout
    expect(f"Keepalived v{OLD}" not in starts, f"keepalived {OLD} ran at boot:\n{starts}")
    expect_refused(c, network, pid, GOOD)


def test_a_lone_master_does_not_apply_without_a_node_to_take_over(root, boot, tmp_path, keys, update_feed,
                                                                  network):
    """A node alone in its network is MASTER with nobody to hand the VIP to: `rollback` to a version its
    configuration suits is checked, then aborted after the takeover bound, keeping the VIP and the running
    keepalived; the demotion is undone."""
    c, pid = node(root, boot, tmp_path, update_feed, keys, network, BOTH_CONFIG, [OLD, GOOD], GOOD)
    p = c.run(TOOL, "rollback", check=False, timeout=300)
    expect(p.returncode != 0, f"rollback applied without another node:\n{p.stdout}{p.stderr}")
    expect("no other node took over" in p.stderr, p.stderr)
    expect(show(c, "keepalived.service", "MainPID") == pid, "keepalived was restarted")
    expect(keepalived_running(c, network) == pid, "keepalived lost the VIP")
    expect(c.run("cat", "/var/lib/keepalived-sysext/handover").stdout.strip() == "0", "demotion not undone")


def test_rollback_to_a_version_that_rejects_the_configuration_is_refused(root, boot, tmp_path, keys,
                                                                          update_feed, network):
    """A rollback gets the same check: 2.2.7 rejects a configuration that uses a 2.3.4 keyword, so the node
    stays on 2.3.4 with the same keepalived process."""
    c, pid = node(root, boot, tmp_path, update_feed, keys, network, NEW_ONLY_CONFIG, [OLD, GOOD], GOOD)
    status_before = c.run(TOOL, "status").stdout
    p = c.run(TOOL, "rollback", check=False, timeout=300)
    expect(p.returncode != 0, f"rollback to {OLD} accepted:\n{p.stdout}{p.stderr}")
    expect_refused(c, network, pid, GOOD)
    expect("refused:  none" in status_before and f"refused:  {'v' + OLD}" in c.run(TOOL, "status").stdout,
           c.run(TOOL, "status").stdout)
