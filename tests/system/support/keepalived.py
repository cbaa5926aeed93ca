"""What the tests read from keepalived and from its shipped unit: `keepalived --version` output (natively or
under qemu-user) and the unit's CapabilityBoundingSet=, which every keepalived a test starts runs under, so
a capability the unit forgets fails the tests instead of only production."""

import os

from support.common import PAYLOAD, expect, run

UNIT = os.path.join(PAYLOAD, "usr/lib/systemd/system/keepalived.service")

CAPABILITY_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}


def version_output(path, qemu=False):
    cmd = (["qemu-aarch64-static"] if qemu else []) + [path, "--version"]
    p = run(cmd)
    return p.stdout + p.stderr  # keepalived prints its version to stderr


def unit_lines(key):
    """The values of KEY= in the shipped unit, in order."""
    with open(UNIT) as f:
        return [line.split("=", 1)[1].strip() for line in f if line.startswith(f"{key}=")]


def unit_capability_names():
    caps = [c for value in unit_lines("CapabilityBoundingSet") for c in value.split()]
    expect(caps, f"no CapabilityBoundingSet= in {UNIT}")
    unknown = [c for c in caps if c not in CAPABILITY_NUMBERS]
    expect(not unknown, f"unknown capabilities in {UNIT}: {unknown}")
    return caps


def unit_capability_mask():
    return sum(1 << CAPABILITY_NUMBERS[c] for c in unit_capability_names())


def unit_capabilities_for_setpriv():
    """CapabilityBoundingSet= of the shipped unit, as setpriv's --bounding-set wants it."""
    return "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in unit_capability_names())


def proc_status(text):
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def check_process_privileges(pid):
    """A running keepalived process holds no capability beyond the unit's bounding set (keepalived drops
    some itself, e.g. the VRRP child gives up CAP_SYS_RESOURCE) and runs with no_new_privs."""
    with open(f"/proc/{pid}/status") as f:
        status = proc_status(f.read())
    allowed = unit_capability_mask()
    for field in ("CapBnd", "CapPrm", "CapEff"):
        got = int(status[field].strip(), 16)
        expect(got & ~allowed == 0, f"process {pid}: {field} {got:#x} exceeds the unit's {allowed:#x}")
    expect(status["NoNewPrivs"].strip() == "1", f"process {pid} runs without no_new_privs")
