"""The configure flags of the non-Nix test build: the product's flags with the test build's declared overrides.

nix/keepalived.json holds the product's configureFlags (what the Nix flake builds and ships).
tests/e2e/sources.json may replace single flags for the test build only, under "testBuildFlagOverrides",
each with the reason; nothing else may differ. build-keepalived builds with these flags, and every check of
its binaries (tests/system/test_static_binary.py, tests/nix/sandbox) compares against these flags, so the override lives here
and nowhere else.

    python3 tests/e2e/configure_flags.py    prints the effective flags, one a line, and the overrides
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "nix", "keepalived.json")
SOURCES = os.path.join(HERE, "sources.json")
KEY = "testBuildFlagOverrides"


class Invalid(Exception):
    pass


def product_flags(data_path=DATA):
    return list(json.load(open(data_path))["configureFlags"])


def overrides(sources_path=SOURCES, data_path=DATA):
    """[(product flag, test flag, why)], checked against the product's flags."""
    flags = product_flags(data_path)
    declared = json.load(open(sources_path)).get(KEY, {})
    result = []
    for flag, entry in declared.items():
        where = f"{sources_path}: {KEY}[{flag!r}]"
        if flag not in flags:
            raise Invalid(f"{where} overrides a flag that {data_path} does not have: remove the stale override")
        if not isinstance(entry, dict) or set(entry) != {"use", "why"}:
            raise Invalid(f'{where} must be {{"use": "--flag", "why": "reason"}}')
        if not (isinstance(entry["use"], str) and entry["use"].startswith("--")):
            raise Invalid(f"{where}: 'use' must be a --flag, not {entry['use']!r}")
        if not (isinstance(entry["why"], str) and entry["why"].strip()):
            raise Invalid(f"{where}: 'why' must say why the test build differs from the product")
        result.append((flag, entry["use"], entry["why"]))
    return result


def effective_flags(sources_path=SOURCES, data_path=DATA):
    """The product's flags in their order, each overridden flag replaced by the test build's."""
    replace = {flag: use for flag, use, _ in overrides(sources_path, data_path)}
    return [replace.get(flag, flag) for flag in product_flags(data_path)]


def warnings(sources_path=SOURCES, data_path=DATA):
    """One line per override, for builds and checks to print."""
    return [f"WARNING: this test build differs from the product: {use} instead of {flag}. Why: {why}"
            for flag, use, why in overrides(sources_path, data_path)]


if __name__ == "__main__":
    print("\n".join(effective_flags()))
    for line in warnings():
        print(line)
