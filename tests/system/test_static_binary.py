"""The static keepalived of tests/e2e/build-keepalived, for both architectures (aarch64 under
qemu-aarch64-static): statically linked for the right machine, and `keepalived -v` reports every configure
flag of the test build (nix/keepalived.json's with the declared overrides of tests/e2e/sources.json, from
tests/e2e/configure_flags.py) and the features those flags mean. Likewise, in short, the older test-only
keepalived (sources.json's testVersions) that the update tests run next to it."""

import re
import shlex
import sys

import pytest

from support.common import E2E, expect, keepalived_version, old_keepalived_version, run
from support.keepalived import version_output
from support.session import note, require

sys.path.insert(0, E2E)
import configure_flags  # noqa: E402 (tests/e2e/configure_flags.py: shared with build-keepalived and tests/nix)

# keepalived build name -> (readelf's Machine:, whether it runs under qemu-aarch64-static)
ARCHES = {"x86_64": ("X86-64", False), "aarch64": ("AArch64", True)}


@pytest.fixture(params=sorted(ARCHES))
def arch(request):
    return request.param


@pytest.fixture
def binary(request, arch):
    return request.getfixturevalue(f"keepalived_{arch}")


@pytest.fixture
def old_binary(request, arch):
    return request.getfixturevalue(f"keepalived_{arch}_old")


def expect_static(binary, machine):
    require("readelf")
    headers = run(["readelf", "--file-header", "--program-headers", "--dynamic", binary]).stdout
    expect("INTERP" not in headers, f"{binary} has a PT_INTERP header (dynamically linked)")
    expect("(NEEDED)" not in headers, f"{binary} has DT_NEEDED entries")
    expect(re.search(r"Machine:.*" + re.escape(machine), headers), f"{binary} is not for {machine}")


def test_is_static(arch, binary):
    expect_static(binary, ARCHES[arch][0])


def test_old_version_static_and_reports_version(arch, old_binary):
    """The older keepalived: static, for the right machine, `keepalived -v` names its version (not the
    product's) and the test build's flags for that version, without those its configure does not know."""
    machine, qemu = ARCHES[arch]
    expect_static(old_binary, machine)
    if qemu:
        require("qemu-aarch64-static")
    out = version_output(old_binary, qemu)
    version = old_keepalived_version()
    expect(version != keepalived_version(), f"the test-only version {version} is the product's default")
    expect(re.search(rf"^Keepalived v{re.escape(version)} ", out, re.M), f"no 'Keepalived v{version}' line:\n{out}")
    m = re.search(r"^configure options: (.*)$", out, re.M)
    expect(m, f"no 'configure options' line:\n{out}")
    configured = shlex.split(m.group(1))
    for flag in configure_flags.effective_flags(version=version):
        expect(flag in configured, f"configure flag {flag} of the {version} test build not in: {m.group(1)}")
    for flag, use, _ in configure_flags.overrides(version=version):
        expect(flag not in configured, f"{flag} (overridden for {version}) still in: {m.group(1)}")
    note(f"{arch} keepalived {version}: {out.splitlines()[0]}")


def test_reports_test_build_flags_and_features(arch, binary, results):
    """aarch64 runs under qemu-aarch64-static."""
    qemu = ARCHES[arch][1]
    if qemu:
        require("qemu-aarch64-static")
    out = version_output(binary, qemu)
    version = keepalived_version()
    expect(f"Keepalived v{version}" in out, f"version line 'Keepalived v{version}' missing:\n{out}")
    m = re.search(r"^configure options: (.*)$", out, re.M)
    expect(m, f"no 'configure options' line:\n{out}")
    configured = shlex.split(m.group(1))
    flags = configure_flags.effective_flags()
    for flag in flags:
        expect(flag in configured, f"configure flag {flag} of the test build not in: {m.group(1)}")
    m = re.search(r"^Config options: (.*)$", out, re.M)
    expect(m, f"no 'Config options' line:\n{out}")
    system = re.search(r"^System options: (.*)$", out, re.M)
    expect(system, f"no 'System options' line:\n{out}")
    opts = set(m.group(1).split()) | set(system.group(1).split())
    # The iproute2 directories are compiled in from the flags, not probed from the build machine's `ip`.
    for flag in flags:
        for name in ("etc", "usr"):
            if flag.startswith(f"--with-iproute-{name}-dir="):
                option = f"IPROUTE_{name.upper()}_DIR={flag.split('=', 1)[1]}"
                expect(option in opts, f"{option} missing in: {m.group(1)}")
    flags = set(flags)
    # Features the product promises, each bound to the flag that asks for it.
    wanted = {"VRRP": True, "LVS": True, "LIBNL3": True, "VRRP_AUTH": True,
              "BFD": "--enable-bfd" in flags, "JSON": "--enable-json" in flags,
              "NFTABLES": "--enable-nftables" in flags, "IPTABLES": "--enable-iptables" in flags,
              "SNMP": "--enable-snmp" in flags, "DBUS": "--enable-dbus" in flags,
              "SYSTEMD_NOTIFY": "--enable-systemd" in flags}
    for opt, want in wanted.items():
        have = opt in opts or (opt == "SNMP" and any(o.startswith("SNMP") for o in opts))
        expect(have == want, f"feature {opt}: expected {'present' if want else 'absent'} in: {m.group(1)}")
    results[f"config_options_{arch}"] = m.group(1)
    note(f"{arch} Config options: {m.group(1)}")
