"""Fake Flatcar roots for `systemd-sysext --root=ROOT`, and the x86-64 image merged into one.

The merged root is what the VRRP tests run keepalived from (ROOT/usr/bin/keepalived), so they test the
binary as the merge presents it, not the file the build left behind. It is session-scoped: merged once,
unmerged when the run ends (the overlay lives in the run's private mount namespace either way)."""

import os
import shutil

import pytest

from support.common import expect, run
from support.session import require


def fake_flatcar_root(path, os_id="flatcar", with_systemd_units=False):
    """A minimal Flatcar-shaped root: os-release with SYSEXT_LEVEL, /usr/sbin -> bin (Flatcar >= 4152),
    /bin -> usr/bin, and a marker file in /usr/bin that must stay visible after the merge. With
    with_systemd_units, systemd's own units (the host's, like Flatcar's a systemd 252+) for
    systemd-analyze verify to resolve multi-user.target and the default dependencies."""
    os.makedirs(os.path.join(path, "usr/lib"))
    os.makedirs(os.path.join(path, "usr/bin"))
    os.makedirs(os.path.join(path, "etc"))
    os.makedirs(os.path.join(path, "var/lib/extensions"))
    os.symlink("bin", os.path.join(path, "usr/sbin"))
    os.symlink("usr/bin", os.path.join(path, "bin"))
    os.symlink("usr/sbin", os.path.join(path, "sbin"))
    with open(os.path.join(path, "usr/lib/os-release"), "w") as f:
        f.write(f'NAME="Fake {os_id}"\nID={os_id}\nVERSION_ID=4230.2.0\nSYSEXT_LEVEL=1.0\n')
    os.symlink("../usr/lib/os-release", os.path.join(path, "etc/os-release"))
    with open(os.path.join(path, "usr/bin/flatcar-marker"), "w") as f:
        f.write("base layer\n")
    # Flatcar ships util-linux's kill; the unit's ExecReload names /bin/kill and systemd-analyze checks it.
    shutil.copy2(shutil.which("kill") or "/usr/bin/kill", os.path.join(path, "usr/bin/kill"))
    # Likewise systemctl (Flatcar's /usr/bin/systemctl), which keepalived-sysext-merged.service names.
    shutil.copy2(shutil.which("systemctl") or "/usr/bin/systemctl", os.path.join(path, "usr/bin/systemctl"))
    if with_systemd_units:
        shutil.copytree("/usr/lib/systemd/system", os.path.join(path, "usr/lib/systemd/system"), symlinks=True,
                        ignore=lambda d, names: [n for n in names if n.startswith("keepalived")])
    return path


def sysext(root, verb, check=True, debug=False):
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="debug") if debug else None
    return run(["systemd-sysext", f"--root={root}", verb], check=check, env=env)


@pytest.fixture(scope="session")
def fake_roots(work):
    """fake_roots(name, **kw) -> a fresh fake Flatcar root under the run's work directory."""

    def make(name, **kw):
        return fake_flatcar_root(os.path.join(work, name), **kw)

    return make


@pytest.fixture(scope="session")
def merged_root(fake_roots, image_x86_64):
    """A fake Flatcar root (with systemd's units) into which systemd-sysext merged the x86-64 image."""
    require("systemd-sysext", "unsquashfs")
    root = fake_roots("root", with_systemd_units=True)
    shutil.copy2(image_x86_64, os.path.join(root, "var/lib/extensions/keepalived.raw"))
    sysext(root, "merge")
    expect(os.path.isfile(os.path.join(root, "usr/bin/keepalived")),
           f"systemd-sysext merge exited 0 but {root}/usr/bin/keepalived is missing")
    yield root
    sysext(root, "unmerge", check=False)
    if os.path.exists(os.path.join(root, "usr/bin/keepalived")):
        print(f"warning: {root} still merged after unmerge")


@pytest.fixture(scope="session")
def merged_keepalived(merged_root):
    """ROOT/usr/bin/keepalived of the merged root: the binary every VRRP test runs."""
    return os.path.join(merged_root, "usr/bin/keepalived")
