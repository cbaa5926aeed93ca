"""pytest configuration of the system tests: what holds for every test of the run.

tests/system/run starts pytest as root in a private mount namespace whose mounts it has set up;
pytest_configure refuses any other start.

Fixtures (tests/system/README.md indexes them): the support modules whose fixtures several test modules
share, and the modules of hooks, are registered below, once, as plugins. A fixture that serves one test
module is imported by that module instead (`from support.lab import vrrp_lab`), so it is visible there and
nowhere else. pytest caches a session fixture in its registration: imported into a test module although a
plugin below registers it, or imported into two test modules, it is registered twice and built twice per
run; pytest_fixture_setup refuses that."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

from support.common import Failure  # noqa: E402 (needs the path above)

# In import order: a module is registered before a later one imports it (pytest rewrites a plugin's asserts
# only when it registers the module first).
pytest_plugins = ["support.session", "support.builds", "support.fake_root", "support.roots", "support.containers",
                  "support.feed", "support.vm", "support.results"]


def pytest_collection_modifyitems(items):
    # Marked by what they use, not by hand, so a new VM test cannot end up outside `-m vm`: tests/run runs
    # the machine's tests (qemu's emulator, minutes of CPU) beside the container tests (mostly waiting on
    # timers), in a second run of this suite.
    for item in items:
        if "vm_image" in item.fixturenames:
            item.add_marker("vm")


def pytest_configure(config):
    if os.geteuid() != 0 or os.environ.get("SKA_SYSTEM_NAMESPACE") != "1":
        raise SystemExit("tests/system: start it through tests/system/run (root, private mount namespace)")


# The function of every session fixture set up so far -> the registration that set it up.
_session_fixtures = {}


def pytest_fixture_setup(fixturedef, request):
    if fixturedef.scope != "session":
        return
    first = _session_fixtures.setdefault(fixturedef.func, fixturedef)
    if first is not fixturedef:
        by = [d.baseid or "conftest.py's pytest_plugins" for d in (first, fixturedef)]
        raise Failure(f"session fixture {fixturedef.argname!r} is registered by {by[0]} and again by {by[1]}, "
                      "so it would be built once for each: import it into one test module only, or, when "
                      "several use it, add its support module to pytest_plugins in conftest.py and import it "
                      "into none")
