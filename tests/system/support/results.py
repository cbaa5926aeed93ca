"""The record of what ran on which systemd: every test parametrized over the roots (fixture `root` of
support.roots: trixie or sid among the test id's parameters) is written with its outcome, duration and the root's
exact systemd version to CACHE/system-results.json at the end of the run, and the per-root summary is
printed after pytest's own. Tests that take root_trixie or root_sid directly (test_cluster.py) are not in
it. README.md's systemd versions ("What was built and tested where") come from this file, so they only
claim what a run did."""

import json
import os
import re
import time

from support.common import CACHE
from support.roots import VERSIONS

RESULTS = os.path.join(CACHE, "system-results.json")
_reports = {}


def pytest_runtest_logreport(report):
    m = re.search(r"\[(?:.*-)?(trixie|sid)(?:-.*)?\]$", report.nodeid)
    if not m:
        return
    entry = _reports.setdefault(report.nodeid, {"suite": m.group(1), "outcome": "passed", "seconds": 0.0})
    entry["seconds"] = round(entry["seconds"] + report.duration, 2)
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
    elif report.skipped:
        entry["outcome"] = "skipped"


def _summary():
    roots = {}
    for entry in _reports.values():
        r = roots.setdefault(entry["suite"], {"systemd": VERSIONS.get(entry["suite"]), "passed": 0,
                                              "failed": 0, "error": 0, "skipped": 0, "seconds": 0.0})
        r[entry["outcome"]] += 1
        r["seconds"] = round(r["seconds"] + entry["seconds"], 1)
    return roots


def pytest_sessionfinish(session):
    if not _reports:
        return
    data = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "roots": _summary(),
            "tests": {k: dict(v, systemd=VERSIONS.get(v["suite"])) for k, v in sorted(_reports.items())}}
    os.makedirs(CACHE, exist_ok=True)
    tmp = RESULTS + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, RESULTS)


def pytest_terminal_summary(terminalreporter):
    if not _reports:
        return
    terminalreporter.write_sep("=", f"systemd versions (recorded in {RESULTS})")
    for suite, r in sorted(_summary().items()):
        terminalreporter.write_line(f"{suite}: {r['systemd']}: {r['passed']} passed, {r['failed']} failed, "
                                    f"{r['error']} errors, {r['skipped']} skipped, {r['seconds']} s")
