"""The sysupdate feed as a Flatcar node uses it, with the real systemd-sysupdate, systemd-sysext and PID 1 of
systemd 257 (Debian trixie, Flatcar Stable's generation) and the newest systemd (Debian sid): every test runs
on both roots (support.roots), booted as containers (support.containers), against a signed feed in the
release layout served on 127.0.0.1 (support.feed).

The node is set up as the README's sysupdate section says: the transfer file `build --update-url` writes,
installed as /etc/sysupdate.keepalived.d/keepalived.conf, the feed's public key as
/etc/systemd/import-pubring.gpg, images under /opt/extensions/keepalived and /etc/extensions/keepalived.raw
pointing at the current one."""

import os
import shutil
import time

import pytest

from support.common import Failure, expect, keepalived_version, sha256
from support.feed import MARKER, TRANSFER_FILE, copy_feed, newer_version

SYSUPDATE = "/usr/lib/systemd/systemd-sysupdate"
TRANSFER = f"/etc/sysupdate.keepalived.d/{TRANSFER_FILE}"
PUBRING = "/etc/systemd/import-pubring.gpg"
OPT = "/opt/extensions/keepalived"
LINK = "/etc/extensions/keepalived.raw"
CONF = "/etc/keepalived/keepalived.conf"
VIP, VIP2 = "192.0.2.100", "192.0.2.101"
V1, V2 = keepalived_version(), newer_version()
CONFIG = """global_defs {
    router_id node1
}
vrrp_instance VI_1 {
    state MASTER
    interface ska0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        %s
    }
}
"""


def image_name(version, arch="x86-64"):
    return f"keepalived-v{version}-{arch}.raw"


def put(tree, path, data, mode=0o644):
    dest = os.path.join(tree, path.lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(dest, mode)


def provision(root, tmp_path, feed, keys, config=True, seed=()):
    """A private copy of root set up as a node fed by feed; seed: (file name in OPT, source path) pairs,
    the last of which /etc/extensions/keepalived.raw points at, as a sysupdate install leaves them."""
    tree = root.copy(tmp_path / "root")
    # systemd 257's sysupdate creates the target directory but not the symlink's ("Failed to update
    # current symlink '/etc/extensions/keepalived.raw' ...: No such file or directory"; 262 creates it).
    os.makedirs(os.path.join(tree, "etc/extensions"), exist_ok=True)
    put(tree, TRANSFER, feed.transfer)
    put(tree, PUBRING, keys.pubring(keys.trusted))
    if config:
        put(tree, CONF, CONFIG % f"{VIP}/24", 0o600)
    for name, src in seed:
        os.makedirs(os.path.join(tree, OPT.lstrip("/")), exist_ok=True)
        shutil.copy2(src, os.path.join(tree, OPT.lstrip("/"), name))
    if seed:
        os.symlink(f"{OPT}/{seed[-1][0]}", os.path.join(tree, LINK.lstrip("/")))
    return tree


def wait_for(check, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.25)


def show(c, unit, prop):
    return c.run("systemctl", "show", "-P", prop, unit).stdout.strip()


def vips(network):
    return network.run(["ip", "-o", "-4", "addr", "show", "dev", "ska0"]).stdout


def merged_version(c):
    p = c.run("cat", "/" + MARKER, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def update(c, check=True):
    return c.run(SYSUPDATE, "-C", "keepalived", "update", check=check, timeout=300)


def node_state(c):
    """What a refused update must leave as it was (files starting with a dot are not instances: neither
    sysupdate nor sysext takes them for an image; see partial_downloads)."""
    return {
        "files": c.sh(f"cd {OPT} && ls && sha256sum -- *").stdout,
        "link": c.run("readlink", LINK).stdout.strip(),
        "merged": merged_version(c),
        "keepalived": (show(c, "keepalived.service", "ActiveState"), show(c, "keepalived.service", "MainPID")),
    }


def keepalived_running(c, network, vip=VIP):
    try:
        wait_for(lambda: show(c, "keepalived.service", "ActiveState") == "active", "keepalived.service active")
        wait_for(lambda: f"{vip}/24" in vips(network), f"keepalived to add {vip} to ska0")
    except Failure as e:
        raise Failure(f"{e}\n{c.journal('keepalived.service')}\n{vips(network)}")
    return show(c, "keepalived.service", "MainPID")


@pytest.fixture(autouse=True)
def no_vips(network):
    """A VIP left by an earlier test's keepalived would make the VIP checks pass without this one's."""
    for vip in (VIP, VIP2):
        network.run(["ip", "addr", "del", f"{vip}/24", "dev", "ska0"], check=False)
    expect(VIP not in vips(network), "cannot remove an old VIP from ska0")


@pytest.fixture(scope="session")
def feed_v1(make_feed):
    return make_feed("v1", [V1])


@pytest.fixture(scope="session")
def feed_v12(make_feed):
    return make_feed("v12", [V1, V2])


@pytest.fixture(scope="session")
def feed_arm64(make_feed):
    return make_feed("arm64-only", [V1], arches=("arm64",))


def test_first_install(root, boot, tmp_path, keys, feed_v1, feed_server, network):
    tree = provision(root, tmp_path, feed_v1, keys, config=False)
    c = boot(tree)
    expect(show(c, "keepalived.path", "LoadState") == "not-found", "keepalived.path known before the install")
    p = update(c)
    # systemd 257 and later read a *.conf transfer file only when no *.transfer exists, and say so.
    if root.systemd_major >= 257:
        expect("should have the '.transfer' extension" in p.stderr, f"no .conf warning from {root.suite}")
    image = f"{OPT}/{image_name(V1)}"
    expect(c.run("readlink", "-f", LINK).stdout.strip() == image, f"{LINK} does not point at {image}")
    expect(c.run("sha256sum", image).stdout.split()[0] == sha256(os.path.join(feed_v1.path, image_name(V1))),
           "the installed image differs from the feed's")
    c.run("systemd-sysext", "refresh")
    expect(merged_version(c) == V1, "the image is not merged after systemd-sysext refresh")
    # Nobody runs daemon-reload: EXTENSION_RELOAD_MANAGER=1 makes systemd-sysext reload PID 1, and the
    # multi-user.target drop-in (Upholds=) then starts the path unit.
    wait_for(lambda: show(c, "keepalived.path", "ActiveState") == "active", "keepalived.path active")
    # Without a configuration nothing is started, so nothing can restart in a loop.
    time.sleep(5)
    expect(show(c, "keepalived.service", "ActiveState") == "inactive", "keepalived started without a config")
    expect(show(c, "keepalived.service", "NRestarts") == "0", "keepalived.service restarted")
    expect(show(c, "keepalived.service", "ExecMainStartTimestampMonotonic") == "0",
           "keepalived.service was started without a config")
    expect(show(c, "keepalived.path", "SubState") == "waiting", "keepalived.path is not waiting for the config")
    # The configuration appears: the path unit starts the real keepalived, which takes the VIP.
    c.sh(f"mkdir -p /etc/keepalived && umask 077 && cat > {CONF}.tmp <<'EOF'\n{CONFIG % (VIP + '/24')}EOF\n"
         f"mv {CONF}.tmp {CONF}")
    pid = keepalived_running(c, network)
    expect("Keepalived v" in c.run("keepalived", "--version").stderr, "keepalived --version")
    # systemctl reload: the new configuration (a second VIP) takes effect in the same process.
    c.sh(f"cat > {CONF} <<'EOF'\n{CONFIG % (VIP + '/24' + chr(10) + '        ' + VIP2 + '/24')}EOF")
    p = c.run("systemctl", "reload", "keepalived.service", check=False)
    expect(p.returncode == 0, f"systemctl reload keepalived failed:\n{p.stderr}{c.journal('keepalived.service')}")
    wait_for(lambda: f"{VIP2}/24" in vips(network), "the reloaded configuration's second VIP")
    expect(show(c, "keepalived.service", "MainPID") == pid, "reload restarted keepalived")
    expect(show(c, "keepalived.service", "NRestarts") == "0", "keepalived.service restarted")


def test_transfer_file_named_transfer(root, boot, tmp_path, keys, feed_v1):
    """systemd 257 and later also read the same file as keepalived.transfer, without the warning."""
    tree = provision(root, tmp_path, feed_v1, keys, config=False)
    os.rename(os.path.join(tree, TRANSFER.lstrip("/")),
              os.path.join(tree, TRANSFER.lstrip("/")).replace(".conf", ".transfer"))
    c = boot(tree)
    p = update(c)
    expect("'.transfer' extension" not in p.stderr, "warning about the .transfer extension")
    expect(c.run("readlink", "-f", LINK).stdout.strip() == f"{OPT}/{image_name(V1)}", "not installed")


def test_update(root, boot, tmp_path, keys, feed_v1, feed_v12, network):
    v1 = os.path.join(feed_v1.path, image_name(V1))
    # Three instances already (InstancesMax=3): two older versions and the current one.
    seed = [(image_name("0.1"), v1), (image_name("0.2"), v1), (image_name(V1), v1)]
    tree = provision(root, tmp_path, feed_v12, keys, seed=seed)
    c = boot(tree)
    expect(merged_version(c) == V1, "the seeded image is not merged at boot")
    keepalived_running(c, network)
    listing = c.run(SYSUPDATE, "-C", "keepalived", "list").stdout
    expect(V1 in listing and V2 in listing, f"list does not show {V1} and {V2}:\n{listing}")
    update(c)
    files = sorted(c.sh(f"ls -A {OPT}").stdout.split())
    expect(files == sorted([image_name("0.2"), image_name(V1), image_name(V2)]),
           f"after the update {OPT} holds {files}: expected the newest three (InstancesMax=3)")
    expect(c.run("readlink", "-f", LINK).stdout.strip() == f"{OPT}/{image_name(V2)}", "the link did not move")
    listing = c.run(SYSUPDATE, "-C", "keepalived", "list").stdout
    expect(V1 in listing and V2 in listing, f"list does not show {V1} and {V2}:\n{listing}")
    # Applying it at once: restarting systemd-sysext merges the new image, but the running keepalived keeps
    # the old binary (systemd restarts nothing); it takes a restart of keepalived as well.
    pid = show(c, "keepalived.service", "MainPID")
    c.run("systemctl", "restart", "systemd-sysext")
    expect(merged_version(c) == V2, f"after systemctl restart systemd-sysext {merged_version(c)} is merged")
    expect(show(c, "keepalived.service", "MainPID") == pid, "restarting systemd-sysext restarted keepalived")
    c.run("systemctl", "try-restart", "keepalived.service")
    expect(keepalived_running(c, network) != pid, "keepalived did not restart")
    # Applying it as a reboot manager does: the new version is merged at boot.
    c.reboot()
    expect(merged_version(c) == V2, f"after the reboot the merged version is {merged_version(c)}, not {V2}")
    keepalived_running(c, network)


TRUST_CASES = ["unsigned", "other-key", "altered-sums-line", "image-altered-after-signing"]


@pytest.mark.parametrize("case", TRUST_CASES)
def test_trust(case, root, boot, tmp_path, keys, feed_v1, feed_v12, feed_server, network):
    sub = f"trust-{case}-{root.suite}"
    feed = copy_feed(feed_v12, feed_server, sub)
    sums = os.path.join(feed.path, "SHA256SUMS")
    if case == "unsigned":
        os.unlink(sums + ".gpg")
    elif case == "other-key":
        keys.sign(feed.path, keys.other)
    elif case in ("altered-sums-line", "image-altered-after-signing"):
        # A changed image: one bit of its last byte.
        image = os.path.join(feed.path, image_name(V2))
        with open(image, "r+b") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 1]))
        if case == "altered-sums-line":
            # ... and its SHA256SUMS line changed to match it, as whoever swapped the image would; only the
            # signature (made over the old line) can tell.
            with open(sums) as f:
                lines = f.read().splitlines(keepends=True)
            i = next(n for n, line in enumerate(lines) if line.rstrip().endswith(image_name(V2)))
            lines[i] = sha256(image) + lines[i][64:]
            with open(sums, "w") as f:
                f.writelines(lines)
    v1 = os.path.join(feed_v1.path, image_name(V1))
    tree = provision(root, tmp_path, feed, keys, seed=[(image_name(V1), v1)])
    c = boot(tree)
    keepalived_running(c, network)
    before = node_state(c)
    expect(before["merged"] == V1, "the seeded image is not merged")
    feed_server.assert_up(sub)
    p = update(c, check=False)
    after = node_state(c)
    expect(p.returncode != 0, f"{case}: sysupdate accepted the feed:\n{p.stdout}{p.stderr}")
    expect(after == before, f"{case}: the refused update changed the node:\n{before}\n{after}")
    # The newest sysupdate keeps the bytes of a download that failed its checksum as a hidden partial file
    # (systemd 257 removes it); the partial file is no instance and nothing links to it.
    hidden = set(c.sh(f"cd {OPT} && ls -A | grep '^[.]' || true").stdout.split())
    allowed = {f".sysupdate.partial.{image_name(V2)}"} if case == "image-altered-after-signing" else set()
    expect(hidden <= allowed, f"{case}: left {hidden} in {OPT}")
    c.run("systemd-sysext", "refresh")
    expect(merged_version(c) == V1, f"{case}: after a refresh the merged version is {merged_version(c)}")


# The keyring files each systemd reads for Verify=yes, as measured by test_keyring: name -> trusted or not.
# 257 reads /etc/systemd/import-pubring.gpg if it exists, else /usr/lib/systemd/import-pubring.gpg (the key
# in /etc replaces the vendor keyring). 262 prefers /etc/systemd/import-pubring.pgp over .gpg and also
# trusts the vendor keyring /usr/lib/systemd/import-pubring.pgp next to either (a key in /etc adds to the
# vendor keyring rather than replacing it); it no longer reads /usr/lib/systemd/import-pubring.gpg.
KEYRING_CASES = {
    # case: (keyring files holding the other key, files holding the feed's key), expected per suite
    "vendor-gpg": (["/usr/lib/systemd/import-pubring.gpg"], [PUBRING], {"trixie": False, "sid": False}),
    "vendor-pgp": (["/usr/lib/systemd/import-pubring.pgp"], [PUBRING], {"trixie": False, "sid": True}),
    "etc-gpg-beside-etc-pgp": (["/etc/systemd/import-pubring.gpg"], ["/etc/systemd/import-pubring.pgp"],
                               {"trixie": True, "sid": False}),
}


@pytest.mark.parametrize("case", KEYRING_CASES)
def test_keyring(case, root, boot, tmp_path, keys, feed_v12, feed_server):
    """Which keyring files sysupdate trusts: a feed signed by a key that only file X holds is accepted
    exactly when that systemd reads X besides (or instead of) the node's key in /etc."""
    other_files, trusted_files, expected = KEYRING_CASES[case]
    sub = f"keyring-{case}-{root.suite}"
    feed = copy_feed(feed_v12, feed_server, sub)
    keys.sign(feed.path, keys.other)
    tree = provision(root, tmp_path, feed, keys, config=False)
    for name in ("/usr/lib/systemd/import-pubring.gpg", "/usr/lib/systemd/import-pubring.pgp", PUBRING):
        if os.path.exists(os.path.join(tree, name.lstrip("/"))):
            os.unlink(os.path.join(tree, name.lstrip("/")))
    for name in other_files:
        put(tree, name, keys.pubring(keys.other))
    for name in trusted_files:
        put(tree, name, keys.pubring(keys.trusted))
    c = boot(tree)
    feed_server.assert_up(sub)
    p = update(c, check=False)
    accepted = p.returncode == 0
    expect(accepted == expected[root.suite], f"{case} on {root.systemd_version}: the feed signed by a key only "
           f"in {other_files} was {'accepted' if accepted else 'refused'}:\n{p.stderr[-2000:]}")


def test_architecture(root, boot, tmp_path, keys, feed_arm64, feed_server):
    feed = feed_arm64
    with open(os.path.join(feed.path, "SHA256SUMS")) as f:
        expect(image_name(V1, "arm64") in f.read(), "the arm64 feed lists no arm64 image")
    tree = provision(root, tmp_path, feed, keys, config=False)
    c = boot(tree)
    expect(c.run("uname", "-m").stdout.strip() == "x86_64", "the node is not x86-64")
    feed_server.assert_up("arm64-only")
    listing = c.run(SYSUPDATE, "-C", "keepalived", "list", check=False)
    expect(V1 not in listing.stdout, f"list offers {V1} to an x86-64 node:\n{listing.stdout}")
    update(c, check=False)
    expect(c.run("ls", "-A", OPT, check=False).stdout.strip() == "", f"something was installed in {OPT}")
    expect(c.run("test", "-e", LINK, check=False).returncode != 0, f"{LINK} exists")


def test_boot(root, boot, tmp_path, keys, feed_v1, network):
    """An image provisioned as Butane/Ignition does (a file in /opt/extensions/keepalived, the link in
    /etc/extensions, the configuration) is merged at boot and keepalived comes up without any command."""
    v1 = os.path.join(feed_v1.path, image_name(V1))
    tree = provision(root, tmp_path, feed_v1, keys, seed=[(image_name(V1), v1)])
    c = boot(tree)
    expect(show(c, "systemd-sysext.service", "ActiveState") == "active", "systemd-sysext.service not active")
    expect(merged_version(c) == V1, "the image is not merged at boot")
    expect(show(c, "keepalived.path", "ActiveState") == "active", "keepalived.path not active after boot")
    keepalived_running(c, network)


def usr_listing(c):
    return c.sh("find /usr -xdev -printf '%p %y %m %U %G %s %l\\n' | sort; "
                "find /usr -xdev -type f -print0 | sort -z | xargs -0 sha256sum", timeout=300).stdout


def test_unmerge(root, boot, tmp_path, keys, feed_v1):
    tree = provision(root, tmp_path, feed_v1, keys, config=False)
    c = boot(tree)
    before = usr_listing(c)
    update(c)
    c.run("systemd-sysext", "refresh")
    expect(merged_version(c) == V1, "not merged")
    expect(usr_listing(c) != before, "merging the image did not change /usr")
    c.run("systemd-sysext", "unmerge")
    after = usr_listing(c)
    expect(after == before, "/usr after unmerge differs from /usr before the merge")
