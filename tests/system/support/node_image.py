"""The Debian trixie image of support.vm made into a node that provisions itself the way Flatcar does, for
tests/vm/node-boot: Ignition runs before systemd starts, reading its config from QEMU's firmware config.
Flatcar's initramfs runs Ignition; trixie's (initramfs-tools) does not ship it, so this image's initramfs
runs Debian's real Ignition (package `ignition`, platform qemu) in the mounted root before the switch to it.
With that, node-boot hands both platforms the same Ignition config, and only how it reaches Ignition differs.

API: fixture `node_image` (session scope): a support.vm.VMImage of this image (kernel, initrd, root; the
same kernel as support.vm's).

What is added to support.vm's image (which is built first, and whose tree is copied, never changed):
- packages: ignition; policycoreutils (Debian's Ignition relabels what it wrote with setfiles, see
  support.ignition); gpg and gpgv (systemd-sysupdate's Verify=yes checks SHA256SUMS.gpg with gpg);
  ca-certificates (update-ca-certificates, which node-check runs, as on Flatcar); dmsetup (node-check
  reads the root hashes of the dm-verity devices with it)
- systemd-networkd enabled with DHCP on every ethernet link, as Flatcar's default network does
- /usr/local/share/ca-certificates/node-boot-ca.crt linked to the CA file the config writes to
  /etc/ssl/certs, which Flatcar's update-ca-certificates reads and Debian's does not
- IGNITE, run by the initramfs (local-bottom, the root mounted at ${rootmnt}) through the root's own chroot
  since the initramfs has only klibc's tools: it mounts /proc, /sys, /dev and /run in the root, brings the
  network card up with 192.0.2.15/24 (the address QEMU's DHCP gives the first guest on 192.0.2.0/24; the
  initramfs has no DHCP client of the root's), runs Ignition's fetch and files stages, and takes the
  network down again for systemd-networkd. The disks, mount and umount stages have nothing to do in this
  config (tests/system/test_ignition.py runs them on the host). support.vm's job unpacking is left out of
  this initramfs: node-boot's result disk is not a job.

Cached like support.vm's image: CACHE/vm-node/trixie-node-HASH, HASH over support.vm's image (its cache
directory's name) and this module's preparation, built in a temporary directory renamed into place, under a
lock. Its own directory, since support.vm removes what is in its cache besides its current image."""

import fcntl
import glob
import hashlib
import inspect
import os
import shlex
import shutil

import pytest

from support.common import CACHE, PREFIX, expect, run
from support.ignition import FILE_CONTEXTS, SELINUX_CONFIG
from support.vm import VMImage

PACKAGES = ("ignition", "policycoreutils", "gpg", "gpgv", "ca-certificates", "dmsetup")
NODES = os.path.join(CACHE, "vm-node")

IGNITE = r"""#!/bin/bash
# Debian's Ignition, as Flatcar's initramfs runs it: before systemd starts, the config from QEMU's firmware
# config (platform qemu). See tests/system/support/node_image.py.
set -euo pipefail
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
# Ignition's root: the root itself, through a bind mount (setfiles refuses / as its alternate root).
mkdir /run/sysroot
mount --bind / /run/sysroot
cleanup() {
    rm -rf /etc/selinux
    umount /run/sysroot /run /dev /sys /proc
}
trap cleanup EXIT
modprobe virtio_net
sleep 2
nic=$(ls /sys/class/net | grep -vx lo | head -n 1)
[ -n "$nic" ] || { echo "ska-node: no network card" >&2; exit 1; }
ip link set lo up
ip link set "$nic" up
ip addr add 192.0.2.15/24 dev "$nic"
# Debian's Ignition relabels what it wrote (setfiles): a policy that labels nothing, for this run only.
mkdir -p /etc/selinux/mcs/contexts/files
printf '%s' @SELINUX_CONFIG@ > /etc/selinux/config
printf '%s' @FILE_CONTEXTS@ > /etc/selinux/mcs/contexts/files/file_contexts
for stage in fetch files; do
    echo "ska-node: ignition --stage=$stage"
    /usr/lib/dracut/modules.d/30ignition/ignition --root=/run/sysroot --platform=qemu --stage="$stage" --log-to-stdout
done
ip addr flush dev "$nic"
ip link set "$nic" down
echo "ska-node: Ignition done"
""".replace("@SELINUX_CONFIG@", shlex.quote(SELINUX_CONFIG)).replace("@FILE_CONTEXTS@", shlex.quote(FILE_CONTEXTS))

LOCAL_BOTTOM = r"""#!/bin/sh
PREREQ=""
case "$1" in prereqs) echo "$PREREQ"; exit 0 ;; esac
. /scripts/functions
chroot "${rootmnt}" /usr/local/lib/ska-node/ignite > /dev/console 2>&1 || panic "ska-node: Ignition failed"
"""

# The file tests/vm/node-boot's config writes the feed's CA to.
CA_FILE = "keepalived-sysext-node-boot-ca.pem"
DHCP_NETWORK = "[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n"


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _key(base):
    h = hashlib.sha256()
    h.update(f"{os.path.basename(os.path.dirname(base.root))}\n{' '.join(PACKAGES)}\n{IGNITE}\n{LOCAL_BOTTOM}\n"
             f"{DHCP_NETWORK}\n{CA_FILE}".encode())
    h.update(inspect.getsource(_prepare).encode())
    return h.hexdigest()[:20]


# In a mount namespace of its own: the root's /proc and the host's resolver for apt.
_APT = """t=$1; shift
mount -t proc proc "$t/proc"
cp /etc/resolv.conf "$t/etc/resolv.conf"
chroot "$t" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$t" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
chroot "$t" apt-get clean
rm -f "$t/etc/resolv.conf"
"""


def _prepare(tree):
    run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", _APT, "sh", tree, *PACKAGES],
        timeout=1800)
    expect(os.access(os.path.join(tree, "usr/lib/dracut/modules.d/30ignition/ignition"), os.X_OK),
           f"{tree}: the ignition package installed no /usr/lib/dracut/modules.d/30ignition/ignition")
    _write(os.path.join(tree, "usr/local/lib/ska-node/ignite"), IGNITE, 0o755)
    scripts = os.path.join(tree, "etc/initramfs-tools/scripts/local-bottom")
    os.remove(os.path.join(scripts, "ska-vm-job"))
    _write(os.path.join(scripts, "ska-node-ignition"), LOCAL_BOTTOM, 0o755)
    run(["chroot", tree, "update-initramfs", "-u", "-k", "all"], timeout=900)
    _write(os.path.join(tree, "etc/systemd/network/80-ska-node-dhcp.network"), DHCP_NETWORK)
    # Flatcar's update-ca-certificates trusts the PEM files in /etc/ssl/certs, where the config puts the
    # feed's CA; Debian's reads /usr/local/share/ca-certificates/*.crt instead.
    os.makedirs(os.path.join(tree, "usr/local/share/ca-certificates"), exist_ok=True)
    os.symlink(f"/etc/ssl/certs/{CA_FILE}", os.path.join(tree, "usr/local/share/ca-certificates/node-boot-ca.crt"))
    run(["chroot", tree, "systemctl", "enable", "systemd-networkd.service"])


def build_node_image(base):
    final = os.path.join(NODES, f"trixie-node-{_key(base)}")
    os.makedirs(os.path.join(CACHE, "locks"), exist_ok=True)
    with open(os.path.join(CACHE, "locks", "vm-node.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(final):
            for stale in glob.glob(os.path.join(NODES, "*.tmp")):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = f"{final}.{PREFIX}{os.getpid()}.tmp"
            tree = os.path.join(tmp, "tree")
            os.makedirs(tmp)
            run(["cp", "-a", base.tree, tree], timeout=900)
            _prepare(tree)
            kernel_version = base.kernel_version
            shutil.copy(base.kernel, os.path.join(tmp, "vmlinuz"))
            shutil.copy(os.path.join(tree, "boot", f"initrd.img-{kernel_version}"), os.path.join(tmp, "initrd.img"))
            size_mb = int(run(["du", "-sm", tree]).stdout.split()[0]) * 3 // 2 + 512
            run(["mkfs.ext4", "-q", "-L", "root", "-d", tree, os.path.join(tmp, "root.img"), f"{size_mb}M"],
                timeout=900)
            os.rename(tmp, final)
            for old in glob.glob(os.path.join(NODES, "trixie-node-*")):
                if old != final and not old.endswith(".tmp"):
                    shutil.rmtree(old, ignore_errors=True)
    return VMImage(os.path.join(final, "vmlinuz"), os.path.join(final, "initrd.img"), os.path.join(final, "root.img"),
                   os.path.join(final, "tree"), base.systemd_version, base.kernel_version)


@pytest.fixture(scope="session")
def node_image(vm_image):
    return build_node_image(vm_image)
