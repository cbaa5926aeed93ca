"""The VM harness (support.vm) against a real kernel's dm-verity, with Discoverable Disk Images made by
trixie's own `systemd-repart --make-ddi=sysext` (independent of the assembler), signed with a throwaway key.
In one boot, with the certificate in /etc/verity.d/ and systemd-sysext.service under an image policy that
demands signed verity (`--image-policy=root=signed+absent:usr=signed+absent`, the only way systemd 257 takes
a policy for sysext: a drop-in replacing ExecStart=):
the signed DDI is merged at boot through dm-verity; then, swapped in one after another and refused, a DDI
without a signature partition, one signed by a key whose certificate is not in /etc/verity.d, one whose
signature partition is all zeros, and a plain SquashFS; the signed DDI merges again after them; and a
flipped data block of the merged image fails the read with EIO."""

import hashlib
import json
import os
import shutil

import pytest

from support.common import expect, run
from support.session import note
from support.vm import VM

NAME = "vmtest"
POLICY = "root=signed+absent:usr=signed+absent"
DROP_IN = f"""[Service]
# The debug log names the reason for each refusal.
Environment=SYSTEMD_LOG_LEVEL=debug
ExecStart=
ExecStart=systemd-sysext refresh --image-policy={POLICY}
ExecReload=
ExecReload=systemd-sysext refresh --image-policy={POLICY}
"""
UNSIGNED_DEFINITIONS = {
    "10-root.conf": "[Partition]\nType=root\nFormat=erofs\nCopyFiles=/usr/\nVerity=data\nVerityMatchKey=root\n"
                    "Minimize=best\n",
    "20-root-verity.conf": "[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\nMinimize=best\n",
}
# Why systemd 257 refuses each image, in its debug log (the drop-in turns it on). At the default level the
# journal says only "Image does not match image policy." (unsigned, squashfs), the kernel's refusal
# "device-mapper: reload ioctl on ... failed: Required key not available" (other-key, which the signed DDI
# also meets before the userspace check against /etc/verity.d succeeds), and "Failed to merge hierarchies".
REFUSALS = {
    "unsigned": "Partition root discovered with policy 'verity' but 'signed+absent' was required, refusing.",
    "other-key": "Activation of signed Verity volume worked neither via the kernel nor in userspace, can't activate.",
    "zero-sig": "Failed to parse signature JSON data: No data available",
    "squashfs": "Partition root discovered with policy 'unprotected' but 'signed+absent' was required, refusing.",
}
NEGATIVE = tuple(REFUSALS)

# Runs in the guest. Sections start with "@@@ NAME" lines; each case swaps the image under the same name,
# restarts systemd-sysext.service and reports its result, whether the image's marker is visible under /usr
# and the service's journal lines since the swap.
SCRIPT = r"""
section() { echo "@@@ $1"; }
cursor() { journalctl -n0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
state() {
    echo "service=$(systemctl show -P Result systemd-sysext.service)/$(systemctl is-active systemd-sysext.service)"
    if [ -e /usr/share/vmtest/marker ]; then echo "marker=$(cat /usr/share/vmtest/marker)"; else echo marker=absent; fi
}
section boot
state
echo "dm_verity=$(test -d /sys/module/dm_verity && echo loaded || echo absent)"
echo "dm_mod=$(test -d /sys/module/dm_mod && echo loaded || echo absent)"
echo "verity_devices=$(ls /dev/mapper | grep -c verity)"
section boot-journal
journalctl -b -o cat -u systemd-sysext.service
section sysext-status
systemd-sysext status --json=short
section dissect
systemd-dissect --json=short /root/cases/signed.raw
section dissect-zero-sig
systemd-dissect --json=short /root/cases/zero-sig.raw 2>&1
for c in unsigned other-key zero-sig squashfs signed; do
    section "case $c"
    cur=$(cursor)
    cp /root/cases/$c.raw /var/lib/extensions/vmtest.raw
    systemctl restart systemd-sysext.service; echo "restart=$?"
    state
    section "journal $c"
    journalctl -o cat --after-cursor="$cur" _SYSTEMD_UNIT=systemd-sysext.service + UNIT=systemd-sysext.service
done
section flip
echo "read-before=$(sha256sum < /usr/share/vmtest/blob | cut -d' ' -f1)"
printf '\xff' | dd of=/var/lib/extensions/vmtest.raw bs=1 seek=@FLIP@ conv=notrunc status=none
sync; echo 3 > /proc/sys/vm/drop_caches
sha256sum < /usr/share/vmtest/blob > /tmp/after 2> /tmp/after.err; echo "read-after-rc=$?"
echo "read-after-error=$(cat /tmp/after.err)"
section flip-kernel
dmesg | grep -i verity
"""


def _sections(stdout):
    out, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("@@@ "):
            name = line[4:]
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _fields(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def ddis(vm_image, tmp_path_factory):
    """signed.raw (repart --make-ddi=sysext, key+cert), other-key.raw (another key), unsigned.raw (repart,
    no signature partition), zero-sig.raw (signed.raw with its signature partition zeroed), squashfs.raw
    (a plain SquashFS of the same tree), the certificate, and the offset of a byte inside the blob's data."""
    d = tmp_path_factory.mktemp("ddi")
    src = d / "src"
    (src / "usr/lib/extension-release.d").mkdir(parents=True)
    (src / "usr/share/vmtest").mkdir(parents=True)
    (src / f"usr/lib/extension-release.d/extension-release.{NAME}").write_text("ID=flatcar\nSYSEXT_LEVEL=1.0\n")
    (src / "usr/share/vmtest/marker").write_text("hello from the signed DDI\n")
    blob = os.urandom(256 << 10)
    (src / "usr/share/vmtest/blob").write_bytes(blob)
    for key in ("key", "other"):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{key}.pem"),
             "-out", str(d / f"{key}.crt"), "-days", "30", "-subj", f"/CN=ska-vm-test {key}"])
    repart = ["systemd-repart", "--copy-source=/mnt/src", "--offline=yes", "--empty=create", "--size=auto"]
    for out, key in (("signed.raw", "key"), ("other-key.raw", "other")):
        vm_image.userland(repart + ["--make-ddi=sysext", f"--private-key=/mnt/{key}.pem",
                                    f"--certificate=/mnt/{key}.crt", f"/mnt/{out}"], bind=d)
    (d / "unsigned.d").mkdir()
    for name, text in UNSIGNED_DEFINITIONS.items():
        (d / "unsigned.d" / name).write_text(text)
    vm_image.userland(repart + ["--definitions=/mnt/unsigned.d", "/mnt/unsigned.raw"], bind=d)
    dump = run(["sfdisk", "--json", str(d / "signed.raw")]).stdout
    sig = [p for p in json.loads(dump)["partitiontable"]["partitions"] if p["name"].endswith("-verity-sig")]
    expect(len(sig) == 1, f"signed.raw has no single verity-sig partition:\n{dump}")
    with open(d / "signed.raw", "rb") as f:
        f.seek(sig[0]["start"] * 512)
        root_hash = json.loads(f.read(sig[0]["size"] * 512).rstrip(b"\0"))["rootHash"]
    shutil.copy(d / "signed.raw", d / "zero-sig.raw")
    with open(d / "zero-sig.raw", "r+b") as f:
        f.seek(sig[0]["start"] * 512)
        f.write(bytes(sig[0]["size"] * 512))
    run(["mksquashfs", str(src), str(d / "squashfs.raw"), "-all-root", "-quiet", "-noappend"])
    image = (d / "signed.raw").read_bytes()
    at = image.find(blob[64 << 10:(64 << 10) + 4096])
    expect(at > 0 and image.count(blob[64 << 10:(64 << 10) + 4096]) == 1,
           "the blob's 17th block is not stored verbatim, once, in signed.raw: cannot aim the flipped byte")
    return {"dir": d, "root_hash": root_hash, "blob_sha256": hashlib.sha256(blob).hexdigest(), "flip": at + 100}


@pytest.fixture(scope="module")
def boot(vm_image, ddis, tmp_path_factory):
    d = ddis["dir"]
    files = {
        f"/var/lib/extensions/{NAME}.raw": d / "signed.raw",
        "/etc/verity.d/test.crt": d / "key.crt",
        "/etc/systemd/system/systemd-sysext.service.d/policy.conf": DROP_IN.encode(),
    }
    for case in NEGATIVE + ("signed",):
        files[f"/root/cases/{case}.raw"] = d / f"{case}.raw"
    result = VM(vm_image, tmp_path_factory.mktemp("vm")).boot(
        files=files, script=SCRIPT.replace("@FLIP@", str(ddis["flip"])), timeout=900).check()
    (d / "boot-stdout.txt").write_text(result.stdout)
    (d / "boot-journal.txt").write_text(result.journal)
    note(f"vm harness: one boot with 5 sysext cases took {result.seconds:.0f} s ({vm_image.systemd_version}, "
         f"kernel {vm_image.kernel_version})")
    return _sections(result.stdout), result


def test_signed_ddi_merged_at_boot_through_dm_verity(boot):
    s, result = boot
    state = _fields(s["boot"])
    expect(state.get("marker") == "hello from the signed DDI",
           f"the signed DDI is not merged at boot: {s['boot']}\nsysext journal:\n{s['boot-journal']}")
    expect(state.get("service") == "success/active", f"systemd-sysext.service: {s['boot']}")
    expect("Userspace PKCS#7 validation succeeded." in s["boot-journal"],
           f"the signature was not checked against /etc/verity.d:\n{s['boot-journal'][-4000:]}")
    expect(state.get("dm_verity") == "loaded" and state.get("verity_devices", "0") != "0",
           f"merged without a dm-verity device: {s['boot']}")
    status = json.loads(s["sysext-status"])
    expect(any(NAME in h.get("extensions", []) for h in status if isinstance(h, dict)),
           f"systemd-sysext status does not list {NAME}: {s['sysext-status']}")


def test_dissect_reports_signed_verity(boot, ddis):
    s, _ = boot
    info = json.loads(s["dissect"])
    parts = {m.get("designator"): m for m in info["mounts"]}
    expect(parts.get("root", {}).get("verity") == "signed",
           f"systemd-dissect does not call the root partition verity-signed:\n{s['dissect']}")
    # The Discoverable Partitions Specification derives both partition UUIDs from the root hash.
    h = ddis["root_hash"]
    got = [parts.get(p, {}).get("partition_uuid", "").replace("-", "") for p in ("root", "root-verity")]
    expect(got == [h[:32], h[32:]], f"partition UUIDs {got} are not the halves of the root hash {h}")


@pytest.mark.parametrize("case", NEGATIVE)
def test_refused_under_the_signed_policy(boot, case):
    """Each image replaces the merged signed DDI; none may be merged. The signed DDI, swapped back in
    last, merges again: the refusals come from the images, not from a broken service."""
    s, _ = boot
    state, journal = _fields(s[f"case {case}"]), s[f"journal {case}"]
    expect(state.get("marker") == "absent", f"{case}: merged under {POLICY}: {s[f'case {case}']}\n{journal}")
    expect(state.get("restart") == "1" and state.get("service") == "exit-code/failed",
           f"{case}: systemd-sysext.service did not fail: {s[f'case {case}']}")
    expect(REFUSALS[case] in journal, f"{case}: the journal lacks {REFUSALS[case]!r}:\n{journal}")
    again = _fields(s["case signed"])
    expect(again.get("marker") == "hello from the signed DDI",
           f"the signed DDI does not merge again after the refused ones: {s['case signed']}\n{s['journal signed']}")


def test_flipped_data_block_fails_the_read(boot, ddis):
    s, _ = boot
    flip = _fields(s["flip"])
    expect(flip.get("read-before") == ddis["blob_sha256"], f"the merged blob differs before the flip: {s['flip']}")
    expect(flip.get("read-after-rc") != "0" and "Input/output error" in flip.get("read-after-error", ""),
           f"reading a flipped block of a verity-protected image did not fail with EIO: {s['flip']}")
    expect("corrupted" in s["flip-kernel"], f"the kernel did not report the corrupted block:\n{s['flip-kernel']}")
