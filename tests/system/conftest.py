"""pytest configuration of the system tests. tests/system/run starts pytest as root in a private mount
namespace; the fixture modules under support/ are loaded here as plugins so every test module sees them."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

pytest_plugins = ["support.builds", "support.session", "support.fake_root", "support.lab",
                  "support.host_container", "support.roots", "support.containers", "support.feed",
                  "support.results", "support.ignition", "support.vm"]


def pytest_configure(config):
    if os.geteuid() != 0 or os.environ.get("SKA_SYSTEM_NAMESPACE") != "1":
        raise SystemExit("tests/system: start it through tests/system/run (root, private mount namespace)")
