"""Signed DDIs (`build --format ddi` + `sign`) on a real kernel with dm-verity: Debian trixie's 6.12 and
systemd 257, the generation Flatcar Stable runs, booted in the VM of support.vm.

One boot: the node is set up with the files the product's Butane config installs (the signing certificate
in /etc/verity.d/ and the drop-in that runs systemd-sysext.service under an image policy demanding signed
verity), with the signed keepalived DDI in /etc/extensions. At boot it is merged through dm-verity, the
signature checked in userspace against /etc/verity.d, and keepalived.path is active. Then, swapped in one
after another under the same name, an unsigned DDI, a DDI signed by another key, a DDI whose signature
partition is zeroed and the plain SquashFS image are each refused by systemd-sysext.service; the unsigned DDI merges when the policy is left out (so it
is the policy that refuses it); the signed DDI merges again; and a signed DDI with one flipped byte in its
root partition merges (its root hash is still the signed one) but reading keepalived fails with EIO.

Cross-readers: trixie's systemd-dissect, in the same boot, lists the root, root-verity and root-verity-sig
partitions of the assembler's DDI with their types and calls the root partition signed; and the layout
matches what trixie's `systemd-repart --make-ddi=sysext` writes for the same tree with the same key, in
every field that is not derived from the content."""

import base64
import hashlib
import json
import os
import shutil
import urllib.parse

import pytest

from support.builds import assembler_build
from support.common import expect, run
from support.session import note
from support.vm import VM

POLICY = "root=signed+absent:usr=signed+absent"
# Why systemd 257 refuses each image, as its debug log says it (the drop-in below turns debug on).
REFUSALS = {
    "unsigned": "Partition root discovered with policy 'verity' but 'signed+absent' was required, refusing.",
    "other-key": "Activation of signed Verity volume worked neither via the kernel nor in userspace, "
                 "can't activate.",
    "squashfs": "Partition root discovered with policy 'unprotected' but 'signed+absent' was required, "
                "refusing.",
    "zero-sig": "Failed to parse signature JSON data: No data available",
}
DEBUG_DROP_IN = "[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug\n"
KEEPALIVED = "/usr/bin/keepalived"

SCRIPT = r"""
section() { echo "@@@ $1"; }
cursor() { journalctl -n0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
state() {
    echo "service=$(systemctl show -P Result systemd-sysext.service)/$(systemctl is-active systemd-sysext.service)"
    if [ -e /usr/bin/keepalived ]; then echo merged=yes; else echo merged=no; fi
}
section boot
state
echo "path=$(systemctl is-active keepalived.path)"
echo "version=$(/usr/bin/keepalived --version 2>&1 | head -n1)"
echo "verity_devices=$(ls /dev/mapper | grep -c verity)"
echo "sha256=$(sha256sum < /usr/bin/keepalived | cut -d' ' -f1)"
section boot-journal
journalctl -b -o cat -u systemd-sysext.service
section dissect
systemd-dissect --json=short /root/cases/signed.raw
for c in unsigned other-key squashfs zero-sig; do
    section "case $c"
    cur=$(cursor)
    cp /root/cases/$c.raw /etc/extensions/keepalived.raw
    systemctl restart systemd-sysext.service; echo "restart=$?"
    state
    section "journal $c"
    journalctl -o cat --after-cursor="$cur" _SYSTEMD_UNIT=systemd-sysext.service + UNIT=systemd-sysext.service
done
section "case unsigned-without-policy"
cp /root/cases/unsigned.raw /etc/extensions/keepalived.raw
systemd-sysext refresh; echo "refresh=$?"
state
systemd-sysext unmerge >/dev/null
section "case signed"
cp /root/cases/signed.raw /etc/extensions/keepalived.raw
systemctl restart systemd-sysext.service; echo "restart=$?"
state
section "case flipped"
cp /root/cases/flipped.raw /etc/extensions/keepalived.raw
systemctl restart systemd-sysext.service; echo "restart=$?"
state
sync; echo 3 > /proc/sys/vm/drop_caches
sha256sum < /usr/bin/keepalived > /tmp/read 2> /tmp/read.err; echo "read-rc=$?"
echo "read-error=$(head -n1 /tmp/read.err)"
section flipped-kernel
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


def _partitions(image):
    return json.loads(run(["sfdisk", "--json", str(image)]).stdout)["partitiontable"]


def _openssl_key(directory, name):
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "30", "-subj", f"/CN=keepalived-sysext test {name}"])
    return key, cert


@pytest.fixture(scope="module")
def ddis(assembler, keepalived_x86_64, image_x86_64, tmp_path_factory):
    """The keepalived DDI signed with `key`, signed with `other`, unsigned, signed with one byte flipped in
    the middle of its root partition, and the plain SquashFS; the keys; the SHA-256 of keepalived."""
    d = tmp_path_factory.mktemp("verity")
    keys = d / "keys"
    keys.mkdir()
    key, cert = _openssl_key(keys, "key")
    other_key, other_cert = _openssl_key(keys, "other")
    cases = d / "cases"
    cases.mkdir()
    outs = {}
    for name in ("signed", "other-key", "unsigned"):
        outs[name] = d / f"out-{name}"
        assembler_build(assembler, "x86-64", keepalived_x86_64, outs[name], "--format", "ddi")
    image_name = os.listdir(outs["signed"])
    image_name = [n for n in image_name if n.endswith(".raw")][0]
    run([assembler, "sign", "--key", str(key), "--cert", str(cert), str(outs["signed"] / image_name)])
    run([assembler, "sign", "--key", str(other_key), "--cert", str(other_cert),
         str(outs["other-key"] / image_name)])
    for name, out in outs.items():
        shutil.copy(out / image_name, cases / f"{name}.raw")
    shutil.copy(image_x86_64, cases / "squashfs.raw")
    signed = cases / "signed.raw"
    root = _partitions(signed)["partitions"][0]
    flip = (root["start"] + root["size"] // 2) * 512 + 100
    data = bytearray(signed.read_bytes())
    data[flip] ^= 0xFF
    (cases / "flipped.raw").write_bytes(bytes(data))
    # The signature partition zeroed: the table still names it, its JSON is gone.
    sig = _partitions(signed)["partitions"][2]
    data = bytearray(signed.read_bytes())
    data[sig["start"] * 512:(sig["start"] + sig["size"]) * 512] = bytes(sig["size"] * 512)
    (cases / "zero-sig.raw").write_bytes(bytes(data))
    with open(keepalived_x86_64, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    manifest = json.loads((outs["signed"] / image_name.replace(".raw", ".manifest.json")).read_text())
    return {"dir": d, "cases": cases, "key": key, "cert": cert, "keepalived_sha256": digest,
            "root_hash": manifest["ddi"]["root_hash"], "image_name": image_name}


def _data_url(url):
    """The bytes of a `data:` URL as Ignition decodes it (RFC 2397: base64 or percent-encoded)."""
    meta, _, payload = url.partition(",")
    expect(meta.startswith("data:"), f"not a data URL: {url[:40]}")
    return base64.b64decode(payload) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)


@pytest.fixture(scope="module")
def node_files(assembler, ddis):
    """What the product's Ignition config (`butane --ignition --verity-certificate --image-policy`) writes
    for signed images: guest path -> bytes, files and unit drop-ins as Ignition places them."""
    manifest = ddis["dir"] / "out-signed" / ddis["image_name"].replace(".raw", ".manifest.json")
    config = json.loads(run([assembler, "butane", "--ignition", "--manifest", str(manifest),
                             "--update-url", "https://sysext.invalid/keepalived/",
                             "--verity-certificate", str(ddis["cert"]), "--image-policy", POLICY]).stdout)
    files = {f["path"]: _data_url(f["contents"]["source"]) for f in config.get("storage", {}).get("files", [])
             if f.get("contents", {}).get("source", "").startswith("data:")}
    for unit in config.get("systemd", {}).get("units", []):
        for dropin in unit.get("dropins", []):
            files[f"/etc/systemd/system/{unit['name']}.d/{dropin['name']}"] = dropin["contents"].encode()
    return files


@pytest.fixture(scope="module")
def boot(vm_image, ddis, node_files, tmp_path_factory):
    files = {path: content for path, content in node_files.items()
             if path.startswith("/etc/verity.d/") or "systemd-sysext.service.d" in path}
    expect(any(p.startswith("/etc/verity.d/") for p in files) and
           any("systemd-sysext.service.d" in p for p in files),
           f"the Ignition config installs no certificate or no policy drop-in: {sorted(node_files)}")
    files["/etc/systemd/system/systemd-sysext.service.d/99-test-debug.conf"] = DEBUG_DROP_IN.encode()
    files["/etc/extensions/keepalived.raw"] = ddis["cases"] / "signed.raw"
    for case in ("signed", "unsigned", "other-key", "squashfs", "zero-sig", "flipped"):
        files[f"/root/cases/{case}.raw"] = ddis["cases"] / f"{case}.raw"
    result = VM(vm_image, tmp_path_factory.mktemp("vm")).boot(files=files, script=SCRIPT, timeout=900).check()
    (ddis["dir"] / "boot-stdout.txt").write_text(result.stdout)
    (ddis["dir"] / "boot-journal.txt").write_text(result.journal)
    note(f"verity: one VM boot with 7 sysext cases took {result.seconds:.0f} s ({vm_image.systemd_version}, "
         f"kernel {vm_image.kernel_version})")
    return _sections(result.stdout)


def test_signed_ddi_merged_at_boot_through_dm_verity(boot, ddis):
    state = _fields(boot["boot"])
    expect(state.get("merged") == "yes" and state.get("service") == "success/active",
           f"the signed DDI is not merged at boot: {boot['boot']}\n{boot['boot-journal'][-4000:]}")
    expect("Userspace PKCS#7 validation succeeded." in boot["boot-journal"],
           f"the signature was not checked against /etc/verity.d:\n{boot['boot-journal'][-4000:]}")
    expect(state.get("verity_devices", "0") != "0", f"merged without a dm-verity device: {boot['boot']}")
    expect(state.get("path") == "active", f"keepalived.path is not active after the merge: {boot['boot']}")
    expect(state.get("sha256") == ddis["keepalived_sha256"] and "Keepalived" in state.get("version", ""),
           f"keepalived read through dm-verity is not the build's: {boot['boot']}")


def test_systemd_dissect_lists_the_three_partitions(boot, ddis):
    info = json.loads(boot["dissect"])
    parts = {m.get("designator"): m for m in info["mounts"]}
    expect({"root", "root-verity", "root-verity-sig"} <= set(parts),
           f"systemd-dissect does not list root, root-verity and root-verity-sig:\n{boot['dissect']}")
    expect(parts["root"].get("verity") == "signed" and parts["root"].get("architecture") == "x86-64",
           f"systemd-dissect does not call the root partition a signed x86-64 one:\n{boot['dissect']}")
    h = ddis["root_hash"]
    got = [parts[p].get("partition_uuid", "").replace("-", "") for p in ("root", "root-verity")]
    expect(got == [h[:32], h[32:]], f"partition UUIDs {got} are not the halves of the root hash {h}")
    expect(parts["root"].get("fstype") == "squashfs", f"root file system: {parts['root']}")


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_under_the_signed_policy(boot, case):
    state, journal = _fields(boot[f"case {case}"]), boot[f"journal {case}"]
    expect(state.get("merged") == "no", f"{case}: merged under {POLICY}: {boot[f'case {case}']}\n{journal}")
    expect(state.get("restart") != "0" and state.get("service") == "exit-code/failed",
           f"{case}: systemd-sysext.service did not fail: {boot[f'case {case}']}")
    expect(REFUSALS[case] in journal, f"{case}: the journal lacks {REFUSALS[case]!r}:\n{journal}")
    # Negative controls: the same node merges the unsigned DDI without the policy, and the signed one
    # again after the refusals.
    without = _fields(boot["case unsigned-without-policy"])
    expect(without.get("refresh") == "0" and without.get("merged") == "yes",
           f"the unsigned DDI does not merge without the policy: {boot['case unsigned-without-policy']}")
    again = _fields(boot["case signed"])
    expect(again.get("merged") == "yes", f"the signed DDI does not merge again: {boot['case signed']}")


def test_a_flipped_block_fails_the_read(boot):
    flipped = _fields(boot["case flipped"])
    expect(flipped.get("merged") == "yes",
           f"the flipped image (valid signature, one bad block) was not merged: {boot['case flipped']}")
    expect(flipped.get("read-rc") != "0" and "Input/output error" in flipped.get("read-error", ""),
           f"reading keepalived from the flipped image did not fail with EIO: {boot['case flipped']}")
    expect("corrupted" in boot["flipped-kernel"], f"the kernel did not report it:\n{boot['flipped-kernel']}")


def _small_disk(path):
    """libfdisk's rule, which decides where repart starts the first partition: disks of at most 4 MiB
    start at sector 40 (first usable 34), larger ones at 1 MiB."""
    return os.path.getsize(path) <= 4 << 20


def _shape(table, path):
    total = os.path.getsize(path) // 512
    parts = table["partitions"]
    return {
        "label": table["label"], "sectorsize": table["sectorsize"], "backup": total - table["lastlba"],
        "first": (table["firstlba"], parts[0]["start"]),
        "aligned": all(p["start"] % 8 == 0 for p in parts),
        "names": [p["name"] for p in parts], "types": [p["type"] for p in parts],
        "attrs": [p.get("attrs") for p in parts],
        "sig-size": parts[2]["size"],
        "total-4k": os.path.getsize(path) % 4096 == 0,
    }


def _superblock(path, table):
    p = table["partitions"][1]
    with open(path, "rb") as f:
        f.seek(p["start"] * 512)
        sb = f.read(512)
    # Signature, version, hash type; algorithm and block sizes; salt size. Skipped: the UUID, the number
    # of data blocks and the salt, which depend on the content.
    return sb[0:16], sb[32:72], sb[80:82]


def _signature_keys(path, table):
    p = table["partitions"][2]
    with open(path, "rb") as f:
        f.seek(p["start"] * 512)
        return list(json.loads(f.read(p["size"] * 512).rstrip(b"\0")))


def _repart_of(vm_image, image, key, cert, d):
    """`systemd-repart --make-ddi=sysext` of the tree in IMAGE's root partition, signed with KEY."""
    root = _partitions(image)["partitions"][0]
    fs = d / "root.squashfs"
    with open(image, "rb") as f:
        f.seek(root["start"] * 512)
        fs.write_bytes(f.read(root["size"] * 512))
    run(["unsquashfs", "-q", "-d", str(d / "src"), str(fs)])
    shutil.copy(key, d / "key.pem")
    shutil.copy(cert, d / "key.crt")
    vm_image.userland(["systemd-repart", "--copy-source=/mnt/src", "--offline=yes", "--empty=create",
                       "--size=auto", "--make-ddi=sysext", "--private-key=/mnt/key.pem",
                       "--certificate=/mnt/key.crt", "/mnt/repart.raw"], bind=d)
    return d / "repart.raw"


def test_layout_matches_systemd_repart(vm_image, assembler, ddis, tmp_path_factory):
    """`systemd-repart --make-ddi=sysext` on the same tree, signed with the same key: every field that
    does not depend on the content is the same (sizes, UUIDs, salt and hashes do). Where the first
    partition starts depends on the disk's size (libfdisk's rule for disks up to 4 MiB): the keepalived
    DDI is below 4 MiB and repart's erofs image of the same tree above, so a second tree, large enough
    that both are above, shows that the 1 MiB layout matches too."""
    signed = ddis["cases"] / "signed.raw"
    theirs = _repart_of(vm_image, signed, ddis["key"], ddis["cert"], tmp_path_factory.mktemp("repart"))
    a, b = _shape(_partitions(signed), signed), _shape(_partitions(theirs), theirs)
    for image, shape in ((signed, a), (theirs, b)):
        if image == signed or not _small_disk(image):
            expect(shape["first"] == ((34, 40) if _small_disk(image) else (2048, 2048)),
                   f"{image.name}: first usable sector and first partition {shape['first']} do not follow "
                   f"libfdisk's rule for a {os.path.getsize(image)}-byte disk")
    a.pop("first"), b.pop("first")
    expect(a == b, f"layout differs from systemd-repart's:\nassembler: {a}\nrepart:    {b}")
    expect(_superblock(signed, _partitions(signed)) == _superblock(theirs, _partitions(theirs)),
           "the verity superblocks differ in a field that does not depend on the content")
    expect(_signature_keys(signed, _partitions(signed)) == _signature_keys(theirs, _partitions(theirs)),
           "the signature JSON's fields differ from repart's")

    # Above 4 MiB on both sides: 6 MB that neither xz nor erofs can shrink.
    d = tmp_path_factory.mktemp("large")
    tree = d / "tree"
    (tree / "usr/share/large").mkdir(parents=True)
    (tree / "usr/share/large/blob").write_bytes(os.urandom(6 << 20))
    out = d / "out"
    run([assembler, "build", "--name", "large", "--version", "1", "--arch", "x86-64", "--out", str(out),
         "--tree", str(tree), "--os", "flatcar", "--format", "ddi"])
    ours = out / "large-v1-x86-64.raw"
    run([assembler, "sign", "--key", str(ddis["key"]), "--cert", str(ddis["cert"]), str(ours)])
    (d / "repart").mkdir()
    theirs = _repart_of(vm_image, ours, ddis["key"], ddis["cert"], d / "repart")
    a, b = _shape(_partitions(ours), ours), _shape(_partitions(theirs), theirs)
    expect(a["first"] == (2048, 2048) and a == b,
           f"large layout differs from systemd-repart's:\nassembler: {a}\nrepart:    {b}")
