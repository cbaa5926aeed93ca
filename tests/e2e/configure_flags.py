"""The configure flags of the non-Nix test build: the product's flags with the test build's declared overrides.

nix/keepalived.json holds the product's configureFlags (what the Nix flake builds and ships).
tests/e2e/sources.json may replace single flags for the test build only, under "testBuildFlagOverrides",
each with the reason; nothing else may differ. build-keepalived builds with these flags, and every check of
its binaries (tests/system/test_static_binary.py, tests/nix/sandbox) compares against these flags, so the override lives here
and nowhere else.

A test-only keepalived version (sources.json "testVersions", never shipped) may declare more overrides in its
own "flagOverrides", for flags its configure does not know: "use" is then a replacement --flag or null (the
flag is left out), always with the reason. They apply to that version only, on top of the global ones.

    python3 tests/e2e/configure_flags.py [VERSION]   prints the effective flags, one a line, and the overrides
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "nix", "keepalived.json")
SOURCES = os.path.join(HERE, "sources.json")
KEY = "testBuildFlagOverrides"
VERSIONS_KEY = "testVersions"


class Invalid(Exception):
    pass


def product_flags(data_path=DATA):
    return list(json.load(open(data_path))["configureFlags"])


def _checked(declared, where_prefix, flags, data_path, allow_drop):
    result = []
    for flag, entry in declared.items():
        where = f"{where_prefix}[{flag!r}]"
        if flag not in flags:
            raise Invalid(f"{where} overrides a flag that {data_path} does not have: remove the stale override")
        if not isinstance(entry, dict) or set(entry) != {"use", "why"}:
            raise Invalid(f'{where} must be {{"use": "--flag", "why": "reason"}}')
        use = entry["use"]
        if not ((isinstance(use, str) and use.startswith("--")) or (allow_drop and use is None)):
            raise Invalid(f"{where}: 'use' must be a --flag{' or null' if allow_drop else ''}, not {use!r}")
        if not (isinstance(entry["why"], str) and entry["why"].strip()):
            raise Invalid(f"{where}: 'why' must say why the test build differs from the product")
        result.append((flag, use, entry["why"]))
    return result


def test_version(version, sources_path=SOURCES):
    """The sources.json entry of a test-only keepalived version (Invalid if there is none)."""
    entries = json.load(open(sources_path)).get(VERSIONS_KEY, {})
    if version not in entries:
        raise Invalid(f"{sources_path}: no {VERSIONS_KEY}[{version!r}] (test-only versions: {', '.join(entries) or 'none'})")
    return entries[version]


def overrides(sources_path=SOURCES, data_path=DATA, version=None):
    """[(product flag, test flag or None for left out, why)], checked against the product's flags. VERSION:
    a test-only version of sources.json's testVersions, whose own flagOverrides apply too; None (or the data
    file's default) for the default build."""
    flags = product_flags(data_path)
    declared = json.load(open(sources_path)).get(KEY, {})
    result = _checked(declared, f"{sources_path}: {KEY}", flags, data_path, allow_drop=False)
    if version is not None and version != json.load(open(data_path))["default"]:
        extra = test_version(version, sources_path).get("flagOverrides", {})
        where = f"{sources_path}: {VERSIONS_KEY}[{version!r}].flagOverrides"
        for flag in set(extra) & set(declared):
            raise Invalid(f"{where}[{flag!r}] is already overridden by {KEY}: one override per flag")
        result += _checked(extra, where, flags, data_path, allow_drop=True)
    return result


def effective_flags(sources_path=SOURCES, data_path=DATA, version=None):
    """The product's flags in their order, each overridden flag replaced by the test build's (or left out)."""
    replace = {flag: use for flag, use, _ in overrides(sources_path, data_path, version)}
    result = [replace.get(flag, flag) for flag in product_flags(data_path)]
    return [flag for flag in result if flag is not None]


def warnings(sources_path=SOURCES, data_path=DATA, version=None):
    """One line per override, for builds and checks to print."""
    lines = []
    tag = version is not None and version != json.load(open(data_path))["default"]
    for flag, use, why in overrides(sources_path, data_path, version):
        what = f"{use} instead of {flag}" if use is not None else f"without {flag}"
        lines.append(f"WARNING: this test build differs from the product: {what}"
                     f"{f' (keepalived {version})' if tag else ''}. Why: {why}")
    return lines


if __name__ == "__main__":
    import sys

    version = sys.argv[1] if len(sys.argv) > 1 else None
    print("\n".join(effective_flags(version=version)))
    for line in warnings(version=version):
        print(line)
