"""Debian roots that stand in for Flatcar's systemd generations: trixie (systemd 257, Flatcar Stable's) and
sid (the newest systemd Debian has, ahead of Flatcar Alpha). Flatcar itself cannot be booted here, but what
the image meets on a node is systemd: sysext, sysupdate, PID 1. These roots carry the real programs of those
generations; /usr/lib/os-release is changed so that sysext takes them for Flatcar (ID=flatcar,
SYSEXT_LEVEL=1.0), and systemd-sysext.service is enabled, as on Flatcar.

API (stable; tests/system/test_*.py and other fixture modules use it):

- fixture `root` (session scope, parametrized over SUITES, test ids "trixie" and "sid"): a `Root`.
  Fixtures `root_trixie` and `root_sid` give one suite each.
- `Root.suite`, `Root.pristine` (the cached directory: never write to it), `Root.systemd_version` (the first
  line of `systemctl --version` inside, e.g. "systemd 257 (257.13-1~deb13u1)"), `Root.systemd_major` (int).
- `Root.copy(dest)`: a private copy of the root at dest (cp -a) for one test to boot and change; returns dest.

Each root is built once with `debootstrap --variant=minbase` from the mirror the host's apt uses and kept
under CACHE/roots/SUITE-HASH, HASH covering the suite, the package list and the preparation code, so a
change to any of them builds a new root. A build goes to a temporary directory renamed into place when
complete, under a lock, so parallel runs neither see a half-built root nor build it twice.

Packages: `systemd-container` ships /usr/lib/systemd/systemd-sysupdate and systemd-pull in both suites
(there is no separate systemd-sysupdate package); sid's sysupdate loads libcurl at run time ("Failed to
allocate puller: Operation not supported" without libcurl4t64); gpg verifies SHA256SUMS.gpg (Verify=yes);
dbus gives the guest a system bus for systemctl and sysext's manager reload; procps has /bin/kill, which
keepalived.service's ExecReload= runs (Flatcar has it; Debian's minbase does not)."""

import fcntl
import glob
import hashlib
import inspect
import os
import re
import shutil
from dataclasses import dataclass

import pytest

from support.common import CACHE, PREFIX, expect, run

SUITES = ("trixie", "sid")
PACKAGES = ("systemd", "systemd-container", "dbus", "gpg", "gpgv", "libcurl4t64", "util-linux", "iproute2",
            "procps")
ROOTS = os.path.join(CACHE, "roots")
# suite -> systemd version of the roots this run used (support.results records it with each test).
VERSIONS = {}
# sysext compares ID (and SYSEXT_LEVEL, when the image has one) with the host's os-release; the images say
# ID=flatcar, SYSEXT_LEVEL=1.0 (`build --os flatcar`).
OS_RELEASE = """NAME="Debian {suite} as Flatcar (system tests)"
ID=flatcar
ID_LIKE=debian
PRETTY_NAME="Debian {suite} with ID=flatcar for systemd-sysext"
VERSION_ID={version_id}
SYSEXT_LEVEL=1.0
"""


def mirror():
    """The Debian archive the host's apt uses (deb822 URIs: or one-line deb entries)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            text = f.read()
        for block in text.split("\n\n"):
            if re.search(r"^Types:.*\bdeb\b", block, re.M):
                m = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", block, re.M)
                if m:
                    return m.group(1)
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text, re.M)
        if m:
            return m.group(1)
    raise AssertionError("no Debian archive in /etc/apt/sources.list*: add one (http://deb.debian.org/debian)")


@dataclass(frozen=True)
class Root:
    suite: str
    pristine: str
    systemd_version: str

    @property
    def systemd_major(self):
        return int(self.systemd_version.split()[1])

    def copy(self, dest):
        dest = str(dest)
        run(["cp", "-a", "--reflink=auto", self.pristine, dest], timeout=600)
        return dest


def _key(suite):
    """The cache key: the suite, the package list and the code that makes the root (not this module's
    docs or fixtures, whose edits need no new root)."""
    h = hashlib.sha256()
    h.update(f"{suite}\n{' '.join(PACKAGES)}\n{OS_RELEASE}".encode())
    for code in (_prepare, build_root):
        h.update(inspect.getsource(code).encode())
    return h.hexdigest()[:20]


def _prepare(tree, suite):
    """Everything after debootstrap: os-release, and nothing a booted test does not need."""
    with open(os.path.join(tree, "usr/lib/os-release")) as f:
        old = f.read()
    m = re.search(r'^VERSION_ID="?([^"\n]*)"?', old, re.M)
    with open(os.path.join(tree, "usr/lib/os-release"), "w") as f:
        f.write(OS_RELEASE.format(suite=suite, version_id=m.group(1) if m else suite))
    etc_os = os.path.join(tree, "etc/os-release")
    if not os.path.islink(etc_os):
        os.unlink(etc_os)
        os.symlink("../usr/lib/os-release", etc_os)
    with open(os.path.join(tree, "etc/hostname"), "w") as f:
        f.write("node\n")
    # nspawn gives the guest a fresh machine id when this is empty.
    open(os.path.join(tree, "etc/machine-id"), "w").close()
    for sub in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "var/cache/apt/archives"):
        path = os.path.join(tree, sub)
        if os.path.isdir(path):
            for entry in os.listdir(path):
                p = os.path.join(path, entry)
                if entry == "partial":
                    continue
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                elif entry not in ("lock", "partial"):
                    os.unlink(p)
    shutil.rmtree(os.path.join(tree, "var/lib/apt/lists"), ignore_errors=True)
    os.makedirs(os.path.join(tree, "var/lib/apt/lists/partial"))
    # Flatcar enables systemd-sysext.service (merging /etc/extensions at boot); Debian does not.
    run(["chroot", tree, "systemctl", "enable", "systemd-sysext.service"])
    # Units a container cannot or need not run: they only slow the boot down or leave it "degraded".
    for unit in ("systemd-networkd-wait-online.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer", "systemd-tmpfiles-clean.timer"):
        link = os.path.join(tree, "etc/systemd/system", unit)
        if not os.path.lexists(link):
            os.symlink("/dev/null", link)


def build_root(suite):
    """Returns the Root for suite, building and caching it first when needed."""
    expect(suite in SUITES, f"unknown suite {suite!r}: one of {SUITES}")
    final = os.path.join(ROOTS, f"{suite}-{_key(suite)}")
    os.makedirs(os.path.join(CACHE, "locks"), exist_ok=True)
    with open(os.path.join(CACHE, "locks", f"root-{suite}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(final):
            # Under the lock no other build of this suite runs: a temporary directory is a crashed build's.
            for stale in glob.glob(os.path.join(ROOTS, f"{suite}-*.tmp")):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = f"{final}.{PREFIX}{os.getpid()}.tmp"
            tree = os.path.join(tmp, "tree")
            os.makedirs(tmp)
            run(["debootstrap", "--variant=minbase", "--components=main", f"--include={','.join(PACKAGES)}",
                 suite, tree, mirror()], timeout=1800)
            _prepare(tree, suite)
            version = run(["chroot", tree, "systemctl", "--version"]).stdout.splitlines()[0].strip()
            with open(os.path.join(tmp, "systemd-version"), "w") as f:
                f.write(version + "\n")
            os.rename(tmp, final)
            # Older roots of this suite (other package lists or preparation code) are superseded.
            for old in glob.glob(os.path.join(ROOTS, f"{suite}-*")):
                if old != final and not old.endswith(".tmp"):
                    shutil.rmtree(old, ignore_errors=True)
    with open(os.path.join(final, "systemd-version")) as f:
        version = f.read().strip()
    sysupdate = os.path.join(final, "tree/usr/lib/systemd/systemd-sysupdate")
    expect(os.access(sysupdate, os.X_OK), f"{suite}: no {sysupdate}")
    VERSIONS[suite] = version
    return Root(suite, os.path.join(final, "tree"), version)


@pytest.fixture(scope="session")
def root_trixie():
    return build_root("trixie")


@pytest.fixture(scope="session")
def root_sid():
    return build_root("sid")


@pytest.fixture(scope="session", params=SUITES)
def root(request):
    return request.getfixturevalue(f"root_{request.param}")
