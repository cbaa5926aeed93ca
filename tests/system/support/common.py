"""Paths, command running and small checks every system test module uses.

Failures raise `Failure` (an AssertionError) whose message names the command and carries its output, so
pytest's report says what to look at without rerunning anything."""

import hashlib
import json
import os
import shlex
import subprocess

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "nix", "keepalived.json")
PAYLOAD = os.path.join(REPO, "files")
E2E = os.path.join(REPO, "tests", "e2e")
CACHE = "/var/cache/keepalived-sysext"
# Every name a run creates (work directories, network namespaces) starts with this and the run's pid,
# so a later run can tell a crashed run's leftovers from a live parallel run's.
PREFIX = "ska-e2e-"


class Failure(AssertionError):
    pass


def run(cmd, check=True, timeout=600, **kw):
    """Runs a command, returns CompletedProcess with text output; raises Failure naming the command."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError as e:
        raise Failure(f"{cmd[0]}: not found ({e})")
    except subprocess.TimeoutExpired:
        raise Failure(f"timed out after {timeout} s: {shlex.join(cmd)}")
    if check and p.returncode != 0:
        raise Failure(f"exit {p.returncode}: {shlex.join(cmd)}\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def keepalived_version():
    """The keepalived version the images carry: the data file's default."""
    with open(DATA) as f:
        return json.load(f)["default"]


def old_keepalived_version():
    """The older, test-only keepalived of tests/e2e/sources.json's testVersions (never shipped): the oldest
    one listed, for the tests that need two real versions."""
    with open(os.path.join(E2E, "sources.json")) as f:
        versions = list(json.load(f).get("testVersions", {}))
    expect(versions, "tests/e2e/sources.json lists no testVersions")
    return min(versions, key=lambda v: tuple(int(part) for part in v.split(".")))
