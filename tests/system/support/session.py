"""What one run of the system suite owns beyond its builds: its name (ska-e2e-<pid>), its work directory,
the results file, the removal of what a crashed earlier run left behind, and the check that this run left
no network namespace behind. (The mounts systemd-sysext and network namespaces need are set by
tests/system/run, before pytest starts.)

A run killed half-way (SIGKILL, a lost terminal) leaves no mounts, since tests/system/run puts pytest in a
private mount namespace, but it can leave keepalived processes, empty /run/netns entries and work
directories. Every such name carries the creating run's pid, so the next run removes exactly the leftovers
of runs that are gone and never touches a parallel live run. A run that ends normally must leave none:
`no_namespace_left_behind` fails it otherwise.

Measurements go to the results file (SKA_E2E_RESULTS, default /var/cache/keepalived-sysext/e2e-results.json),
which bench/failover-timings reads; they and the notes tests make are also printed at the end of the run."""

import ctypes
import glob
import json
import os
import re
import shutil
import signal
import sys
import time

import pytest

from support.common import CACHE, E2E, PREFIX, expect, run

RUN_ID = f"{PREFIX}{os.getpid()}"
RESULTS = os.environ.get("SKA_E2E_RESULTS", os.path.join(CACHE, "e2e-results.json"))
WORK = os.path.join("/var/tmp", RUN_ID)

# Every tool a test of this suite calls; test_tools.py checks them all at once, so a machine missing
# several learns it in one run.
REQUIRED_TOOLS = ["ip", "unshare", "nsenter", "setpriv", "systemd-sysext", "systemd-analyze", "systemd-nspawn",
                  "readelf", "qemu-aarch64-static", "unsquashfs", "mount", "umount", "qemu-system-x86_64",
                  "mkfs.ext4", "sfdisk", "mksquashfs", "openssl", "debootstrap"]

_results = {}
_notes = []


def note(line):
    """A measurement or observation worth reading after a passing run; printed in the run's summary."""
    _notes.append(line)


@pytest.fixture(scope="session")
def results():
    """Measurements of this run, written as JSON to SKA_E2E_RESULTS when the run ends."""
    return _results


def require(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    expect(not missing, "missing tools (.ci/run's apt line lists the packages): " + ", ".join(missing))


# ----------------------------------------------------------------------------------------------------------
# Leftovers of earlier runs, and removal without crossing mounts

def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def mounts_under(path):
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].encode().decode("unicode_escape")
            if target == path or target.startswith(path + "/"):
                found.append(target)
    return found


def remove_tree(path):
    """rmtree that never crosses into a mount: the units' containers bind-mount / below the work directory,
    and an rmtree through that would empty the host. Unmounts what it finds; refuses if anything stays."""
    for target in sorted(mounts_under(path), key=len, reverse=True):
        run(["umount", "--lazy", target], check=False)
    left = mounts_under(path)
    if left:
        print(f"warning: not removing {path}: still mounted: {left}")
        return
    shutil.rmtree(path, ignore_errors=True)


def kill_from_pidfile(pidfile, marker, sig):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except (OSError, ValueError):
        return
    if marker in cmdline:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def run_pid(name):
    m = re.match(re.escape(PREFIX) + r"(\d+)", name)
    return int(m.group(1)) if m else None


def remove_leftovers():
    """Removes what a crashed earlier run left: its keepalived processes, netns names and work directories.
    Only names with our prefix whose creating process is gone are touched, so parallel runs are safe."""
    removed = []
    for base in ("/var/tmp", "/run", "/run/netns"):
        if not os.path.isdir(base):
            continue
        for name in os.listdir(base):
            pid = run_pid(name)
            if pid is None or pid_alive(pid):
                continue
            path = os.path.join(base, name)
            if base in ("/var/tmp", "/run"):
                if not os.path.isdir(path) or os.path.islink(path):
                    continue
                for pidfile in glob.glob(os.path.join(path, "*", "*.pid")):
                    kill_from_pidfile(pidfile, path, signal.SIGKILL)
                # Its mounts lived in its own mount namespace and died with it.
                remove_tree(path)
            else:
                run(["ip", "netns", "delete", name], check=False)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            removed.append(path)
    return removed


PR_SET_PDEATHSIG = 1


def die_with_parent():
    """preexec_fn for every long-lived process a test starts (keepalived, systemd-nspawn): it must not
    outlive the run, even if pytest is SIGKILLed."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# ----------------------------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="session")
def work():
    """/var/tmp/ska-e2e-<pid>: kept after a failing run for inspection (the next run removes it)."""
    os.makedirs(WORK, mode=0o755, exist_ok=True)
    os.chmod(WORK, 0o755)
    return WORK


@pytest.fixture(scope="session", autouse=True)
def no_namespace_left_behind():
    """Set up before every other session fixture, so torn down after all of them: a network namespace of
    this run still in /run/netns then is one that a fixture did not delete, or whose `ip netns delete`
    failed (its file stays on the host's /run as an empty entry that `ip netns list` reports as "Peer netns
    reference is invalid"). That fails the run, as an error of its last test."""
    yield
    left = sorted(glob.glob(f"/run/netns/{RUN_ID}-*"))
    expect(not left, "this run left network namespaces behind on the host: " + ", ".join(left)
           + "; the fixture that made each must delete it (and `ip netns delete` must be able to unlink it)")


# ----------------------------------------------------------------------------------------------------------
# Hooks

def product_differences():
    """The test binaries may differ from the product in declared features: every run records it with its
    measurements and says so before any result."""
    if "test_build_differs_from_product" not in _results:
        sys.path.insert(0, E2E)
        import configure_flags
        try:
            differs = configure_flags.warnings()
        except configure_flags.Invalid as e:  # test_static_binary's feature checks fail on it too
            differs = [f"ERROR: {e}"]
        _results["test_build_differs_from_product"] = differs
    return _results["test_build_differs_from_product"]


def pytest_sessionstart(session):
    for path in remove_leftovers():
        print(f"removed leftover of a crashed run: {path}")
    product_differences()


def pytest_report_header(config):
    return [f"run {RUN_ID}, work directory {WORK}, results {RESULTS}"] + product_differences()


def pytest_sessionfinish(session, exitstatus):
    if os.path.isdir(WORK):
        if exitstatus == 0:
            remove_tree(WORK)
        else:
            _notes.append(f"work directory kept for inspection: {WORK} (removed by the next run)")
    measured = {k: v for k, v in _results.items() if k != "test_build_differs_from_product"}
    if not measured:
        return  # nothing of what the results file holds ran (e.g. -k images): keep the last full record
    _results["run"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _results["selection"] = session.config.getoption("keyword") or "all"
    try:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS + ".tmp", "w") as f:
            json.dump(_results, f, indent=2, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)
        _notes.append(f"results written to {RESULTS}")
    except OSError as e:
        _notes.append(f"could not write {RESULTS}: {e}")


def pytest_terminal_summary(terminalreporter):
    if _notes or len(_results) > 1:
        terminalreporter.section("measurements")
        for line in _notes:
            terminalreporter.write_line(line)
        if len(_results) > 1:
            terminalreporter.write_line("results: " + json.dumps(_results, sort_keys=True))
